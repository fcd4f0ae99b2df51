"""Kerong CU12 lock boards on one RS-485 bus (hardware-protocols.md §1.2, §1.9).

Unlock is CMD 0x81 with LOCKNUM = channel, written once and never retried. The board acknowledges
with ASK 0x10 (success) or an error code (0x11 failure, 0x12 timeout, 0x13 unknown command,
0x14 checksum error); the answer, or its absence, is logged and counted in :attr:`outcomes`, never
raised, and never taken as proof that the door opened. Door state comes only from a 0x80 status
read: the 12 lock bits (layout assumed, see ``firmware_bridge.kerong_cu12``) mapped through
``profile.polarity`` and ``profile.status_byte_order``. A status read that the board answers with
an error code returns every door as ``UNKNOWN`` (the board is there and said no; the next poll
asks again). A "success" status reply without the 2-byte bitmap is not taken as the answer (the
bus logs it as unexpected): if the assumed layout is wrong, reads time out with the board's real
frames in the log. The board has no known item sensors: ``items`` are ``None``.

The position of DATA in a frame is not settled (§10 question 3): pass ``data_position`` to match
the board; the profile has no field for it yet. ``profile.pulse_ms`` is not sent: setting the
pulse (0x82) needs a 500 ms pause afterwards and belongs to commissioning, not to every open.
"""

from __future__ import annotations

import functools
import logging

from firmware_bridge import kerong_cu12 as cu12
from hal._busbank import STATUS_REFUSED, BusLockBank
from hal.lockbank import BankProfile, BoardStatus, UnlockReply

log = logging.getLogger(__name__)


class KerongCU12Bank(BusLockBank):
    """A bus of Kerong CU12 boards (addresses 0-15, 12 locks each, no item sensors).

    ``unlock_settle`` (seconds) is how long the bus listens for the unlock acknowledgement.
    ``data_position``: where DATA sits in a frame (``cu12.DataPosition``), AFTER_SUM by default.
    """

    MODEL = "Kerong CU12"

    def __init__(
        self,
        profile: BankProfile,
        *,
        unlock_settle: float = 0.1,
        data_position: cu12.DataPosition = cu12.DataPosition.AFTER_SUM,
    ) -> None:
        if not 1 <= profile.channels_per_board <= cu12.LOCKS_PER_BOARD:
            raise ValueError(f"a CU12 has 1..12 channels, not {profile.channels_per_board}")
        for board in profile.boards:
            if not 0 <= board <= 0x0F:
                raise ValueError(f"CU12 board addresses are 0..15, not {board}")
        super().__init__(profile, unlock_settle=unlock_settle)
        self.data_position = cu12.DataPosition(data_position)
        self._decode = functools.partial(cu12.decode_reply, data_position=self.data_position)

    def _encode(self, request: cu12.Request) -> bytes:
        return cu12.encode(request, data_position=self.data_position)

    async def _unlock(self, board: int, channel: int) -> UnlockReply:
        frames = await self._send_once(
            self._encode(cu12.unlock_request(board, channel)),
            self._decode,
            f"unlock {self.MODEL} board {board} channel {channel}",
        )
        ack = next(
            (
                f
                for f in frames
                if f.board == board and f.command is cu12.Command.UNLOCK and f.lock == channel
            ),
            None,
        )
        return self._record_unlock(board, channel, ack, ack is not None and ack.ok)

    def _checksum_error(self, buf: bytearray) -> bool:
        return cu12.reply_checksum_error(buf, data_position=self.data_position)

    async def _read_status(self, board: int) -> BoardStatus:
        def from_this_board(frame: object) -> bool:
            # A success must carry the status bitmap: a DATALEN bit flipped on the wire can reframe
            # a reply into a "success" without data whose sum checks out; that one is not the answer.
            return (
                isinstance(frame, cu12.Reply)
                and frame.board == board
                and frame.command is cu12.Command.STATUS
                and (not frame.ok or len(frame.data) == cu12.STATUS_DATA_LEN)
            )

        reply: cu12.Reply = await self._query(
            self._encode(cu12.status_request(board)), self._decode, from_this_board, board
        )
        no_items = (None,) * self.profile.channels_per_board
        if not reply.ok:
            self.outcomes[STATUS_REFUSED] += 1
            log.warning("%s board %d answered the status read with %s", self.MODEL, board, reply.ask.name)
            return BoardStatus(board=board, doors=self._unknown_doors(), items=no_items)
        bits = reply.status_bits(first_byte_first=self._first_byte_first)
        assert bits is not None  # guaranteed by from_this_board
        return BoardStatus(board=board, doors=self._doors(bits), items=no_items)

    def describe(self) -> dict[str, str]:
        info = super().describe()
        info["data_position"] = self.data_position.value
        return info
