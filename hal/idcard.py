"""ID-card readers: the resident's second-generation ID card (or residence permit) on the reader pad.

``IdCardReader`` is the only way the rest of postkiosk reads an ID card.

Subclasses must override:
    ``_open()``, ``_close()``, ``_read_once()`` (one find -> select -> read attempt),
    ``_sam_status()``, ``_sam_id()``.
Subclasses may override:
    ``_read_extra_address()``, ``describe()``.

Policy that lives here, not in backends: the open check, polling for a card until the caller's
timeout, building :class:`IdCard` (with the GB 11643 check of the ID number), logging (masked
only: T-E1), keeping the photo out of every value (T-E4) and the mapping of SAM status codes to
outcomes (:data:`OUTCOMES`, :func:`raise_for_status`). Backends live in :data:`BACKENDS` and are
imported lazily. Only the serial SAM module protocol exists (``samv-serial``); readers that come
as USB HID with a vendor SDK (hardware-protocols.md §2.6) would be another backend.

What each SW3 code (hardware-protocols.md §2.3) leads to:

=======  =====================================  ============  ==========================================
SW3      meaning                                outcome       what ``read_card`` does
=======  =====================================  ============  ==========================================
0x90     success                                SUCCESS       go on
0x9F     card found                             SUCCESS       go on
0x91     field has no content                   NO_CONTENT    ``read_extra_address`` returns None; to any
                                                              other command :class:`CardReadFailed`
0x80     find card failed (no card)             NO_CARD       returns None (polls again until timeout);
                                                              after a card was found in this attempt:
                                                              :class:`CardReadFailed` (taken away)
0x81     select card failed                     READ_FAILED   :class:`CardReadFailed`
0x41     card read failed                       READ_FAILED   :class:`CardReadFailed` (removed mid-read)
0x24     unknown error                          READ_FAILED   :class:`CardReadFailed`
0x3F     information length error               READ_FAILED   :class:`CardReadFailed`
0x47     getting a random number failed         READ_FAILED   :class:`CardReadFailed`
0x31     card failed to authenticate SAM        REJECTED      :class:`CardRejected`
0x32     SAM failed to authenticate card        REJECTED      :class:`CardRejected`
0x33     information verification failed        REJECTED      :class:`CardRejected`
0x37     fingerprint verification error         REJECTED      :class:`CardRejected`
0x40     unrecognised card type                 REJECTED      :class:`CardRejected`
0x10     host-frame checksum error              RETRY         the attempt is repeated (``retries``), then
0x11     host-frame length error                RETRY         :class:`~hal.errors.DeviceIOError`
0x21     bad command or parameter               SAM_FAULT     :class:`SamFault` (a ``DeviceIOError``)
0x23     privilege violation                    SAM_FAULT     :class:`SamFault`
0x60     SAM self-test failed                   SAM_FAULT     :class:`SamFault`
0x66     SAM not authorised                     SAM_FAULT     :class:`SamFault`
other    (no table lists it)                    SAM_FAULT     :class:`SamFault`
=======  =====================================  ============  ==========================================

SW1 or SW2 other than 0x00 is a :class:`SamFault` whatever SW3 says. A reply whose checksum fails,
that stops half way or that is missing is repeated like RETRY; if it keeps failing the result is
``DeviceIOError`` (``DeviceTimeout`` when the reader said nothing at all). Why three exception
classes: the kiosk says "hold your card still and try again" for :class:`CardReadFailed`, "this
card cannot be read here, please ask staff" for :class:`CardRejected`, and treats :class:`SamFault`
like any broken device ("reader out of order").

The photo: backends hand over its WLT bytes with the text, the reader keeps them in memory until
:meth:`IdCardReader.take_photo` hands them to an (optional, vendor) decoder, the next read or
:meth:`~hal.device.Device.close`. They are never part of :class:`IdCard`, never logged, never stored.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import enum
import importlib
import logging
from dataclasses import dataclass, fields
from typing import Any

from firmware_bridge import samv
from firmware_bridge.samv import NATIONS, CardType, Sex, Status, TextBlock, status_meaning
from hal.codes import InvalidIdNumber, parse_resident_id
from hal.device import Device
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout, DeviceUnavailable, HalError

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS", "CardRead", "CardReadFailed", "CardRejected", "CardType", "IdCard", "IdCardError", "IdCardReader",
    "Outcome", "OUTCOMES", "SamFault", "SamStatus", "SamvSerialReader", "Sex", "id_card_reader",
    "mask_address", "mask_id_number", "mask_name", "outcome_of", "raise_for_status",
]


# -- outcomes of status codes ----------------------------------------------------------------------


class Outcome(enum.Enum):
    SUCCESS = "success"
    NO_CONTENT = "no_content"
    NO_CARD = "no_card"
    READ_FAILED = "read_failed"
    REJECTED = "rejected"
    RETRY = "retry"
    SAM_FAULT = "sam_fault"


OUTCOMES: dict[int, Outcome] = {
    Status.SUCCESS: Outcome.SUCCESS,
    Status.CARD_FOUND: Outcome.SUCCESS,
    Status.NO_CONTENT: Outcome.NO_CONTENT,
    Status.FIND_FAILED: Outcome.NO_CARD,
    Status.SELECT_FAILED: Outcome.READ_FAILED,
    Status.READ_FAILED: Outcome.READ_FAILED,
    Status.UNKNOWN_ERROR: Outcome.READ_FAILED,
    Status.LENGTH_ERROR: Outcome.READ_FAILED,
    Status.RANDOM_NUMBER_FAILED: Outcome.READ_FAILED,
    Status.CARD_AUTHENTICATES_SAM_FAILED: Outcome.REJECTED,
    Status.SAM_AUTHENTICATES_CARD_FAILED: Outcome.REJECTED,
    Status.VERIFICATION_FAILED: Outcome.REJECTED,
    Status.FINGERPRINT_ERROR: Outcome.REJECTED,
    Status.UNRECOGNISED_CARD: Outcome.REJECTED,
    Status.HOST_CHECKSUM_ERROR: Outcome.RETRY,
    Status.HOST_LENGTH_ERROR: Outcome.RETRY,
    Status.BAD_COMMAND: Outcome.SAM_FAULT,
    Status.PRIVILEGE_VIOLATION: Outcome.SAM_FAULT,
    Status.SAM_SELF_TEST_FAILED: Outcome.SAM_FAULT,
    Status.SAM_NOT_AUTHORISED: Outcome.SAM_FAULT,
}


def outcome_of(sw3: int) -> Outcome:
    """The outcome of an SW3 code (codes no table lists are SAM faults)."""
    return OUTCOMES.get(sw3, Outcome.SAM_FAULT)


class IdCardError(HalError):
    """The reader answered, and the answer is that this card was not read. ``status`` is the SW3
    code, or None when the reason was found in the data."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CardReadFailed(IdCardError):
    """The card was not read this time (moved or taken away mid-read, a glitch): present it again."""


