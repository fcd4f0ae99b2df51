"""The "CU" 48-lock boards (6-byte request variant) on one RS-485 bus (hardware-protocols.md §1.3, §1.9).

Open is CMD 0x61 with the 0-based lock, written once and never retried. The board acknowledges
with ``02 DEV LOCK ST 00 SUM`` (ST 0x75 success, 0x00 failure); the answer, or its absence, is
logged and counted in :attr:`outcomes`, never raised, and never taken as proof that the door
opened. Door state comes only from a 0x60 status read, whose 48 lock bits are mapped through
``profile.polarity`` (the source reads bit 1 as closed) and ``profile.status_byte_order`` (the
source puts locks 1-8 in the first byte). A status read answered with ST 0x00 returns every door
as ``UNKNOWN``. The board has no known item sensors: ``items`` are ``None``.
"""

from __future__ import annotations

import logging

from firmware_bridge import cu48
from hal._busbank import STATUS_REFUSED, BusLockBank
from hal.lockbank import BankProfile, BoardStatus, UnlockReply

log = logging.getLogger(__name__)


class CU48Bank(BusLockBank):
    """A bus of CU48 boards (one-byte addresses, 48 locks each, no item sensors).

    ``unlock_settle`` (seconds) is how long the bus listens for the open acknowledgement.
    """

    MODEL = "CU48"

    def __init__(self, profile: BankProfile, *, unlock_settle: float = 0.1) -> None:
        if not 1 <= profile.channels_per_board <= cu48.LOCKS_PER_BOARD:
            raise ValueError(f"a CU48 has 1..48 channels, not {profile.channels_per_board}")
        for board in profile.boards:
            if not 0 <= board <= 0xFF:
                raise ValueError(f"CU48 board addresses are one byte (0..255), not {board}")
        super().__init__(profile, unlock_settle=unlock_settle)

    async def _unlock(self, board: int, channel: int) -> UnlockReply:
        frames = await self._send_once(
            cu48.encode(cu48.open_request(board, channel)),
            cu48.decode_reply,
            f"open {self.MODEL} board {board} lock {channel}",
        )
        ack = next((f for f in frames if f.board == board and not f.has_status and f.lock == channel), None)
        return self._record_unlock(board, channel, ack, ack is not None and ack.ok)

    def _checksum_error(self, buf: bytearray) -> bool:
        return cu48.reply_checksum_error(buf)

    async def _read_status(self, board: int) -> BoardStatus:
        def from_this_board(frame: object) -> bool:
            # a status reply, or this board saying "failure" (which carries no data)
            return isinstance(frame, cu48.Reply) and frame.board == board and (frame.has_status or not frame.ok)

        reply: cu48.Reply = await self._query(
            cu48.encode(cu48.status_request(board)), cu48.decode_reply, from_this_board, board
        )
        no_items = (None,) * self.profile.channels_per_board
        bits = reply.lock_bits(first_byte_first=self._first_byte_first)
        if not reply.ok or bits is None:
            self.outcomes[STATUS_REFUSED] += 1
            log.warning("%s board %d answered the status read with %s", self.MODEL, board, reply.status.name)
            return BoardStatus(board=board, doors=self._unknown_doors(), items=no_items)
        return BoardStatus(board=board, doors=self._doors(bits), items=no_items)
