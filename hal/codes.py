"""Identifier rules for what the station reads: pure functions, no I/O.

Resident ID numbers (GB 11643-1999, check character by ISO 7064 MOD 11-2) and UPU S10 item numbers
(``rules-and-identifiers.md`` §3.1, §3.2), and :func:`classify`, which turns any scanned text into one
typed value: a pickup code or QR token, a payment code (§3.3), a resident ID number, an S10 postal item,
a carrier waybill number, or :class:`Unknown` with the reason. :func:`explain` says in one English line
what a read is and why (``postkiosk diag classify``).

No value's ``repr``/``str``/``to_dict()`` holds a full pickup code, token, payment code, ID number or
waybill number: they show a mask, because reads end up in logs and screens.

Precedence (first rule that fits wins; spaces and tabs inside the text are ignored):

1. exactly one pickup token (``PK1-`` + 26 base32 characters) anywhere in the text, bare or at the end
   of the notice's link -> :class:`PickupToken`; two or more -> Unknown ``several_tokens``;
2. any other link, or characters other than letters and digits -> Unknown;
3. digits only, read from an EAN/UPC symbology -> Unknown ``product_barcode``;
4. 8 digits -> :class:`PickupCode` (the station's own codes come first);
5. 17 digits and ``X``, or 18 digits with a correct GB 11643 check character and a real birth date ->
   :class:`ResidentIdNumber`. It beats the WeChat payment code (18 digits, prefix 10-15, which
   overlaps region codes 11-15): sending an ID number to a payment gateway leaks it, while a payment
   code taken for an ID number (about 1 in 17,000 random codes pass both checks [inference]) only asks
   for one more scan, and a payment code changes every minute anyway;
6. a payment rule (:class:`PaymentCodeRules`: prefix and length) -> :class:`PaymentCode`. It beats
   numeric waybills of the same form: a payment code is a bearer secret that must never be typed into
   a waybill field, and a courier can key in the rare waybill that collides;
7. 18 digits with a region code and a real birth date but a wrong check character -> ResidentIdNumber
   ``valid=False`` (a mistyped ID number is still personal data);
8. S10 form (2 letters, 9 digits, 2 letters) -> :class:`PostalItem`, valid or not with the reason;
9. a carrier's letter prefix (table below) -> :class:`CarrierWaybill` with that carrier;
10. 10 to 18 digits, or 1 to 4 letters and 8 to 20 digits -> CarrierWaybill with ``carrier=None``
    ("unknown carrier"). Purely numeric waybills of ZTO, STO, Yunda, China Post, SF (old 12-digit
    numbers), YTO and Cainiao share lengths and prefixes, so no carrier is chosen: ``candidates`` lists
    whose published pattern the number also fits, for information only;
11. anything else -> Unknown.

Carrier patterns, and what each rests on (tags as in ``rules-and-identifiers.md``; no carrier publishes
its numbering, so none is better than [S]):

=========  =============================  =====================================================================
carrier    pattern                        source and confidence
=========  =============================  =====================================================================
SF         ``SF`` + 13 digits (12 too)    [S] npm ``courier-validation`` (BF-zh) rule SF+13 with its test vector
                                          SF1385628716739; an MCP carrier-detection tool's example SF0218947552508.
                                          12 digits after ``SF`` is [U] (the brief's list; no example found).
                                          Old all-digit SF numbers (12 digits, kuaidi100's rule table) are
                                          numeric-only: candidates, never chosen.
JD         ``JD`` + 2 letters/digits +    [S] courier-validation rule with vector JDX024407261700; a public Hive
           11 digits (15 characters)      UDF (chinagoods) rule ``JD[XK]\\d{12}|JDV[A-Z]\\d{11}`` with JDVA11408814483.
YTO        ``YT`` + 13 digits             [S] courier-validation with YT8962646785389; the MCP tool's YT7460266600081.
                                          Not ``YT`` + 16 digits: that is YunExpress (international), not YTO.
J&T        ``JT`` + 13 digits             [S] courier-validation with JT5261988016578; chinagoods UDF with
                                          JT0006968326954 (it allows 12-13; 12 has no example, so not taken).
STO        ``STO`` + 10 digits            [S, one source] chinagoods UDF. Low confidence; kept because the
                                          prefix names the carrier.
Cainiao    ``LP`` + 12-14 digits;         [S] a parcel-tracking FAQ (parceldetect.com) on AliExpress/Cainiao
           ``CN`` + 12-15 digits          numbers (LP00123456789012). Medium for LP, low for CN.
Deppon     ``DPK`` + 12 digits            [S] courier-validation vector DPK202252612836; chinagoods UDF ``DPK\\d{11,}``.
China      S10 ``..#########CN``          [V] UPU S10 (§3.1). Any S10 item is delivered in China by China Post.
Post/EMS
ZTO, STO,  digits only                    candidates only: ZTO ``7[3-68]`` + 12 digits, STO ``77|43`` + 12-15,
Yunda,                                    Yunda ``[34]`` + 14 or ``5`` + 12, China Post ``[189]`` + 12
EMS, ...                                  (courier-validation); SF 12 digits (kuaidi100 table); YTO
                                          ``[6-9]`` + 17 and ZTO any 14 digits (chinagoods UDF); Cainiao
                                          ``621`` + 12 (courier-validation). All [S], all overlapping.
=========  =============================  =====================================================================

:func:`classify` never raises: anything that is not a known identifier is an :class:`Unknown` value
(T-B1's "declared error" is this value). It looks at no more than :data:`MAX_TEXT` characters and uses
only linear regular expressions, so every call is well under 50 ms.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, ClassVar

#: GB 11643 weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2: 2^(18-i) mod 11 for digit i = 1..17
ID_WEIGHTS = tuple(pow(2, 18 - i, 11) for i in range(1, 18))
ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dXx]$")


def resident_id_check_char(body17: str) -> str:
    """The check character ("0".."9" or "X") for the first 17 digits of a resident ID number."""
    if len(body17) != 17 or not body17.isascii() or not body17.isdigit():
        raise ValueError("a resident ID body has 17 digits")
    return ID_CHECK[sum(int(d) * w for d, w in zip(body17, ID_WEIGHTS)) % 11]


class InvalidIdNumber(ValueError):
    """A resident ID number that fails a rule; ``reason`` is a short machine word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_resident_id(number: str, *, today: dt.date | None = None) -> tuple[str, dt.date, str]:
    """Validate an 18-character resident ID number: returns (normalised number, birth date, sex "M"/"F").

    Raises :class:`InvalidIdNumber` with reason ``format``, ``check`` or ``birth_date``. A lowercase
    ``x`` is accepted and normalised to ``X``. Messages never contain the number.
    """
    if not isinstance(number, str) or not _ID_RE.match(number):
        raise InvalidIdNumber("format", "a resident ID number has 17 digits and a check character 0-9 or X")
    number = number.upper()
    if resident_id_check_char(number[:17]) != number[17]:
        raise InvalidIdNumber("check", "the check character does not match")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber("birth_date", "the birth date is not a real date") from None
    if birth > (today or dt.date.today()) or birth.year < 1850:
        raise InvalidIdNumber("birth_date", "the birth date is in the future or implausibly old")
    return number, birth, "M" if int(number[16]) % 2 else "F"


