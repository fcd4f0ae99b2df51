"""An interface-level fake of ``hal.idcard.IdCardReader`` that models a card pad in memory.

For fast ``lockers/`` and ``kiosk/`` flow tests: a person puts a card on the pad
(:meth:`FakeIdCardReader.present_card`, a synthetic card from ``simulators.idcard.make_card``),
takes it away (:meth:`~FakeIdCardReader.remove_card`, or mid-read), and the module can answer any
SW3 code (:meth:`~FakeIdCardReader.fail_next`), mapped to the same outcomes as the real driver
(``hal.idcard.raise_for_status``). The wire-level simulator in ``simulators.idcard`` is the one that
speaks bytes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import deque
from typing import Any

from firmware_bridge.samv import PHOTO_LEN, CardType, Status, TextBlock, status_meaning
from hal.errors import DeviceIOError, DeviceOpenError
from hal.idcard import CardRead, CardReadFailed, IdCardReader, Outcome, SamStatus, outcome_of, raise_for_status
from simulators.idcard import SAM_ID, make_card


class FakeIdCardReader(IdCardReader):
    """``retries``: how many RETRY-class codes (0x10, 0x11) in a row the modelled driver absorbs."""

    def __init__(self, *, poll_interval: float = 0.01, today: dt.date | None = None, seed: int | None = None,
                 retries: int = 2) -> None:
        super().__init__(poll_interval=poll_interval, today=today)
        self.rng = random.Random(seed)
        self.retries = retries
        self.card: TextBlock | None = None
        self.photo = b""
        self.extra_address: str | None = None
        self.sam_status_code: int = Status.SUCCESS
        self.unplugged = False
        self.reads = 0  # cards handed over
        self._forced: deque[int] = deque()
        self._remove_mid_read = False

    # what a person does
    def present_card(self, card: TextBlock | CardType | str = CardType.RESIDENT, *, long_term: bool = False,
                     photo: bytes | None = None, extra_address: str | None = None, **overrides: Any) -> TextBlock:
        self.card = card if isinstance(card, TextBlock) else make_card(card, rng=self.rng, long_term=long_term,
                                                                       **overrides)
        self.photo = self.rng.randbytes(PHOTO_LEN) if photo is None else photo
        self.extra_address = extra_address
        return self.card

    def remove_card(self) -> None:
        self.card = None

    def remove_card_mid_read(self) -> None:
        self._remove_mid_read = True

    # faults
    def fail_next(self, status: int, count: int = 1) -> None:
        """The next ``count`` read attempts are answered SW3 ``status`` (as if to the read command)."""
        self._forced.extend([int(status)] * count)

    def unplug(self) -> None:
        self.unplugged = True

    # the IdCardReader hooks
    async def _open(self) -> None:
        if self.unplugged:
            raise DeviceOpenError("fake ID card reader is unplugged")

    async def _close(self) -> None:
        pass

    def _check_link(self) -> None:
        if self.unplugged:
            raise DeviceIOError("fake ID card reader: link lost")

    async def _read_once(self) -> CardRead | None:
        self._check_link()
        for attempt in range(self.retries + 1):
            if self._forced:
                status = self._forced.popleft()
                if outcome_of(status) is Outcome.RETRY:
                    if attempt == self.retries:
                        raise DeviceIOError(f"fake ID card reader: {status_meaning(status)} on every attempt")
                    continue
                if self.card is not None:
                    raise_for_status(status, step="read", card_seen=True)
                else:
                    raise_for_status(status, step="find")
            break
        if self.card is None:
            return None
        if self._remove_mid_read:
            self._remove_mid_read = False
            self.card = None
            raise CardReadFailed("ID card not read, present it again (read: SW3 0x41)", Status.READ_FAILED)
        self.reads += 1
        return CardRead(self.card, self.photo)

    async def _sam_status(self) -> SamStatus:
        self._check_link()
        return SamStatus(self.sam_status_code, self.sam_status_code == Status.SUCCESS,
                         status_meaning(self.sam_status_code))

    async def _sam_id(self) -> str:
        self._check_link()
        return SAM_ID.hex().upper()

    async def _read_extra_address(self) -> str | None:
        self._check_link()
        return self.extra_address