class CardRejected(IdCardError):
    """This card cannot be read or verified here (unsupported type or layout, authentication failed)."""


class SamFault(DeviceIOError):
    """The reader's security module is out of order or refuses our commands: staff needed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Retry(Exception):
    """Internal: this attempt was garbled on the wire; repeat it. ``silent``: nothing came back."""

    def __init__(self, message: str, silent: bool = False) -> None:
        super().__init__(message)
        self.silent = silent


def _describe(sw3: int) -> str:
    return f"SW3 0x{sw3:02X} ({status_meaning(sw3)})"


def raise_for_status(sw3: int, *, step: str = "read", card_seen: bool = False, sw1: int = 0, sw2: int = 0) -> None:
    """Apply :data:`OUTCOMES` to one reply: return for success, raise otherwise.

    ``step`` is "find", "select", "read" or "extra_address" (for messages and the 0x80/0x91 rules);
    ``card_seen``: a card was found earlier in this attempt, so "no card" means it was taken away.
    NO_CARD on find returns normally (the caller reads SW3 and reports "no card"); RETRY raises an
    internal exception the serial backend catches to repeat the attempt.
    """
    if sw1 or sw2:
        raise SamFault(f"ID card reader: {step} answered SW1 0x{sw1:02X} SW2 0x{sw2:02X}", sw3)
    outcome = outcome_of(sw3)
    if outcome is Outcome.SUCCESS:
        return
    if outcome is Outcome.NO_CARD:
        if step == "find" and not card_seen:
            return
        raise CardReadFailed(f"ID card taken away during the read ({step}: {_describe(sw3)})", sw3)
    if outcome is Outcome.NO_CONTENT:
        if step == "extra_address":
            return
        raise CardReadFailed(f"ID card gave no data ({step}: {_describe(sw3)})", sw3)
    if outcome is Outcome.READ_FAILED:
        raise CardReadFailed(f"ID card not read, present it again ({step}: {_describe(sw3)})", sw3)
    if outcome is Outcome.REJECTED:
        raise CardRejected(f"ID card cannot be read or verified here ({step}: {_describe(sw3)})", sw3)
    if outcome is Outcome.RETRY:
        raise _Retry(f"the reader did not understand the request ({step}: {_describe(sw3)})")
    raise SamFault(f"ID card reader SAM fault ({step}: {_describe(sw3)})", sw3)


# -- values ----------------------------------------------------------------------------------------


def mask_name(name: str | None) -> str | None:
    """First character and one star ("张*"), whatever the length."""
    if not name:
        return name
    return name[0] + "*"


def mask_id_number(number: str | None) -> str | None:
    """Only the last 4 characters; the rest are stars."""
    if not number:
        return number
    return "*" * max(len(number) - 4, 0) + number[-4:]


def mask_address(address: str | None) -> str | None:
    """Cut to the district (区, 县, 旗), else the city (市), else the province (省); else fully masked."""
    if not address:
        return address
    for marks in ("区县旗", "市", "省"):
        cuts = [address.find(m) for m in marks if 0 < address.find(m) < 16]
        if cuts:
            return address[:min(cuts) + 1] + "***"
    return "***"


@dataclass(frozen=True, repr=False)
class IdCard:
    """What the card says, trimmed and typed. Holds personal data: its repr and :meth:`masked` are
    the only forms that may reach a log or a screen by default.

    ``card_type``: "resident", "hk_mo_tw_permit" (J) or "foreign_permanent" (I). ``name`` is the
    Chinese name (resident, J) or the English name (I: ``chinese_name`` holds the Chinese one).
    ``id_number`` is the 18-character ID number (resident, J) or the 15-character permit number (I).
    ``valid_to`` None means long-term (长期). ``nation`` is the 2-digit code (resident cards).
    ``id_number_valid`` is the GB 11643 verdict for resident and J cards (None for I cards), with
    ``id_number_problem`` the reason word ("format", "check", "birth_date", "birth_mismatch",
    "sex_mismatch"). The photo is not here (T-E4): ``has_photo`` says the card sent one.
    """

    card_type: CardType
    name: str
    sex: Sex
    birth: dt.date
    id_number: str
    valid_from: dt.date
    valid_to: dt.date | None
    nation: str | None = None
    address: str | None = None
    authority: str | None = None
    pass_number: str | None = None
    issue_count: int | None = None
    chinese_name: str | None = None
    nationality: str | None = None
    version: str | None = None
    has_photo: bool = False
    id_number_valid: bool | None = None
    id_number_problem: str | None = None

    @classmethod
    def from_text(cls, text: TextBlock, *, has_photo: bool = False, today: dt.date | None = None) -> IdCard:
        valid, problem = _check_number(text, today)
        values = {f.name: getattr(text, f.name) for f in fields(TextBlock)}
        return cls(**values, has_photo=has_photo, id_number_valid=valid, id_number_problem=problem)

    @property
    def long_term(self) -> bool:
        return self.valid_to is None

    @property
    def nation_name(self) -> str | None:
        return NATIONS.get(self.nation or "")

    def is_expired(self, on: dt.date) -> bool:
        """True when the card's validity ended before ``on`` (a long-term card never expires)."""
        return self.valid_to is not None and self.valid_to < on

    def masked(self) -> dict[str, Any]:
        """A JSON-ready view without personal data in plaintext: name first character, ID number
        last 4, address cut to its district; no birth date, sex, nation or photo."""
        out: dict[str, Any] = {
            "card_type": self.card_type.value,
            "name": mask_name(self.name),
            "id_number": mask_id_number(self.id_number),
            "id_number_valid": self.id_number_valid,
            "id_number_problem": self.id_number_problem,
            "address": mask_address(self.address),
            "authority": self.authority,
            "valid_to": "长期" if self.valid_to is None else self.valid_to.isoformat(),
            "has_photo": self.has_photo,
        }
        if self.card_type is CardType.HK_MO_TW_PERMIT:
            out["pass_number"] = mask_id_number(self.pass_number)
        if self.card_type is CardType.FOREIGN_PERMANENT:
            out["chinese_name"] = mask_name(self.chinese_name)
        return out

    def personal_data(self) -> dict[str, Any]:
        """Every field in full (for a technician who asked, with a journal entry). Never log this."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.name.lower() if isinstance(value, Sex) else value.value
            elif isinstance(value, dt.date):
                value = value.isoformat()
            out[f.name] = value
        if self.valid_to is None:
            out["valid_to"] = "长期"
        if self.nation:
            out["nation_name"] = self.nation_name
        return out

    def __repr__(self) -> str:
        return (f"IdCard({self.card_type.value}, name={mask_name(self.name)!r}, "
                f"id_number={mask_id_number(self.id_number)!r}, id_number_valid={self.id_number_valid})")

    __str__ = __repr__


def _check_number(text: TextBlock, today: dt.date | None) -> tuple[bool | None, str | None]:
    """GB 11643 on resident and J cards, and the number's birth date and sex against the card's."""
    if text.card_type is CardType.FOREIGN_PERMANENT:
        return None, None
    try:
        _, birth, sex = parse_resident_id(text.id_number, today=today)
    except InvalidIdNumber as err:
        return False, err.reason
    if birth != text.birth:
        return False, "birth_mismatch"
    if text.sex in (Sex.MALE, Sex.FEMALE) and sex != ("M" if text.sex is Sex.MALE else "F"):
        return False, "sex_mismatch"
    return True, None


@dataclass(frozen=True)
class SamStatus:
    """The answer to "SAM status" (11 FF): ``ok`` when SW3 is 0x90."""

    status: int
    ok: bool
    meaning: str


@dataclass(frozen=True, repr=False)
class CardRead:
    """What a backend's ``_read_once`` hands over: the parsed text and the photo bytes (opaque WLT)."""

    text: TextBlock
    photo: bytes

    def __repr__(self) -> str:
        return f"CardRead({self.text!r}, {len(self.photo)} photo bytes)"