def age_on(birth: dt.date, day: dt.date) -> int:
    """Whole years of age on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_S10_RE = re.compile(r"^([A-Z]{2})(\d{8})(\d)([A-Z]{2})$")
S10_RESERVED_FIRST = frozenset("JKSTW")


def s10_check_digit(serial8: str) -> int:
    """UPU S10 check digit of an 8-digit serial. ``11 - (sum mod 11)``, 10 -> 0, 11 -> 5 (the last
    branch is as the spec states; no published vector covers it)."""
    if len(serial8) != 8 or not serial8.isascii() or not serial8.isdigit():
        raise ValueError("an S10 serial has 8 digits")
    c = 11 - sum(int(d) * w for d, w in zip(serial8, S10_WEIGHTS)) % 11
    return {10: 0, 11: 5}.get(c, c)


def s10_valid(text: str) -> bool:
    """True when ``text`` is an S10 item identifier (2 letters, 8 digits, check digit, 2-letter country)
    with a correct check digit and a service indicator not reserved (J, K, S, T, W)."""
    m = _S10_RE.match(text)
    return bool(m) and m.group(1)[0] not in S10_RESERVED_FIRST and s10_check_digit(m.group(2)) == int(m.group(3))


def make_s10(service: str, serial8: str, country: str = "CN") -> str:
    """An S10 identifier with its check digit."""
    return f"{service}{serial8}{s10_check_digit(serial8)}{country}"


# ---------------------------------------------------------------------------------------- typed reads

#: the pickup token format: ``PK1-`` and 26 base32 characters (128 bits). It is defined here because hal
#: may not import lockers; a test checks it equals ``lockers.custody.TOKEN_PREFIX``.
PICKUP_TOKEN_PREFIX = "PK1-"
PICKUP_TOKEN_LENGTH = 26
#: a pickup token anywhere in a text, not part of a longer word
PICKUP_TOKEN_RE = re.compile(rf"(?<![A-Za-z0-9]){re.escape(PICKUP_TOKEN_PREFIX)}[A-Z2-7]{{{PICKUP_TOKEN_LENGTH}}}"
                             r"(?![A-Za-z0-9])", re.IGNORECASE)
PICKUP_CODE_LENGTH = 8
#: longest text looked at; longer reads are Unknown("too_long") without being searched
MAX_TEXT = 4096


def _tail(text: str, keep: int = 4) -> str:
    return "*" * max(0, len(text) - keep) + text[-keep:]


def _mask_number(number: str) -> str:
    """A waybill or item number: its leading letters (they name the carrier) and last 4 characters."""
    head = len(number) - len(number.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    head = min(head, 3, max(0, len(number) - 4))
    return number[:head] + _tail(number[head:])


class _Read:
    """Shared by every typed read: ``kind``, ``to_dict()`` (masked, JSON-friendly) and a repr that shows
    only what ``details()`` holds. Every read also has ``masked``: the text shown in its place."""

    kind: ClassVar[str] = "read"

    def details(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.details()}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.details().items())
        return f"{type(self).__name__}({fields})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class PickupCode(_Read):
    """The 8-digit code of a pickup notice, typed or scanned from a printed notice. Masked to its last
    2 digits: 4 would leave only 10,000 guesses."""

    code: str
    kind: ClassVar[str] = "pickup_code"

    @property
    def masked(self) -> str:
        return _tail(self.code, 2)

    def details(self) -> dict[str, Any]:
        return {"masked": self.masked}


@dataclass(frozen=True, repr=False)
class PickupToken(_Read):
    """The QR token of a pickup notice (upper-cased); ``from_link`` when it was found inside a longer text
    such as the notice's link."""

    token: str
    from_link: bool = False
    kind: ClassVar[str] = "pickup_token"

    @property
    def masked(self) -> str:
        return f"{PICKUP_TOKEN_PREFIX}…{self.token[-4:]}"

    def details(self) -> dict[str, Any]:
        return {"masked": self.masked, "from_link": self.from_link}


