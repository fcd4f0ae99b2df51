"""Wire-level simulator of a bus of generic "8A/80" lock boards (hardware-protocols.md §1.4).

It speaks the real bytes through ``firmware_bridge.generic_8a`` over a pty or TCP; state, faults,
wire log and transports are the shared ones of ``simulators._serial_sim``. This module is the
board firmware only. The board model follows ``doors_per_board``: up to 24 channels answer
query-all with 3 status bytes, 25-50 channels with 7.

* query all (``80 bb 00 33``): the status bitmap, with ``closed_is_1`` and ``first_byte_first``
  chosen freely (the Android capture is ``closed_is_1=False, first_byte_first=False``);
* query one (``80 bb ll 33``): ST 0x11 closed / 0x00 open; no answer for a lock it does not have;
* open (``8A bb ll 11 [ss]``, ll 0 = every lock): pulses, then acknowledges ``8A bb ll ST``
  (``unlock_replies``, on by default) with ST = what query-one would say now: 0x00 once the door
  sprang open, 0x11 if it stayed shut (a choice: the spec keeps ST undocumented);
* open several (``90``) pulses every lock in the bitmap (read with ``first_byte_first``); keep
  energised on (``9A``) pulses the lock and marks it held, off (``9B``) releases it. Neither is
  answered: no reply is documented.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from firmware_bridge import generic_8a as g8a
from firmware_bridge.bitmap import bits_from_bytes
from simulators._serial_sim import LockBusSimulator, RunningLockboardSim, closed_is_1, first_byte_first, serve


class Generic8ASimulator(LockBusSimulator):
    """A bus of simulated 8A/80 boards. ``boards``: board addresses (1..32) that exist."""

    NAME = "8A/80"
    ADDRESSES = range(1, 33)
    MAX_CHANNELS = g8a.MAX_CHANNELS
    DEFAULT_GARBAGE = b"\xfe\x00\x80\x01"  # a false query head, as some boards send before replies

    def __init__(
        self,
        boards: Iterable[int] = (1,),
        doors_per_board: int = 24,
        *,
        closed_is_1: bool = True,
        first_byte_first: bool = True,
        unlock_replies: bool = True,
        baudrate: int = 9600,
        pace: bool = False,
        wire_log_size: int = 2000,
    ) -> None:
        super().__init__(
            boards,
            doors_per_board,
            closed_is_1=closed_is_1,
            unlock_replies=unlock_replies,
            first_byte_first=first_byte_first,
            baudrate=baudrate,
            pace=pace,
            wire_log_size=wire_log_size,
        )
        self.status_bytes = g8a.status_bytes_for(doors_per_board)
        self.held: set[tuple[int, int]] = set()  # (board, channel) kept energised by 0x9A

    def decode_request(self, buf: bytearray) -> tuple[int, g8a.Request | None]:
        return g8a.decode_request(buf)

    def status_reply(self, board: int) -> g8a.QueryAllReply:
        """What ``board`` would answer to query-all now."""
        return g8a.query_all_reply(
            board, self.lock_bits(board), status_bytes=self.status_bytes, first_byte_first=self.state.first_byte_first
        )

    def _st(self, board: int, channel: int) -> int:
        return g8a.ST_CLOSED if self.door(board, channel).closed else g8a.ST_OPEN

    def handle(self, request: g8a.Request) -> bytes | None:
        self.requests.append(request)
        board = request.board
        if not self._answers(board):
            return None
        doors = len(self.state.boards[board].doors)
        if isinstance(request, g8a.QueryRequest):
            if request.lock == g8a.ALL_LOCKS:
                return g8a.encode(self.status_reply(board))
            if request.lock > doors:
                return None
            return g8a.encode(g8a.QueryOneReply(board, request.lock, self._st(board, request.lock - 1)))
        if isinstance(request, g8a.OpenRequest):
            channels = range(doors) if request.lock == g8a.ALL_LOCKS else [request.lock - 1]
            if request.pulse_s is not None:
                self.state.boards[board].pulse_ms = request.pulse_s * 1000
            for channel in channels:
                self._pulse(board, channel)
            self._changed()
            if not self.state.unlock_replies:
                return None
            st = self._st(board, request.lock - 1) if 0 < request.lock <= doors else g8a.ST_OPEN
            return g8a.encode(g8a.OpenReply(board, request.lock, st))
        if isinstance(request, g8a.OpenSeveralRequest):
            bits = bits_from_bytes(request.bitmap, first_byte_first=self.state.first_byte_first)
            for channel in (ch for ch, bit in enumerate(bits) if bit):
                self._pulse(board, channel)
            self._changed()
            return None
        channel = request.lock - 1  # HoldRequest
        if not 0 <= channel < doors:
            return None
        if request.on:
            self._pulse(board, channel)
            self.held.add((board, channel))
        else:
            self.held.discard((board, channel))
        self._changed()
        return None

    def _foreign_reply(self, reply: bytes) -> bytes | None:
        _, frame = g8a.decode_reply(reply, status_bytes=self.status_bytes)
        if frame is None:
            _, frame = g8a.decode_query_one_reply(reply)
        if frame is None:
            return None
        return g8a.encode(dataclasses.replace(frame, board=frame.board % 32 + 1))


async def run_generic_8a_sim(
    boards: Iterable[int] = (1,),
    doors_per_board: int = 24,
    polarity: Any = "closed_is_1",
    transport: str = "pty",
    *,
    byte_order: Any = "first_byte_first",
    baudrate: int = 9600,
    pace: bool = False,
    unlock_replies: bool = True,
) -> RunningLockboardSim:
    """Start a simulated 8A/80 bus for the demo or a test.

    ``polarity``: "closed_is_1" or "closed_is_0" (or ``hal.lockbank.Polarity``); ``byte_order``:
    "first_byte_first" or "last_byte_first" (or ``StatusByteOrder``).
    ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT".
    """
    sim = Generic8ASimulator(
        boards,
        doors_per_board,
        closed_is_1=closed_is_1(polarity),
        first_byte_first=first_byte_first(byte_order),
        unlock_replies=unlock_replies,
        baudrate=baudrate,
        pace=pace,
    )
    return await serve(sim, transport)
