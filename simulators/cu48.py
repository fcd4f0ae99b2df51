"""Wire-level simulator of a bus of "CU" 48-lock boards (hardware-protocols.md §1.3).

It speaks the real bytes through ``firmware_bridge.cu48`` over a pty or TCP; state, faults, wire
log and transports are the shared ones of ``simulators._serial_sim``. This module is the board
firmware only:

* status (0x60) is answered with ``02 DEV LOCK 75 06 S1..S6 SUM``: 48 lock bits, LOCK echoed;
  ``closed_is_1`` and ``first_byte_first`` set polarity and byte order (the source: 1 = closed,
  locks 1-8 in S1);
* open (0x61) pulses the lock and is acknowledged with ``02 DEV LOCK 75 00 SUM``
  (``unlock_replies``, on by default);
* :meth:`CU48Simulator.refuse_replies` makes the next commands answer ST 0x00 (failure, no data)
  and have no effect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from firmware_bridge import cu48
from simulators._serial_sim import LockBusSimulator, RunningLockboardSim, closed_is_1, first_byte_first, serve


class CU48Simulator(LockBusSimulator):
    """A bus of simulated CU48 boards. ``boards``: board addresses (0..255) that exist."""

    NAME = "CU48"
    ADDRESSES = range(0, 256)
    MAX_CHANNELS = cu48.LOCKS_PER_BOARD
    DEFAULT_GARBAGE = b"\xff\x00\x02\x00\x00\x75"  # a reply header, cut short

    def __init__(
        self,
        boards: Iterable[int] = (0,),
        doors_per_board: int = 48,
        *,
        closed_is_1: bool = True,
        first_byte_first: bool = True,
        unlock_replies: bool = True,
        baudrate: int = 19200,
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
        self._refusals = 0

    def decode_request(self, buf: bytearray) -> tuple[int, cu48.Request | None]:
        return cu48.decode_request(buf)

    def status_reply(self, board: int, lock: int = 0) -> cu48.Reply:
        """What ``board`` would answer to a status request now."""
        return cu48.status_reply(board, self.lock_bits(board), lock=lock, first_byte_first=self.state.first_byte_first)

    def refuse_replies(self, n: int = 1) -> None:
        """The next ``n`` commands to a present board are answered "failure" (ST 0x00) and do nothing."""
        self._refusals += n

    def clear_faults(self) -> None:
        self._refusals = 0
        super().clear_faults()

    def handle(self, request: cu48.Request) -> bytes | None:
        self.requests.append(request)
        board = request.board
        if not self._answers(board):
            return None
        if self._refusals:
            self._refusals -= 1
            return cu48.encode(cu48.ack(board, request.lock, cu48.Status.FAILURE))
        if request.command is cu48.Command.STATUS:
            return cu48.encode(self.status_reply(board, request.lock))
        self._pulse(board, request.lock)
        self._changed()
        return cu48.encode(cu48.ack(board, request.lock)) if self.state.unlock_replies else None

    def _foreign_reply(self, reply: bytes) -> bytes | None:
        _, frame = cu48.decode_reply(reply)
        if frame is None:
            return None
        return cu48.encode(dataclasses.replace(frame, board=(frame.board + 1) % 256))


async def run_cu48_sim(
    boards: Iterable[int] = (0,),
    doors_per_board: int = 48,
    polarity: Any = "closed_is_1",
    transport: str = "pty",
    *,
    byte_order: Any = "first_byte_first",
    baudrate: int = 19200,
    pace: bool = False,
    unlock_replies: bool = True,
) -> RunningLockboardSim:
    """Start a simulated CU48 bus for the demo or a test.

    ``polarity``: "closed_is_1" or "closed_is_0" (or ``hal.lockbank.Polarity``); ``byte_order``:
    "first_byte_first" or "last_byte_first" (or ``StatusByteOrder``).
    ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT".
    """
    sim = CU48Simulator(
        boards,
        doors_per_board,
        closed_is_1=closed_is_1(polarity),
        first_byte_first=first_byte_first(byte_order),
        unlock_replies=unlock_replies,
        baudrate=baudrate,
        pace=pace,
    )
    return await serve(sim, transport)