@dataclass(frozen=True)
class ChannelRule:
    """How a wallet's payment codes look: one of ``prefixes`` and ``min_length``..``max_length`` digits.
    ``confidence`` is the spec's tag: "verified" [V], "secondary" [S] or "unverified" [U]."""

    channel: str
    prefixes: tuple[str, ...]
    min_length: int
    max_length: int
    confidence: str = "verified"

    def matches(self, digits: str) -> bool:
        return self.min_length <= len(digits) <= self.max_length and digits.startswith(self.prefixes)


@dataclass(frozen=True)
class PaymentCodeRules:
    """The payment code formats the station accepts (``rules-and-identifiers.md`` §3.3), decided per
    acquirer: set a channel to None to refuse its codes, or replace its rule. Only documented formats
    are accepted (T-B1). Defaults:

    * WeChat Pay: 18 digits, prefix 10-15 [V WeChat's own error text];
    * Alipay: 16-24 digits, prefix 25-30 [S→V, the official table quoted identically];
    * UnionPay QR: 19 digits, prefix 62 [S blog];
    * e-CNY: 19 digits, prefix 01 [U: one public classifier's heuristic, no official format]. Marked
      unverified; confirm with the acquirer before taking money on it.
    """

    wechat: ChannelRule | None = ChannelRule("wechat", ("10", "11", "12", "13", "14", "15"), 18, 18)
    alipay: ChannelRule | None = ChannelRule("alipay", ("25", "26", "27", "28", "29", "30"), 16, 24,
                                             "secondary")
    unionpay: ChannelRule | None = ChannelRule("unionpay", ("62",), 19, 19, "secondary")
    ecny: ChannelRule | None = ChannelRule("ecny", ("01",), 19, 19, "unverified")

    def match(self, digits: str) -> ChannelRule | None:
        """The rule ``digits`` fits (route by prefix and length only), else None."""
        for rule in (self.wechat, self.alipay, self.unionpay, self.ecny):
            if rule is not None and rule.matches(digits):
                return rule
        return None


