"""Kerong KR-CU16 lock boards on one RS-485 bus (hardware-protocols.md §1.1, §1.9).

Unlock is 0x31 with ADDR = (board << 4) | channel. Whether the board answers an unlock is not
established, so the unlock is written once and any reply arriving in a short settle window is only
logged. Door state always comes from a 0x30 status read, answered by the 9-byte 0x35 reply: lock
bits mapped through ``profile.polarity``, infrared bits = item present.
"""

from __future__ import annotations

from typing import ClassVar

from firmware_bridge import kerong_cu16 as cu16
from hal._busbank import BusLockBank
from hal.lockbank import BankProfile, BoardStatus, UnlockReply


class KerongCU16Bank(BusLockBank):
    """A bus of KR-CU16 boards (16 locks and 16 infrared item sensors each).

    ``unlock_settle`` (seconds) is how long the bus listens after an unlock before the next
    request may go out; a reply in that window is logged, never required.
    """

    MODEL: ClassVar[str] = "Kerong KR-CU16"
    UNLOCK_REPLY_EXPECTED: ClassVar[bool] = False  # not established that a KR-CU16 answers at all

    def __init__(self, profile: BankProfile, *, unlock_settle: float = 0.05) -> None:
        if not 1 <= profile.channels_per_board <= cu16.LOCKS_PER_BOARD:
            raise ValueError(f"a KR-CU16 has 1..16 channels, not {profile.channels_per_board}")
        for board in profile.boards:
            if not 0 <= board <= 0x0F:
                raise ValueError(f"KR-CU16 board addresses are 0..15, not {board}")
        super().__init__(profile, unlock_settle=unlock_settle)

    async def _unlock(self, board: int, channel: int) -> UnlockReply:
        request = cu16.encode(cu16.unlock_request(board, channel))
        frames = await self._send_once(request, cu16.decode_reply, f"unlock board {board} channel {channel}")
        # whether a KR-CU16 answers an unlock at all is not established (spec §1.1): any answer is
        # an acknowledgement, none is the usual case
        return self._record_unlock(board, channel, frames or None, ok=True)

    def _checksum_error(self, buf: bytearray) -> bool:
        return cu16.reply_checksum_error(buf)

    async def _read_status(self, board: int) -> BoardStatus:
        def from_this_board(frame: object) -> bool:
            return isinstance(frame, cu16.StatusReply) and frame.board == board

        reply: cu16.StatusReply = await self._query(cu16.encode(cu16.status_request(board)), cu16.decode_reply,
                                                    from_this_board, board)
        channels = range(self.profile.channels_per_board)
        items: tuple[bool | None, ...] = (tuple(reply.ir_bit(ch) for ch in channels)
                                          if self.profile.has_item_sensors else (None,) * len(channels))
        return BoardStatus(board=reply.board, doors=self._doors([reply.lock_bit(ch) for ch in channels]),
                           items=items)
