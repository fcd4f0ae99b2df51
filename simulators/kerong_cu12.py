"""Wire-level simulator of a bus of Kerong CU12 lock boards (hardware-protocols.md §1.2).

It speaks the real bytes through ``firmware_bridge.kerong_cu12`` over a pty or TCP; state, faults,
wire log and transports are the shared ones of ``simulators._serial_sim``. This module is the
board firmware only.

Behaviour of the simulated board (what the spec does not say is marked as a choice):

* status (0x80) is answered with the 12 lock bits in the assumed 2-byte layout, LOCKNUM echoed;
  ``closed_is_1`` and ``first_byte_first`` set polarity and byte order;
* unlock (0x81) pulses one lock, or every lock with LOCKNUM 0x0C, and is acknowledged with
  ASK 0x10 (``unlock_replies``, on by default: the source shows ``02 00 02 81 10 00 03 98``);
* the query/set commands 0x82-0x85 answer with the current value in DATA (a choice); a delay set
  with 0x84 postpones later unlocks by that many seconds; 0x8E resets them; 0x8F answers
  ``10 12`` (version 1.0 / 1.2, the source's example);
* requests to the broadcast address 0x10 are recorded and ignored (not modelled);
* :meth:`KerongCU12Simulator.refuse_replies` makes the next commands fail with a chosen ASK code
  (failure, timeout, checksum error...) and have no effect, to test how the driver takes a "no".

Frames are read and written with the configured ``data_position``; a host using the other one
gets no answer to frames with DATA (status replies then fail to decode).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from collections.abc import Iterable
from typing import Any

from firmware_bridge import kerong_cu12 as cu12
from simulators._serial_sim import LockBusSimulator, RunningLockboardSim, closed_is_1, first_byte_first, serve

VERSION_DATA = b"\x10\x12"
FACTORY_PULSE_MS = 550  # 0x0037 x 10 ms (§1.2)


class KerongCU12Simulator(LockBusSimulator):
    """A bus of simulated CU12 boards. ``boards``: board addresses (0..15) that exist."""

    NAME = "Kerong CU12"
    ADDRESSES = range(0, 16)
    MAX_CHANNELS = cu12.LOCKS_PER_BOARD
    DEFAULT_GARBAGE = b"\xff\x00\x02\x00\x0c\x80\x10"  # a status reply's header, cut short

    def __init__(
        self,
        boards: Iterable[int] = (0,),
        doors_per_board: int = 12,
        *,
        closed_is_1: bool = True,
        first_byte_first: bool = True,
        unlock_replies: bool = True,
        data_position: cu12.DataPosition = cu12.DataPosition.AFTER_SUM,
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
        self.data_position = cu12.DataPosition(data_position)
        self._decode_request = functools.partial(cu12.decode_request, data_position=self.data_position)
        self._refusals: deque[cu12.Ask] = deque()
        #: per board: the values of the query/set commands 0x83-0x85 (0x82 lives in SimBoard.pulse_ms)
        self.settings: dict[int, dict[cu12.Command, int]] = {a: self._factory_settings() for a in self.state.boards}
        for sim_board in self.state.boards.values():
            sim_board.pulse_ms = FACTORY_PULSE_MS

    @staticmethod
    def _factory_settings() -> dict[cu12.Command, int]:
        return {cu12.Command.BAUD: 1, cu12.Command.DELAYED_UNLOCK: 0, cu12.Command.PUSH_DOOR_WAIT: 0}

    def decode_request(self, buf: bytearray) -> tuple[int, cu12.Request | None]:
        return self._decode_request(buf)

    def _encode(self, frame: cu12.Reply) -> bytes:
        return cu12.encode(frame, data_position=self.data_position)

    def status_reply(self, board: int, lock: int = cu12.ALL_LOCKS) -> cu12.Reply:
        """What ``board`` would answer to a status request now."""
        return cu12.status_reply(board, self.lock_bits(board), lock=lock, first_byte_first=self.state.first_byte_first)

    def refuse_replies(self, n: int = 1, ask: cu12.Ask = cu12.Ask.FAILURE) -> None:
        """The next ``n`` commands to a present board are answered with ``ask`` and do nothing."""
        self._refusals.extend([cu12.Ask(ask)] * n)

    def clear_faults(self) -> None:
        self._refusals.clear()
        super().clear_faults()

    # -- the board firmware: request in, reply out (no I/O) -----------------------------------

    def handle(self, request: cu12.Request) -> bytes | None:
        self.requests.append(request)
        board = request.board
        if board == cu12.BROADCAST or not self._answers(board):
            return None
        if self._refusals:
            return self._encode(cu12.reply_to(request, self._refusals.popleft()))
        command = request.command
        if command is cu12.Command.STATUS:
            return self._encode(self.status_reply(board, request.lock))
        if command is cu12.Command.UNLOCK:
            self._unlock(board, request.lock)
            return self._encode(cu12.reply_to(request)) if self.state.unlock_replies else None
        if command is cu12.Command.PULSE_TIME:
            if request.data:
                self.state.boards[board].pulse_ms = int.from_bytes(request.data, "big") * 10
                self._changed()
            units = self.state.boards[board].pulse_ms // 10
            return self._encode(cu12.reply_to(request, data=units.to_bytes(2, "big")))
        if command in (cu12.Command.BAUD, cu12.Command.DELAYED_UNLOCK, cu12.Command.PUSH_DOOR_WAIT):
            if request.data:
                self.settings[board][command] = request.data[0]
            return self._encode(cu12.reply_to(request, data=bytes([self.settings[board][command]])))
        if command is cu12.Command.FACTORY_INIT:
            self.settings[board] = self._factory_settings()
            self.state.boards[board].pulse_ms = FACTORY_PULSE_MS
            return self._encode(cu12.reply_to(request))
        return self._encode(cu12.reply_to(request, data=VERSION_DATA))  # VERSION

    def _unlock(self, board: int, lock: int) -> None:
        channels = range(len(self.state.boards[board].doors)) if lock == cu12.ALL_LOCKS else [lock]
        delay = self.settings[board][cu12.Command.DELAYED_UNLOCK]
        for channel in channels:
            if delay:
                self._schedule(delay, board, channel)
            else:
                self._pulse(board, channel)
        if not delay:
            self._changed()

    def _foreign_reply(self, reply: bytes) -> bytes | None:
        _, frame = cu12.decode_reply(reply, data_position=self.data_position)
        if frame is None:
            return None
        return self._encode(dataclasses.replace(frame, board=(frame.board + 1) % 16))


async def run_kerong_cu12_sim(
    boards: Iterable[int] = (0,),
    doors_per_board: int = 12,
    polarity: Any = "closed_is_1",
    transport: str = "pty",
    *,
    byte_order: Any = "first_byte_first",
    data_position: Any = "after_sum",
    baudrate: int = 19200,
    pace: bool = False,
    unlock_replies: bool = True,
) -> RunningLockboardSim:
    """Start a simulated CU12 bus for the demo or a test.

    ``polarity``: "closed_is_1" or "closed_is_0" (or ``hal.lockbank.Polarity``); ``byte_order``:
    "first_byte_first" or "last_byte_first" (or ``StatusByteOrder``); ``data_position``:
    "before_sum" or "after_sum". ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT".
    """
    sim = KerongCU12Simulator(
        boards,
        doors_per_board,
        closed_is_1=closed_is_1(polarity),
        first_byte_first=first_byte_first(byte_order),
        data_position=cu12.DataPosition(getattr(data_position, "value", data_position)),
        unlock_replies=unlock_replies,
        baudrate=baudrate,
        pace=pace,
    )
    return await serve(sim, transport)