DEFAULT_PAYMENT_RULES = PaymentCodeRules()
CHANNEL_NAMES = {"wechat": "WeChat Pay", "alipay": "Alipay", "unionpay": "UnionPay QR", "ecny": "e-CNY"}


@dataclass(frozen=True, repr=False)
class PaymentCode(_Read):
    """A wallet's payment code (付款码, ``auth_code``): a one-minute, single-use bearer secret. Never
    logged or stored whole; ``last4`` is what may be shown."""

    code: str
    channel: str  # wechat | alipay | unionpay | ecny
    confidence: str = "verified"
    kind: ClassVar[str] = "payment_code"

    @property
    def last4(self) -> str:
        return self.code[-4:]

    @property
    def masked(self) -> str:
        return _tail(self.code)

    def details(self) -> dict[str, Any]:
        return {"channel": self.channel, "confidence": self.confidence, "last4": self.last4,
                "length": len(self.code)}


@dataclass(frozen=True, repr=False)
class ResidentIdNumber(_Read):
    """A resident ID number read by a scanner. The number itself is not kept: only whether it is valid,
    why not (``format``, ``check``, ``birth_date``) and a mask of its last 4 characters (never the birth
    date, ``kiosk-ux-and-stack.md``)."""

    valid: bool
    reason: str | None
    masked: str
    kind: ClassVar[str] = "resident_id"

    def details(self) -> dict[str, Any]:
        return {"valid": self.valid, "reason": self.reason, "masked": self.masked}


@dataclass(frozen=True, repr=False)
class PostalItem(_Read):
    """A UPU S10 item number (``EA123456785CN``). ``valid`` when the check digit is right and the service
    indicator is not reserved; else ``reason`` is ``check`` or ``reserved_service``."""

    number: str
    valid: bool
    reason: str | None = None
    kind: ClassVar[str] = "postal_item"

    @property
    def service(self) -> str:
        return self.number[:2]

    @property
    def country(self) -> str:
        return self.number[-2:]

    @property
    def masked(self) -> str:
        return _mask_number(self.number)

    def details(self) -> dict[str, Any]:
        return {"masked": self.masked, "valid": self.valid, "reason": self.reason, "service": self.service,
                "country": self.country}


@dataclass(frozen=True)
class Carrier:
    """An express carrier: ``code`` (stable, for programs), English and Chinese names."""

    code: str
    name: str
    name_zh: str


