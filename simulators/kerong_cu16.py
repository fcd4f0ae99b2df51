"""Wire-level simulator of a bus of Kerong KR-CU16 lock boards (hardware-protocols.md §1.1).

It speaks the real bytes through the codec in ``firmware_bridge.kerong_cu16`` over a pty or TCP,
so the production driver is tested unchanged. Three parts, kept apart:

* state: :class:`SimState` (boards -> doors), changed by :meth:`KerongCU16Simulator.handle` (a
  request from the wire) and by hand actions (what a person at the wall does);
* faults: :class:`Faults`, consumed reply by reply (drop, corrupt, garbage first, delay, split,
  wrong address, silence);
* transports: :class:`PtyTransport` (clients open ``transport.url``, the slave path) and
  :class:`TcpTransport` (clients open ``socket://127.0.0.1:PORT``).

State, faults, wire log and transports are shared with the other lock-board simulators
(``simulators._serial_sim``); this module holds only the KR-CU16 firmware.

Behaviour of the simulated wall: an unlock pulse on a closed door that is not jammed springs it
open; it stays open until a person closes it. An unlock on an open door still counts a pulse.
Boards the simulator does not have stay silent, as on a real bus. Unlocks get no reply by
default (not established for the real board); with ``unlock_replies=True`` the board answers
with a 0x35 status reply, which is a guess. Status-of-all (0x32), pulse time (0x37/0x38) and
baud (0x40) are accepted without a reply, because their reply layouts are not known.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from firmware_bridge import kerong_cu16 as cu16
from simulators._serial_sim import (
    Faults,
    LockBusSimulator,
    PtyTransport,
    RunningLockboardSim,
    SimActionRefused,
    SimBoard,
    SimDoor,
    SimState,
    TcpTransport,
    WireEvent,
    closed_is_1,
    serve,
)

__all__ = [
    "Faults",
    "KerongCU16Simulator",
    "PtyTransport",
    "RunningLockboardSim",
    "SimActionRefused",
    "SimBoard",
    "SimDoor",
    "SimState",
    "TcpTransport",
    "WireEvent",
    "run_lockboard_sim",
]


class KerongCU16Simulator(LockBusSimulator):
    """A bus of simulated KR-CU16 boards. ``boards``: board addresses (0..15) that exist.

    ``baudrate`` only matters with ``pace=True``: each reply then takes ``len * 10 / baudrate``
    seconds before it is written, like a real UART.
    """

    NAME = "KR-CU16"
    ADDRESSES = range(0, 16)
    MAX_CHANNELS = cu16.LOCKS_PER_BOARD
    DEFAULT_GARBAGE = b"\xff\x00\x02\x00\x35\x13"  # holds a false STX header

    def __init__(
        self,
        boards: Iterable[int] = (0,),
        doors_per_board: int = 16,
        *,
        closed_is_1: bool = True,
        unlock_replies: bool = False,
        baudrate: int = 19200,
        pace: bool = False,
        wire_log_size: int = 2000,
    ) -> None:
        super().__init__(
            boards,
            doors_per_board,
            closed_is_1=closed_is_1,
            unlock_replies=unlock_replies,
            baudrate=baudrate,
            pace=pace,
            wire_log_size=wire_log_size,
        )

    def decode_request(self, buf: bytearray) -> tuple[int, cu16.Request | None]:
        return cu16.decode_request(buf)

    def status_reply(self, board: int) -> cu16.StatusReply:
        """What ``board`` would answer to a status request now."""
        doors = self.board(board).doors
        return cu16.StatusReply.from_bits(board, self.lock_bits(board), [d.item for d in doors])

    # -- the board firmware: request in, reply out (no I/O) -----------------------------------

    def handle(self, request: cu16.Request) -> bytes | None:
        """Apply ``request`` to the state and return the reply bytes, or None for silence.

        Faults are not applied here (see :meth:`reply_plan`).
        """
        self.requests.append(request)
        command = request.command
        if command is cu16.Command.STATUS_ALL:
            return None  # 0x36 layout unknown: a silent broadcast
        if not self._answers(request.board):
            return None
        board = request.board
        if command is cu16.Command.STATUS:
            return cu16.encode(self.status_reply(board))
        if command is cu16.Command.UNLOCK:
            self._pulse(board, request.lock)
            self._changed()
            return self._unlock_reply(board)
        if command is cu16.Command.UNLOCK_ALL:
            for channel in range(len(self.state.boards[board].doors)):
                self._pulse(board, channel)
            self._changed()
            return self._unlock_reply(board)
        if command is cu16.Command.DELAYED_UNLOCK:
            self._schedule(request.data[0], board, request.lock)
            return None
        if command is cu16.Command.PULSE_TIME:
            self.state.boards[board].pulse_ms = int.from_bytes(request.data, "big") * 10
            self._changed()
            return None
        return None  # QUERY_PULSE_TIME, SET_BAUD: reply layout unknown

    def _unlock_reply(self, board: int) -> bytes | None:
        return cu16.encode(self.status_reply(board)) if self.state.unlock_replies else None

    def _foreign_reply(self, reply: bytes) -> bytes | None:
        _, frame = cu16.decode_reply(reply)
        if frame is None:
            return None
        return cu16.encode(cu16.StatusReply((frame.board + 1) % 16, frame.locks, frame.ir, frame.lock))


async def run_lockboard_sim(
    boards: Iterable[int] = (0,),
    doors_per_board: int = 16,
    polarity: Any = "closed_is_1",
    transport: str = "pty",
    *,
    baudrate: int = 19200,
    pace: bool = False,
    unlock_replies: bool = False,
) -> RunningLockboardSim:
    """Start a simulated KR-CU16 bus for the demo or a test.

    ``polarity``: "closed_is_1" or "closed_is_0" (or ``hal.lockbank.Polarity``).
    ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT" (PORT 0 picks a free one).
    """
    sim = KerongCU16Simulator(
        boards,
        doors_per_board,
        closed_is_1=closed_is_1(polarity),
        unlock_replies=unlock_replies,
        baudrate=baudrate,
        pace=pace,
    )
    return await serve(sim, transport)
