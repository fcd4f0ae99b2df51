"""An interface-level fake of ``hal.lockbank.LockBank`` that models a wall of doors in memory.

For fast ``lockers/`` and ``kiosk/`` tests. It behaves like the wall: an unlock pulse springs a closed
door open (unless jammed), a person closes doors and puts parcels in. The wire-level simulator in
``simulators.kerong_cu16`` is the one that speaks bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hal.errors import DeviceIOError, DeviceTimeout
from hal.lockbank import BankProfile, BoardStatus, DoorState, LockBank, UnlockReply


@dataclass
class FakeDoor:
    closed: bool = True
    item: bool = False
    jammed: bool = False
    pulses: int = 0


@dataclass
class FakeWall:
    doors: dict[tuple[int, int], FakeDoor] = field(default_factory=dict)
    silent_boards: set[int] = field(default_factory=set)
    refuse_unlocks: bool = False  # the link fails: the command cannot be sent
    boards_say_no: bool = False  # the board answers that it did not pulse


class FakeLockBank(LockBank):
    def __init__(self, profile: BankProfile, wall: FakeWall | None = None) -> None:
        super().__init__(profile)
        self.wall = wall or FakeWall()
        for board in profile.boards:
            for channel in range(profile.channels_per_board):
                self.wall.doors.setdefault((board, channel), FakeDoor())

    # what a person at the wall does
    def door(self, board: int, channel: int) -> FakeDoor:
        return self.wall.doors[(board, channel)]

    def open_by_hand(self, board: int, channel: int) -> None:
        self.door(board, channel).closed = False

    def close_by_hand(self, board: int, channel: int) -> None:
        self.door(board, channel).closed = True

    def put_parcel(self, board: int, channel: int) -> None:
        self.door(board, channel).item = True

    def take_parcel(self, board: int, channel: int) -> None:
        self.door(board, channel).item = False

    # the LockBank hooks
    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    async def _unlock(self, board: int, channel: int) -> UnlockReply:
        if self.wall.refuse_unlocks:
            raise DeviceIOError("fake bus refuses unlocks")
        if board in self.wall.silent_boards:
            return UnlockReply.UNANSWERED  # written to the wire; nobody listened
        if self.wall.boards_say_no:
            return UnlockReply.REFUSED
        door = self.door(board, channel)
        door.pulses += 1
        if not door.jammed:
            door.closed = False
        return UnlockReply.ACKNOWLEDGED

    async def _read_status(self, board: int) -> BoardStatus:
        if board in self.wall.silent_boards:
            raise DeviceTimeout(f"board {board} does not answer")
        doors, items = [], []
        for channel in range(self.profile.channels_per_board):
            door = self.door(board, channel)
            doors.append(DoorState.CLOSED if door.closed else DoorState.OPEN)
            items.append(door.item if self.profile.has_item_sensors else None)
        return BoardStatus(board, tuple(doors), tuple(items))