CARRIERS: dict[str, Carrier] = {c.code: c for c in (
    Carrier("sf", "SF Express", "顺丰速运"),
    Carrier("jd", "JD Logistics", "京东物流"),
    Carrier("yto", "YTO Express", "圆通速递"),
    Carrier("zto", "ZTO Express", "中通快递"),
    Carrier("sto", "STO Express", "申通快递"),
    Carrier("yunda", "Yunda Express", "韵达快递"),
    Carrier("jt", "J&T Express", "极兔速递"),
    Carrier("cainiao", "Cainiao", "菜鸟"),
    Carrier("deppon", "Deppon Express", "德邦快递"),
    Carrier("chinapost", "China Post / EMS", "中国邮政/EMS"),
)}

#: letter prefixes that name a carrier (see the module docstring for sources), tried in order
_PREFIXED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("sf", re.compile(r"SF\d{12,13}")),
    ("jd", re.compile(r"JD[A-Z0-9]{2}\d{11}")),
    ("yto", re.compile(r"YT\d{13}")),
    ("jt", re.compile(r"JT\d{13}")),
    ("sto", re.compile(r"STO\d{10}")),
    ("cainiao", re.compile(r"LP\d{12,14}|CN\d{12,15}")),
    ("deppon", re.compile(r"DPK\d{12}")),
)
#: all-digit patterns: they overlap, so they only ever make candidates
_NUMERIC: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("zto", re.compile(r"7[3-68]\d{12}|\d{14}")),
    ("sto", re.compile(r"(?:77|43)\d{12,15}")),
    ("yunda", re.compile(r"[34]\d{14}|5\d{12}")),
    ("chinapost", re.compile(r"[189]\d{12}")),
    ("sf", re.compile(r"\d{12}")),
    ("yto", re.compile(r"[6-9]\d{17}")),
    ("cainiao", re.compile(r"621\d{12}")),
)
_OTHER_WAYBILL = re.compile(r"[A-Z]{1,4}\d{8,20}")
#: all-digit waybills seen in the sources above are 10 to 18 digits long (YTO's longest)
NUMERIC_WAYBILL_LENGTHS = (10, 18)


@dataclass(frozen=True, repr=False)
class CarrierWaybill(_Read):
    """A carrier's waybill (tracking) number, upper-case. ``carrier`` is a :data:`CARRIERS` code, or
    None for "unknown carrier": the station says so rather than guess. ``candidates`` names carriers whose
    published all-digit pattern the number also fits (information only, often several)."""

    number: str
    carrier: str | None = None
    candidates: tuple[str, ...] = ()
    kind: ClassVar[str] = "waybill"

    @property
    def carrier_name(self) -> str | None:
        return CARRIERS[self.carrier].name if self.carrier else None

    @property
    def masked(self) -> str:
        return _mask_number(self.number)

    def details(self) -> dict[str, Any]:
        return {"masked": self.masked, "carrier": self.carrier, "candidates": list(self.candidates),
                "length": len(self.number)}


#: Unknown reasons and what they mean
UNKNOWN_REASONS: dict[str, str] = {
    "not_text": "the read is not text",
    "empty": "the read is empty",
    "too_long": f"the read is longer than {MAX_TEXT} characters",
    "undecodable": "the scanner sent bytes that are not text",
    "several_tokens": "it holds more than one pickup token, so none is used",
    "link": "a link that holds no pickup token",
    "product_barcode": "a product barcode (EAN/UPC symbology)",
    "number": "a number of a length that no identifier here has",
    "unrecognised": "no identifier the station knows has this form",
}


@dataclass(frozen=True, repr=False)
class Unknown(_Read):
    """A read that is none of the above; ``reason`` is a key of :data:`UNKNOWN_REASONS`, ``length`` the
    number of characters read. The text itself is not kept."""

    reason: str
    length: int = 0
    kind: ClassVar[str] = "unknown"

    @property
    def masked(self) -> str:
        return f"<{self.length} chars>"

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason, "length": self.length}


