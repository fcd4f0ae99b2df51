"""Kerong KR-CU16 lock boards on one RS-485 bus (hardware-protocols.md §1.1, §1.9).

Unlock is 0x31 with ADDR = (board << 4) | channel. Whether the board answers an unlock is not
established, so the unlock is written once and any reply arriving in a short settle window is only
logged. Door state always comes from a 0x30 status read, answered by the 9-byte 0x35 reply: lock
bits mapped through ``profile.polarity``, infrared bits = item present.
"""

from __future__ import annotations

import logging

from firmware_bridge import kerong_cu16 as cu16
from firmware_bridge.bus import Bus, BusStats
from firmware_bridge.errors import LinkError, LinkOpenError, LinkTimeout
from firmware_bridge.link import SerialLink
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout
from hal.lockbank import BankProfile, BoardStatus, DoorState, LockBank, Polarity, UnlockReply

log = logging.getLogger(__name__)


class KerongCU16Bank(LockBank):
    """A bus of KR-CU16 boards (16 locks and 16 infrared item sensors each).

    ``unlock_settle`` (seconds) is how long the bus listens after an unlock before the next
    request may go out; a reply in that window is logged, never required.
    """

    def __init__(self, profile: BankProfile, *, unlock_settle: float = 0.05) -> None:
        if not 1 <= profile.channels_per_board <= cu16.LOCKS_PER_BOARD:
            raise ValueError(f"a KR-CU16 has 1..16 channels, not {profile.channels_per_board}")
        for board in profile.boards:
            if not 0 <= board <= 0x0F:
                raise ValueError(f"KR-CU16 board addresses are 0..15, not {board}")
        super().__init__(profile)
        self.unlock_settle = unlock_settle
        self._link: SerialLink | None = None
        self._bus: Bus | None = None
        self._stats = BusStats()  # kept across reopen so the technician page sees the history

    @property
    def stats(self) -> BusStats:
        """Traffic counters of this bus (frames, replies, timeouts, skipped bytes, latencies)."""
        return self._stats

    async def _open(self) -> None:
        link = SerialLink(self.profile.url, self.profile.baudrate)
        try:
            await link.open()
        except LinkOpenError as err:
            raise DeviceOpenError(f"KR-CU16 bus {self.profile.url}: {err}") from err
        self._link = link
        self._bus = Bus(link, reply_timeout=self.profile.reply_timeout, stats=self._stats)

    async def _close(self) -> None:
        link, self._link, self._bus = self._link, None, None
        if link is not None:
            await link.close()

    def _require_bus(self) -> Bus:
        if self._bus is None:
            raise DeviceIOError("KR-CU16 bus is not open")
        return self._bus

    async def _unlock(self, board: int, channel: int) -> UnlockReply:
        bus = self._require_bus()
        request = cu16.encode(cu16.unlock_request(board, channel))
        try:
            frames = await bus.send(request, settle=self.unlock_settle, decoder=cu16.decode_reply)
        except LinkTimeout as err:
            raise DeviceTimeout(f"unlock board {board} channel {channel}: outcome unknown: {err}") from err
        except LinkError as err:
            raise DeviceIOError(f"unlock board {board} channel {channel}: outcome unknown: {err}") from err
        if frames:  # whether a KR-CU16 answers an unlock at all is not established (spec §1.1)
            log.info("board %d answered unlock of channel %d with %r", board, channel, frames)
            return UnlockReply.ACKNOWLEDGED
        return UnlockReply.UNANSWERED

    async def _read_status(self, board: int) -> BoardStatus:
        bus = self._require_bus()
        request = cu16.encode(cu16.status_request(board))

        def from_this_board(frame: object) -> bool:
            return isinstance(frame, cu16.StatusReply) and frame.board == board

        try:
            reply: cu16.StatusReply = await bus.transact(
                request,
                cu16.decode_reply,
                expect=from_this_board,
                timeout=self.profile.reply_timeout,
                retries=self.profile.query_retries,
            )
        except LinkTimeout as err:
            raise DeviceTimeout(f"KR-CU16 board {board} on {self.profile.url} did not answer: {err}") from err
        except LinkError as err:
            raise DeviceIOError(f"KR-CU16 board {board} on {self.profile.url}: {err}") from err
        return self._board_status(reply)

    def _board_status(self, reply: cu16.StatusReply) -> BoardStatus:
        closed_bit = self.profile.polarity is Polarity.CLOSED_IS_1
        channels = range(self.profile.channels_per_board)
        doors = tuple(
            DoorState.CLOSED if reply.lock_bit(ch) == closed_bit else DoorState.OPEN for ch in channels
        )
        if self.profile.has_item_sensors:
            items: tuple[bool | None, ...] = tuple(reply.ir_bit(ch) for ch in channels)
        else:
            items = tuple(None for _ in channels)
        return BoardStatus(board=reply.board, doors=doors, items=items)

    def describe(self) -> dict[str, str]:
        info = super().describe()
        info.update(
            {
                "model": "Kerong KR-CU16",
                "baudrate": str(self.profile.baudrate),
                "boards": ",".join(str(b) for b in self.profile.boards),
                "polarity": self.profile.polarity.value,
                "link": "open" if self._link is not None else "closed",
            }
        )
        if self._bus is not None:
            info["gap_ms"] = f"{self._bus.gap * 1000:g}"
        info.update({f"bus.{key}": str(value) for key, value in self.stats.as_dict().items()})
        return info
