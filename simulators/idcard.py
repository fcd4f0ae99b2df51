"""Wire-level simulator of a second-generation ID-card reader's SAM module (hardware-protocols.md §2).

It answers the host's frames (``firmware_bridge.samv``) like the module: find (9F / 80), select
(90 / 81), read (90 with 256 text bytes and 1024 photo bytes; 30 10 adds the fingerprint length),
extra address (90 / 91), SAM status, SAM ID, reset; an unknown command gets 0x21, a request with a
bad checksum 0x10, one with a LEN too short 0x11. Every new presentation of a card needs find and
select again. Hosts open :attr:`RunningIdCardSim.url`: a pty's slave side or ``socket://127.0.0.1:PORT``.

What a person does: :meth:`IdCardSimulator.present_card` (a synthetic card from :func:`make_card`,
with an ID number whose GB 11643 check character is valid), :meth:`~IdCardSimulator.remove_card`,
:meth:`~IdCardSimulator.remove_card_mid_read` (the next read is answered 0x41, or cut off half way).
Faults (:class:`IdCardFaults`, consumed reply by reply): any SW3 for the next command
(:meth:`~IdCardSimulator.fail_next`), a corrupted checksum, a slow or missing reply, garbage before a
reply, and :meth:`~IdCardSimulator.unplug`. The photo is random bytes standing in for WLT.

Names, addresses and numbers are synthetic test data.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from firmware_bridge import samv
from firmware_bridge.samv import CardType, Command, Sex, Status, TextBlock
from hal.codes import resident_id_check_char
from simulators._device_sim import ByteStreamSim, RunningSim, Session, frames, serve_transport
from simulators._endpoints import Write

log = logging.getLogger(__name__)

EXTRA_ADDRESS_LEN = 70  # bytes; like the address field (the 30 03 reply layout is not documented)
SAM_ID = bytes.fromhex("05 01 00 00 20 20 01 01 00 00 30 39 12 34 56 78")  # synthetic

_SURNAMES = "王李张刘陈杨赵黄周吴"
_GIVEN = ("测试", "样例", "晓明", "丽娜", "建国", "志强", "小红", "一")
#: (region code, district as written in an address, issuing authority)
_REGIONS = (
    ("110101", "北京市东城区", "北京市公安局东城分局"),
    ("310104", "上海市徐汇区", "上海市公安局徐汇分局"),
    ("440305", "广东省深圳市南山区", "深圳市公安局南山分局"),
    ("510107", "四川省成都市武侯区", "成都市公安局武侯区分局"),
)
#: J permits: (region code of the ID number, pass number letter)
_PERMIT_REGIONS = (("810000", "H"), ("820000", "M"), ("830000", ""))


def _date_between(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def _years_later(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _id_number(rng: random.Random, region: str, birth: dt.date, sex: Sex) -> str:
    sequence = rng.randrange(500) * 2 + (1 if sex is Sex.MALE else 0)
    body = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return body + resident_id_check_char(body)


def make_card(card_type: CardType | str = CardType.RESIDENT, *, rng: random.Random | None = None,
              long_term: bool = False, **overrides: Any) -> TextBlock:
    """A synthetic card of ``card_type`` ("resident", "hk_mo_tw_permit", "foreign_permanent").

    Resident and J cards carry an 18-character ID number with a valid GB 11643 check character that
    agrees with the card's birth date and sex. ``long_term``: valid-to is 长期. ``overrides`` replace
    fields of the result (``name=``, ``id_number=``...).
    """
    rng = rng or random.Random()
    card_type = CardType(card_type)
    sex = rng.choice((Sex.MALE, Sex.FEMALE))
    birth = _date_between(rng, dt.date(1950, 1, 1), dt.date(2004, 12, 31))
    valid_from = _date_between(rng, dt.date(2016, 1, 1), dt.date(2024, 12, 31))
    if card_type is CardType.RESIDENT:
        region, district, authority = rng.choice(_REGIONS)
        card = TextBlock(
            card_type=card_type, name=rng.choice(_SURNAMES) + rng.choice(_GIVEN), sex=sex, birth=birth,
            id_number=_id_number(rng, region, birth, sex),
            valid_from=valid_from, valid_to=None if long_term else _years_later(valid_from, 20),
            nation=rng.choice(("01", "01", "03", "08", "10")), address=f"{district}测试路{rng.randrange(1, 200)}号",
            authority=authority)
    elif card_type is CardType.HK_MO_TW_PERMIT:
        region, letter = rng.choice(_PERMIT_REGIONS)
        card = TextBlock(
            card_type=card_type, name=rng.choice(_SURNAMES) + rng.choice(_GIVEN), sex=sex, birth=birth,
            id_number=_id_number(rng, region, birth, sex),
            valid_from=valid_from, valid_to=None if long_term else _years_later(valid_from, 5),
            address=f"广东省深圳市福田区测试路{rng.randrange(1, 200)}号", authority="深圳市公安局",
            pass_number=f"{letter}{rng.randrange(10 ** 8):08d}", issue_count=rng.randrange(1, 4))
    else:
        nationality = rng.choice(("CAN", "USA", "DEU", "JPN"))
        card = TextBlock(
            card_type=card_type, name=f"TEST, SAMPLE {rng.choice('ABCDEFG')}", sex=sex, birth=birth,
            id_number=f"{nationality}{rng.randrange(10 ** 12):012d}",  # synthetic: the field size only
            valid_from=valid_from, valid_to=None if long_term else _years_later(valid_from, 10),
            chinese_name="测试" + rng.choice(_GIVEN), nationality=nationality, version="01", authority="1500")
    return replace(card, **overrides) if overrides else card


@dataclass
class SimCard:
    """A card on the pad: its text block (parsed form), photo bytes and optional extras."""

    text: TextBlock | None
    photo: bytes
    extra_address: str | None = None
    fingerprint: bytes | None = None
    raw: bytes | None = None  # the text block as sent, when given as bytes (unknown layouts)

    @property
    def block(self) -> bytes:
        if self.raw is not None:
            return self.raw
        assert self.text is not None
        return samv.encode_text(self.text)

    def __repr__(self) -> str:
        return f"SimCard({self.text!r}, {len(self.photo)} photo bytes)"


@dataclass
class IdCardSimState:
    card: SimCard | None = None
    found: bool = False  # find succeeded for the card now on the pad
    selected: bool = False  # select succeeded too
    sam_status: int = Status.SUCCESS  # what 11 FF answers (0x60: self-test failed...)
    sam_id: bytes = SAM_ID
    unplugged: bool = False
    commands: list[str] = field(default_factory=list)  # names of the commands received, in order
    reads: int = 0  # read replies with card data sent


@dataclass
class IdCardFaults:
    """Misbehaviour for the next replies. Counters go down by one per reply they affect."""

    forced: deque[tuple[Command | None, int]] = field(default_factory=deque)  # (for which command, SW3)
    corrupt: int = 0  # replies with their CHK flipped
    delay: float = 0.0  # seconds before each of the next ``delay_count`` replies
    delay_count: int = 0
    silent: int = 0  # requests not answered at all
    garbage: deque[bytes] = field(default_factory=deque)  # sent before the next replies, one each
    remove_mid_read: str | None = None  # "status" (0x41) or "truncate" (half a reply, then nothing)


class IdCardSimulator(ByteStreamSim):
    """A simulated SAM module with a card pad."""

    NAME = "ID card reader"

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__()
        self.state = IdCardSimState()
        self.faults = IdCardFaults()
        self.rng = random.Random(seed)

    # -- what a person does ---------------------------------------------------------------------

    def present_card(self, card: TextBlock | CardType | str = CardType.RESIDENT, *, long_term: bool = False,
                     photo: bytes | None = None, extra_address: str | None = None,
                     fingerprint: bytes | None = None, **overrides: Any) -> TextBlock:
        """Put a card on the pad (replacing any): a given text block, or a synthetic card of that
        type. ``photo`` defaults to 1024 random bytes. Returns the card's text."""
        text = card if isinstance(card, TextBlock) else make_card(card, rng=self.rng, long_term=long_term, **overrides)
        samv.encode_text(text)  # refuses a card whose fields do not fit the layout, here and now
        if photo is None:
            photo = self.rng.randbytes(samv.PHOTO_LEN)
        self.state.card = SimCard(text, photo, extra_address, fingerprint)
        self.state.found = self.state.selected = False
        return text

    def present_raw_card(self, block: bytes, photo: bytes | None = None) -> None:
        """Put a card on the pad whose text block is ``block`` as is (a 'Y' card, garbled text)."""
        photo = self.rng.randbytes(samv.PHOTO_LEN) if photo is None else photo
        self.state.card = SimCard(None, photo, raw=bytes(block))
        self.state.found = self.state.selected = False

    def remove_card(self) -> None:
        self.state.card = None
        self.state.found = self.state.selected = False

    def remove_card_mid_read(self, how: str = "status") -> None:
        """The card leaves the pad during the next read: answered 0x41 ("status") or cut off after
        half its bytes ("truncate")."""
        if how not in ("status", "truncate"):
            raise ValueError("how is 'status' or 'truncate'")
        self.faults.remove_mid_read = how

    # -- faults ---------------------------------------------------------------------------------

    def fail_next(self, status: int, command: Command | None = None, count: int = 1) -> None:
        """Answer the next ``count`` commands (only ``command`` ones, if given) with SW3 ``status``."""
        for _ in range(count):
            self.faults.forced.append((command, int(status)))

    def corrupt_next(self, count: int = 1) -> None:
        self.faults.corrupt += count

    def slow_next(self, seconds: float, count: int = 1) -> None:
        self.faults.delay, self.faults.delay_count = seconds, count

    def silence_next(self, count: int = 1) -> None:
        self.faults.silent += count

    def garbage_next(self, data: bytes) -> None:
        self.faults.garbage.append(bytes(data))

    # -- the module's firmware ------------------------------------------------------------------

    def handle(self, request: samv.Request | samv.BadFrame) -> bytes | None:
        """The reply bytes to one decoded request (None: no reply), faults applied."""
        if isinstance(request, samv.BadFrame):
            self.state.commands.append(f"bad_{request.reason}")
            status = Status.HOST_CHECKSUM_ERROR if request.reason == "checksum" else Status.HOST_LENGTH_ERROR
            return self._finish(samv.encode(samv.reply(status)))
        command = request.command
        self.state.commands.append(command.name.lower() if command else f"unknown_{request.cmd:02X}{request.para:02X}")
        if self.faults.silent:
            self.faults.silent -= 1
            return None
        forced = self._forced(command)
        if forced is not None:
            if command is Command.FIND and forced != Status.CARD_FOUND:
                self.state.found = self.state.selected = False
            return self._finish(samv.encode(samv.reply(forced)))
        if command in (Command.READ, Command.READ_WITH_FINGERPRINT) and self.faults.remove_mid_read:
            how, self.faults.remove_mid_read = self.faults.remove_mid_read, None
            if how == "truncate" and self.state.card is not None and self.state.selected:
                frame = samv.encode(self._firmware(command))
                self.remove_card()
                return self._finish(frame[: len(frame) // 2], corruptible=False)
            self.remove_card()
            return self._finish(samv.encode(samv.reply(Status.READ_FAILED)))
        return self._finish(samv.encode(self._firmware(command)))

    def _forced(self, command: Command | None) -> int | None:
        for index, (only, status) in enumerate(self.faults.forced):
            if only is None or only is command:
                del self.faults.forced[index]
                return status
        return None

    def _firmware(self, command: Command | None) -> samv.Reply:
        state = self.state
        card = state.card
        if command is Command.FIND:
            if card is None:
                return samv.reply(Status.FIND_FAILED)
            state.found = True
            return samv.reply(Status.CARD_FOUND, bytes(4))
        if command is Command.SELECT:
            if card is None or not state.found:
                return samv.reply(Status.SELECT_FAILED)
            state.selected = True
            return samv.reply(Status.SUCCESS, bytes(8))
        if command in (Command.READ, Command.READ_WITH_FINGERPRINT):
            if card is None or not state.selected:
                return samv.reply(Status.READ_FAILED)
            fingerprint = None
            if command is Command.READ_WITH_FINGERPRINT:
                fingerprint = card.fingerprint or b""
            state.reads += 1
            return samv.reply(Status.SUCCESS, samv.read_data(card.block, card.photo, fingerprint))
        if command is Command.READ_EXTRA_ADDRESS:
            if card is None or not state.selected:
                return samv.reply(Status.READ_FAILED)
            if not card.extra_address:
                return samv.reply(Status.NO_CONTENT)
            address = card.extra_address.encode("utf-16-le")
            return samv.reply(Status.SUCCESS, address + b" \x00" * max(0, (EXTRA_ADDRESS_LEN - len(address)) // 2))
        if command is Command.SAM_STATUS:
            return samv.reply(state.sam_status)
        if command is Command.SAM_ID:
            return samv.reply(Status.SUCCESS, state.sam_id)
        if command is Command.RESET:
            state.found = state.selected = False
            return samv.reply(Status.SUCCESS)
        return samv.reply(Status.BAD_COMMAND)

    def _finish(self, frame: bytes, corruptible: bool = True) -> bytes:
        if corruptible and self.faults.corrupt:
            self.faults.corrupt -= 1
            frame = frame[:-1] + bytes([frame[-1] ^ 0x01])
        if self.faults.garbage:
            frame = self.faults.garbage.popleft() + frame
        return frame

    def _take_delay(self) -> float:
        if self.faults.delay_count:
            self.faults.delay_count -= 1
            return self.faults.delay
        return 0.0

    def _send(self, write: Write, data: bytes) -> None:
        delay = self._take_delay()
        if delay <= 0:
            write(data)
            return

        def later() -> None:
            if not self.state.unplugged:
                write(data)

        self._call_later(delay, later)

    # -- transports -----------------------------------------------------------------------------

    def _feed(self, session: Session, data: bytes) -> None:
        if self.state.unplugged:
            return
        session.buf += data
        for request in frames(session.buf, samv.decode_request):
            answer = self.handle(request)
            if answer:
                self._send(session.write, answer)


class RunningIdCardSim(RunningSim[IdCardSimulator]):
    """A started ID-card reader simulator: hosts connect to :attr:`url`; :meth:`close` stops it."""

    def present_card(self, card: TextBlock | CardType | str = CardType.RESIDENT, **options: Any) -> TextBlock:
        return self.sim.present_card(card, **options)

    def remove_card(self) -> None:
        self.sim.remove_card()


async def run_idcard_sim(transport: str = "pty", *, seed: int | None = None) -> RunningIdCardSim:
    """Start an ID-card reader simulator on ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT"."""
    sim = IdCardSimulator(seed=seed)
    return RunningIdCardSim(sim, await serve_transport(sim, transport))