Read = PickupCode | PickupToken | PaymentCode | ResidentIdNumber | PostalItem | CarrierWaybill | Unknown

#: GB/T 2260 province-level region codes (first two digits) [U, background knowledge]; 81-83 are the
#: residence permits of Hong Kong, Macao and Taiwan residents
_REGIONS = frozenset({11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51,
                      52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83})
_LINK = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://|www\.", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]+")
_ALNUM = re.compile(r"[0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")
_S10_SHAPE = re.compile(r"[A-Z]{2}\d{9}[A-Z]{2}")
#: AIM symbology identifiers ("]E0" EAN-13, "]E4" EAN-8, ...) and zxing-style names of product codes
_PRODUCT_SYMBOLOGIES = ("]E", "EAN", "UPC", "ISBN")


def _is_product(symbology: str | None) -> bool:
    return isinstance(symbology, str) and symbology.strip().upper().startswith(_PRODUCT_SYMBOLOGIES)


def _resident_id(number: str, today: dt.date | None) -> ResidentIdNumber:
    masked = _tail(number.upper())
    try:
        parse_resident_id(number, today=today)
    except InvalidIdNumber as err:
        return ResidentIdNumber(False, err.reason, masked)
    return ResidentIdNumber(True, None, masked)


def _looks_like_id(digits: str, today: dt.date | None) -> bool:
    """18 digits with a region code and a real, past birth date (whatever the check character)."""
    if int(digits[:2]) not in _REGIONS:
        return False
    try:
        birth = dt.date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14]))
    except ValueError:
        return False
    return 1850 <= birth.year and birth <= (today or dt.date.today())


def _numeric_candidates(digits: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(code for code, pattern in _NUMERIC if pattern.fullmatch(digits)))


def _classify_digits(digits: str, rules: PaymentCodeRules, today: dt.date | None, length: int) -> Read:
    if len(digits) == PICKUP_CODE_LENGTH:
        return PickupCode(digits)
    if len(digits) == 18:
        read = _resident_id(digits, today)
        if read.valid:
            return read
    rule = rules.match(digits)
    if rule is not None:
        return PaymentCode(digits, rule.channel, rule.confidence)
    if len(digits) == 18 and _looks_like_id(digits, today):
        return _resident_id(digits, today)
    if NUMERIC_WAYBILL_LENGTHS[0] <= len(digits) <= NUMERIC_WAYBILL_LENGTHS[1]:
        return CarrierWaybill(digits, None, _numeric_candidates(digits))
    return Unknown("number", length)


def classify(text: str, symbology: str | None = None, *, rules: PaymentCodeRules = DEFAULT_PAYMENT_RULES,
             today: dt.date | None = None) -> Read:
    """What a scanned (or typed) ``text`` is, as one typed value; see the module docstring for the order
    of the rules. ``symbology`` is the scanner's AIM identifier ("]Q1", "]E0", ...) or None; ``rules``
    the payment code formats accepted; ``today`` dates ID number checks (default: the local date).
    Never raises."""
    if not isinstance(text, str):
        return Unknown("not_text", 0)
    length = len(text)
    if length > MAX_TEXT:
        return Unknown("too_long", length)
    stripped = text.strip()
    if not stripped:
        return Unknown("empty", length)
    tokens = PICKUP_TOKEN_RE.findall(stripped)
    if len(tokens) > 1:
        return Unknown("several_tokens", length)
    if tokens:
        token = tokens[0].upper()
        return PickupToken(token, from_link=stripped.upper() != token)
    if _LINK.match(stripped):
        return Unknown("link", length)
    compact = _SPACES.sub("", stripped)
    if not _ALNUM.fullmatch(compact):
        return Unknown("unrecognised", length)
    compact = compact.upper()
    if _DIGITS.fullmatch(compact):
        if _is_product(symbology):
            return Unknown("product_barcode", length)
        return _classify_digits(compact, rules, today, length)
    if len(compact) == 18 and compact[-1] == "X" and _DIGITS.fullmatch(compact[:17]):
        return _resident_id(compact, today)
    if _S10_SHAPE.fullmatch(compact):
        if s10_valid(compact):
            return PostalItem(compact, True)
        reason = "reserved_service" if compact[0] in S10_RESERVED_FIRST else "check"
        return PostalItem(compact, False, reason)
    for carrier, pattern in _PREFIXED:
        if pattern.fullmatch(compact):
            return CarrierWaybill(compact, carrier)
    if _OTHER_WAYBILL.fullmatch(compact):
        return CarrierWaybill(compact, None)
    return Unknown("unrecognised", length)


