"""Generic Chinese "8A/80" lock boards on one RS-485 bus (hardware-protocols.md §1.4, §1.9).

Open is ``8A bb ll 11 BCC`` with ``ll = channel + 1``, written once and never retried. The board's
``8A bb ll ST BCC`` reply is an acknowledgement only, never proof that the door opened (Open-Locker
ADR-0058 rule 3): it is logged with its raw ST and counted in :attr:`outcomes`; an open without a
reply is an unknown outcome, logged, not raised, not resent. The driver never sends "open all"
(``8A bb 00 11``), open-several or keep-energised; the codec has them for maintenance tools.

Door state comes only from query-all (``80 bb 00 33 BCC``): 3 status bytes for models of up to 24
channels, 7 for 50-channel models (``profile.channels_per_board`` picks the model). The sources
disagree on the bitmap, so both ``profile.status_byte_order`` (which S byte holds channels 1-8)
and ``profile.polarity`` are settings, calibrated with the §1.10 acceptance test. The Android
capture (lock 2 open -> ``80 01 00 00 02 33 B0``) is ``LAST_BYTE_FIRST`` with ``CLOSED_IS_0``.
These boards have no item sensors: ``items`` are ``None``. ``profile.pulse_ms`` is not sent: the
optional pulse-seconds byte is from one source and its support is unconfirmed (§10 question 2).
"""

from __future__ import annotations

import functools
import logging

from firmware_bridge import generic_8a as g8a
from hal._busbank import BusLockBank
from hal.lockbank import BankProfile, BoardStatus, UnlockReply

log = logging.getLogger(__name__)

BOARD_ADDRESSES = range(1, 33)  # DIP switches


class Generic8ABank(BusLockBank):
    """A bus of 8A/80 boards (addresses 1-32, 1-50 channels each, no item sensors).

    ``unlock_settle`` (seconds) is how long the bus listens for the open acknowledgement.
    """

    MODEL = "generic 8A/80"

    def __init__(self, profile: BankProfile, *, unlock_settle: float = 0.1) -> None:
        self.status_bytes = g8a.status_bytes_for(profile.channels_per_board)  # ValueError outside 1..50
        for board in profile.boards:
            if board not in BOARD_ADDRESSES:
                raise ValueError(f"8A/80 board addresses are 1..32, not {board}")
        super().__init__(profile, unlock_settle=unlock_settle)
        self._decode = functools.partial(g8a.decode_reply, status_bytes=self.status_bytes)

    async def _unlock(self, board: int, channel: int) -> UnlockReply:
        request = g8a.open_request(board, channel)
        frames = await self._send_once(
            g8a.encode(request), self._decode, f"open {self.MODEL} board {board} channel {channel}"
        )
        ack = next(
            (f for f in frames if isinstance(f, g8a.OpenReply) and f.board == board and f.lock == request.lock),
            None,
        )
        return self._record_unlock(board, channel, ack, ok=True)  # ST is not documented: logged raw

    def _checksum_error(self, buf: bytearray) -> bool:
        return g8a.reply_checksum_error(buf, status_bytes=self.status_bytes)

    async def _read_status(self, board: int) -> BoardStatus:
        def from_this_board(frame: object) -> bool:
            return isinstance(frame, g8a.QueryAllReply) and frame.board == board

        reply: g8a.QueryAllReply = await self._query(
            g8a.encode(g8a.query_all_request(board)), self._decode, from_this_board, board
        )
        bits = reply.lock_bits(first_byte_first=self._first_byte_first)
        return BoardStatus(
            board=board, doors=self._doors(bits), items=(None,) * self.profile.channels_per_board
        )

    def describe(self) -> dict[str, str]:
        info = super().describe()
        info["status_bytes"] = str(self.status_bytes)
        return info