# -- the interface -------------------------------------------------------------------------------


class IdCardReader(Device):
    """One ID-card reader. Open with ``await reader.open()`` or ``async with reader:``.

    ``await reader.read_card(timeout)`` waits up to ``timeout`` seconds for a card on the pad
    (asking every ``poll_interval`` seconds) and returns it, or None when none was presented (0 asks
    once; None waits forever). It raises :class:`CardReadFailed`, :class:`CardRejected` for this
    card, :class:`SamFault` / ``DeviceIOError`` / ``DeviceTimeout`` when the reader is out of order or
    gone (close and open it again to recover). Kiosk rule (T-E4): call it only after the notice
    screen was acknowledged.
    """

    def __init__(self, *, poll_interval: float = 0.25, today: dt.date | None = None) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive (seconds)")
        self.poll_interval = poll_interval
        self._today = today  # fixed date for the ID number's "not in the future" rule (tests)
        self._photo: bytes | None = None

    def _require_open(self) -> None:
        if not self._is_open:
            raise RuntimeError("ID card reader is not open")

    async def read_card(self, timeout: float | None = 0.0) -> IdCard | None:
        """The card on the pad within ``timeout`` seconds (None waits forever), else None."""
        self._require_open()
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 seconds or None")
        self._photo = None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                read = await self._read_once()
            except DeviceIOError:
                if not self._is_open:  # closed while waiting: not a failure of the device
                    return None
                raise
            if read is not None:
                card = IdCard.from_text(read.text, has_photo=bool(read.photo), today=self._today)
                self._photo = read.photo or None
                log.info("ID card read: %r", card)
                return card
            now = loop.time()
            if deadline is not None and now >= deadline:
                return None
            await asyncio.sleep(self.poll_interval if deadline is None else min(self.poll_interval, deadline - now))
            if not self._is_open:
                return None

    def take_photo(self) -> bytes | None:
        """The photo (WLT bytes, §2.5) of the card last read, once: the reader forgets it here.

        For an optional decoder plug-in only; never write it anywhere (T-E4).
        """
        photo, self._photo = self._photo, None
        return photo

    async def read_extra_address(self) -> str | None:
        """The extra address (追加住址) of the card just read, or None when it has none (SW3 0x91)."""
        self._require_open()
        return await self._read_extra_address()

    async def sam_status(self) -> SamStatus:
        """Ask the SAM module for its status (11 FF). A fault is returned, not raised."""
        self._require_open()
        return await self._sam_status()

    async def sam_id(self) -> str:
        """The SAM module's ID (管理信息, 12 FF) as hex."""
        self._require_open()
        return await self._sam_id()

    async def close(self) -> None:
        self._photo = None
        await super().close()

    def describe(self) -> dict[str, str]:
        """Model and link details for diagnostics."""
        return {"backend": type(self).__name__}

    @abc.abstractmethod
    async def _read_once(self) -> CardRead | None:
        """One find -> select -> read attempt: the card, or None when there is none. Raise the
        errors of :func:`raise_for_status`, ``DeviceIOError`` when the reader is gone."""

    @abc.abstractmethod
    async def _sam_status(self) -> SamStatus: ...

    @abc.abstractmethod
    async def _sam_id(self) -> str: ...

    async def _read_extra_address(self) -> str | None:
        raise DeviceUnavailable(f"{type(self).__name__} cannot read the extra address")