def explain(read: Read) -> str:
    """One English line: what ``read`` is and why (masked; for technicians and ``diag classify``)."""
    match read:
        case PickupToken():
            where = "inside a link or text" if read.from_link else "bare"
            return (f"pickup QR token {read.masked} ({where}): '{PICKUP_TOKEN_PREFIX}' and "
                    f"{PICKUP_TOKEN_LENGTH} base32 characters, as on a pickup notice")
        case PickupCode():
            return f"pickup code {read.masked}: {PICKUP_CODE_LENGTH} digits, the form of a pickup notice's code"
        case PaymentCode():
            rule = next((r for r in (DEFAULT_PAYMENT_RULES.wechat, DEFAULT_PAYMENT_RULES.alipay,
                                     DEFAULT_PAYMENT_RULES.unionpay, DEFAULT_PAYMENT_RULES.ecny)
                         if r is not None and r.channel == read.channel), None)
            form = f"{len(read.code)} digits"
            if rule is not None:
                form += f", prefix {'/'.join(rule.prefixes)}"
            note = {"secondary": " (this rule rests on secondary sources)",
                    "unverified": " (this rule is unverified)"}.get(read.confidence, "")
            also = ""
            if len(read.code) == 18 and _looks_like_id(read.code, None):
                # an 18-digit WeChat code and a Beijing-to-Inner-Mongolia ID number (regions 11-15)
                # with a wrong check character look alike; say so rather than hide it
                also = ("; it is also shaped like a resident ID number (region, birth date) whose check "
                        "character does not match: if an ID number was meant, it was misread or mistyped")
            return (f"{CHANNEL_NAMES.get(read.channel, read.channel)} payment code ending {read.last4}: "
                    f"{form}{note}{also}")
        case ResidentIdNumber():
            if read.valid:
                return (f"resident ID number {read.masked}: 18 characters with a correct GB 11643 check "
                        "character and a real birth date")
            why = {"check": "its check character does not match (a misread or mistyped number?)",
                   "birth_date": "its birth date is not a real past date",
                   "format": "it is not 17 digits and a check character"}.get(read.reason or "", read.reason)
            return f"looks like a resident ID number ({read.masked}), but {why}"
        case PostalItem():
            if read.valid:
                return (f"UPU S10 postal item {read.masked}: service {read.service}, country {read.country}, "
                        "check digit correct; delivered in China by China Post/EMS")
            why = ("its service indicator starts with a reserved letter (J, K, S, T or W)"
                   if read.reason == "reserved_service" else "its check digit does not match")
            return f"has the form of a UPU S10 item number ({read.masked}), but {why}"
        case CarrierWaybill():
            if read.carrier:
                return f"{read.carrier_name} waybill number {read.masked}: the carrier's published prefix and length"
            if read.candidates:
                names = ", ".join(CARRIERS[c].name for c in read.candidates)
                return (f"waybill number {read.masked}, unknown carrier: all-digit waybills of several carriers "
                        f"overlap, so none is guessed ({len(read.number)} digits also fit the published "
                        f"pattern of {names})")
            return (f"waybill number {read.masked}, unknown carrier: no carrier's published pattern "
                    "has this form")
        case Unknown():
            return f"not a code the station knows ({read.length} characters): " \
                   f"{UNKNOWN_REASONS.get(read.reason, read.reason)}"
    return f"not a typed read: {type(read).__name__}"
