"""Live door state for every compartment, learned only by polling the lock boards.

An unlock acknowledgement is never taken as "the door opened": flows wait for the poll to show it.
A board that does not answer makes its doors ``UNKNOWN``; nothing is inferred for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hal.errors import HalError
from hal.lockbank import DoorState, LockBank, UnlockReply

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class DoorAddress:
    bank: str
    board: int
    channel: int


@dataclass(frozen=True)
class DoorReading:
    door: DoorState
    item: bool | None
    at: float  # monotonic seconds of the read


@dataclass(frozen=True)
class DoorChange:
    address: DoorAddress
    before: DoorReading
    after: DoorReading


UNREAD = DoorReading(DoorState.UNKNOWN, None, 0.0)


class DoorMonitor:
    """Polls every board of every bank in turn and publishes each change to its subscribers.

    ``poll_interval`` is the pause, in seconds, between two board reads on one bus, which leaves
    room on the bus for unlock commands.
    """

    def __init__(self, banks: dict[str, LockBank], *, poll_interval: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.banks = banks
        self.poll_interval = poll_interval
        self._clock = clock
        self._readings: dict[DoorAddress, DoorReading] = {}
        self._subscribers: set[asyncio.Queue[DoorChange]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.failures: dict[tuple[str, int], int] = {}
        #: the last unlock sent to each door, for the technician: (wall-clock time, board's answer or error)
        self.last_commands: dict[DoorAddress, tuple[float, str]] = {}

    def reading(self, address: DoorAddress) -> DoorReading:
        return self._readings.get(address, UNREAD)

    def readings(self) -> dict[DoorAddress, DoorReading]:
        return dict(self._readings)

    def subscribe(self) -> asyncio.Queue[DoorChange]:
        queue: asyncio.Queue[DoorChange] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[DoorChange]) -> None:
        self._subscribers.discard(queue)

    async def scan(self, banks: Iterable[str] | None = None) -> None:
        """Read every board once (start-up reconciliation reads before anything moves)."""
        for name in banks if banks is not None else self.banks:
            bank = self.banks[name]
            for board in bank.profile.boards:
                await self._read_board(name, bank, board)

    async def start(self) -> None:
        for name, bank in self.banks.items():
            self._tasks.append(asyncio.create_task(self._poll(name, bank), name=f"door-poll-{name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def unlock(self, address: DoorAddress) -> UnlockReply:
        """One unlock pulse. Raises ``hal.errors.HalError`` if the command could not be sent."""
        try:
            reply = await self.banks[address.bank].unlock(address.board, address.channel)
        except HalError as err:
            self.last_commands[address] = (time.time(), f"unlock: {type(err).__name__}")
            raise
        self.last_commands[address] = (time.time(), f"unlock: {reply.value}")
        return reply

    async def _poll(self, name: str, bank: LockBank) -> None:
        while True:
            for board in bank.profile.boards:
                await self._read_board(name, bank, board)
                await asyncio.sleep(self.poll_interval)

    async def _read_board(self, name: str, bank: LockBank, board: int) -> None:
        now = self._clock()
        try:
            status = await bank.read_status(board)
        except HalError as err:
            count = self.failures.get((name, board), 0) + 1
            self.failures[(name, board)] = count
            if count == 1 or count % 100 == 0:
                log.warning("bank %s board %d not answering (%d in a row): %s", name, board, count, err)
            for channel in range(bank.profile.channels_per_board):
                self._update(DoorAddress(name, board, channel), DoorReading(DoorState.UNKNOWN, None, now))
            return
        self.failures[(name, board)] = 0
        for channel, door in enumerate(status.doors):
            item = status.items[channel] if channel < len(status.items) else None
            self._update(DoorAddress(name, board, channel), DoorReading(door, item, now))

    def _update(self, address: DoorAddress, after: DoorReading) -> None:
        before = self._readings.get(address, UNREAD)
        self._readings[address] = after
        if (before.door, before.item) != (after.door, after.item):
            change = DoorChange(address, before, after)
            for queue in self._subscribers:
                queue.put_nowait(change)