# -- the serial SAM module -------------------------------------------------------------------------


class SamvSerialReader(IdCardReader):
    """A SAM module on ``url`` (anything ``serial.serial_for_url`` opens: ``/dev/serial/by-id/...``,
    ``/dev/ttyUSB0``, ``socket://host:port``) at ``baudrate`` 8N1 (115200 on every known module).

    ``reply_timeout``: seconds to wait for one reply (a full read reply is about 112 ms on the wire
    plus the card exchange). ``retries``: how many times an attempt is repeated after a garbled,
    truncated or missing reply, or a host-frame error (0x10/0x11), before ``DeviceIOError``.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 115200,
        *,
        reply_timeout: float = 1.0,
        retries: int = 2,
        poll_interval: float = 0.25,
        exclusive: bool = True,
        today: dt.date | None = None,
    ) -> None:
        super().__init__(poll_interval=poll_interval, today=today)
        from firmware_bridge.link import SerialLink

        if reply_timeout <= 0 or retries < 0:
            raise ValueError("reply_timeout must be positive and retries >= 0")
        self.url = url
        self.reply_timeout = reply_timeout
        self.retries = retries
        self._link = SerialLink(url, baudrate, exclusive=exclusive)
        self._lock = asyncio.Lock()

    def describe(self) -> dict[str, str]:
        return {"backend": "samv-serial", "url": self.url, "baudrate": str(self._link.baudrate)}

    async def _open(self) -> None:
        from firmware_bridge.errors import LinkOpenError

        try:
            await self._link.open()
        except LinkOpenError as err:
            raise DeviceOpenError(f"ID card reader: {err}") from err

    async def _close(self) -> None:
        await self._link.close()

    async def _exchange(self, command: samv.Command) -> samv.Reply:
        """Send one command, return its reply. Raises ``_Retry`` (garbled, truncated or no reply)
        or ``DeviceIOError`` (the link is gone)."""
        from firmware_bridge.errors import LinkError

        loop = asyncio.get_running_loop()
        buf = bytearray()
        try:
            await self._link.discard_input()  # a late reply to an earlier request is not this answer
            await self._link.write(samv.encode(samv.request(command)))
            deadline = loop.time() + self.reply_timeout
            while True:
                consumed, frame = samv.decode(buf)
                if consumed:
                    del buf[:consumed]
                    if isinstance(frame, samv.Reply):
                        return frame
                    if isinstance(frame, samv.BadFrame):
                        raise _Retry(f"{command.name.lower()}: reply failed its {frame.reason} check")
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    if buf:
                        raise _Retry(f"{command.name.lower()}: reply stopped after {len(buf)} bytes")
                    raise _Retry(f"{command.name.lower()}: no reply in {self.reply_timeout} s", silent=True)
                buf += await self._link.read(remaining)
        except LinkError as err:
            raise DeviceIOError(f"ID card reader {self.url}: {err}") from err

    async def _attempts(self, attempt: Any) -> Any:
        """Run ``attempt()`` and repeat it on ``_Retry`` up to ``retries`` times."""
        last: _Retry | None = None
        for _ in range(self.retries + 1):
            try:
                return await attempt()
            except _Retry as err:
                last = err
                log.warning("ID card reader %s: %s; trying again", self.url, err)
        assert last is not None
        if last.silent:
            raise DeviceTimeout(f"ID card reader {self.url}: {last}")
        raise DeviceIOError(f"ID card reader {self.url}: {last} ({self.retries + 1} attempts)")

    async def _read_once(self) -> CardRead | None:
        card_seen = False

        async def attempt() -> CardRead | None:
            nonlocal card_seen
            found = await self._exchange(samv.Command.FIND)
            raise_for_status(found.sw3, step="find", card_seen=card_seen, sw1=found.sw1, sw2=found.sw2)
            if outcome_of(found.sw3) is Outcome.NO_CARD:
                return None
            card_seen = True
            for step, command in (("select", samv.Command.SELECT), ("read", samv.Command.READ)):
                answer = await self._exchange(command)
                raise_for_status(answer.sw3, step=step, card_seen=True, sw1=answer.sw1, sw2=answer.sw2)
            try:
                data = samv.parse_read_data(answer.data)
            except samv.SamvFormatError as err:
                raise _Retry(f"read: {err}") from err
            try:
                text = samv.parse_text(data.text)
            except samv.UnknownCardType as err:
                raise CardRejected(f"ID card of a type this reader cannot read here ({err})") from err
            except samv.SamvFormatError as err:
                raise CardRejected(f"ID card text not understood ({err})") from err
            return CardRead(text, data.photo)

        async with self._lock:
            return await self._attempts(attempt)

    async def _simple(self, command: samv.Command) -> samv.Reply:
        async def attempt() -> samv.Reply:
            answer = await self._exchange(command)
            if outcome_of(answer.sw3) is Outcome.RETRY:
                raise _Retry(f"{command.name.lower()}: {_describe(answer.sw3)}")
            return answer

        async with self._lock:
            return await self._attempts(attempt)

    async def _sam_status(self) -> SamStatus:
        answer = await self._simple(samv.Command.SAM_STATUS)
        ok = answer.sw1 == answer.sw2 == 0 and answer.sw3 == Status.SUCCESS
        return SamStatus(answer.sw3, ok, status_meaning(answer.sw3))

    async def _sam_id(self) -> str:
        answer = await self._simple(samv.Command.SAM_ID)
        raise_for_status(answer.sw3, step="sam_id", sw1=answer.sw1, sw2=answer.sw2)
        return answer.data.hex().upper()

    async def _read_extra_address(self) -> str | None:
        answer = await self._simple(samv.Command.READ_EXTRA_ADDRESS)
        raise_for_status(answer.sw3, step="extra_address", card_seen=True, sw1=answer.sw1, sw2=answer.sw2)
        if answer.sw3 == Status.NO_CONTENT:
            return None
        return samv.decode_ucs2(answer.data) or None


#: backend name -> "module:Class", imported only when configured (python-can's BACKENDS table).
BACKENDS: dict[str, str] = {
    "samv-serial": "hal.idcard:SamvSerialReader",
}


def id_card_reader(backend: str, **options: Any) -> IdCardReader:
    """Build the ID-card reader backend named ``backend`` with ``options`` (not opened yet)."""
    try:
        target = BACKENDS[backend]
    except KeyError:
        raise DeviceUnavailable(f"unknown ID card reader backend {backend!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise DeviceUnavailable(f"ID card reader backend {backend!r} cannot be imported: {err}") from err
    return cls(**options)
