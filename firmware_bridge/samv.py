"""Second-generation Chinese ID-card reader, SAM module serial protocol: a pure codec (no I/O, no clocks).

Source: hardware-protocols.md §2 [MULTI]. 115200 8N1, point to point (one host, one SAM module).

Frames::

    host -> SAM  +----------------+-------------+-----+------+-----------+-----+
                 | AA AA AA 96 69 | LEN_H LEN_L | CMD | PARA | DATA ...  | CHK |
                 +----------------+-------------+-----+------+-----------+-----+
    SAM -> host  +----------------+-------------+-----+-----+-----+-----------+-----+
                 | AA AA AA 96 69 | LEN_H LEN_L | SW1 | SW2 | SW3 | DATA ...  | CHK |
                 +----------------+-------------+-----+-----+-----+-----------+-----+

* LEN is big-endian and counts the bytes after it, CHK included.
* CHK is the XOR of every byte after the preamble except CHK itself (LEN_H, LEN_L, CMD/SW..., DATA).
* SW1 = SW2 = 0x00 on success; SW3 is the status code (:class:`Status`, §2.3).

Commands (:class:`Command`, the value is ``CMD << 8 | PARA``): reset 10 FF, SAM status 11 FF,
SAM ID 12 FF, find card 20 01, select card 20 02, read text+photo 30 01, read text+photo+fingerprint
30 10, read extra address 30 03. A card is read with find -> select -> read.

DATA of a read reply (30 01; 30 10 adds the third length and the fingerprint)::

    +--------+--------+ - - - -+-----------------+------------------+ - - - - - - - - +
    | T_LEN  | P_LEN  | F_LEN  | text (T_LEN)    | photo (P_LEN)    | fingerprint      |
    | 2 B BE | 2 B BE | 2 B BE | 256 B UCS-2 LE  | 1024 B WLT       | (F_LEN)          |
    +--------+--------+ - - - -+-----------------+------------------+ - - - - - - - - +
      frame bytes 10-11, 12-13 (14-15)

The lengths are parsed, not assumed (:func:`parse_read_data`): with two lengths ``4 + T + P`` must
equal the data length, with three ``6 + T + P + F``; both cannot hold at once, so the variant is
recognised without knowing which command was sent.

The text block (:func:`parse_text`, :func:`encode_text`) is 256 bytes of UCS-2 little-endian,
each field padded with spaces (``20 00``). The two bytes at offset 248 say which layout it is:
blank (space or NUL) for the resident ID card, ``'J'`` for the Hong Kong/Macau/Taiwan residence
permit, ``'I'`` for the 2017 foreign permanent-resident card (offsets in :data:`LAYOUTS`). Fields
are trimmed of their padding; dates are ``YYYYMMDD``; a valid-to of ``长期`` means long-term
(``valid_to=None``). The sex code (:class:`Sex`) and nation code (:data:`NATIONS`) are kept as codes.
The photo is 1024 bytes of a proprietary compressed format (WLT): this codec never looks inside it.

Resynchronisation rules of :func:`decode` (replies) and :func:`decode_request` (requests):

* bytes before the preamble are skipped (``(n, None)``); a buffer ending in the first bytes of a
  preamble keeps them;
* a LEN larger than any known frame (:data:`MAX_REPLY_LEN`, :data:`MAX_REQUEST_LEN`) is a false
  start: only the first preamble byte is dropped and the search goes on;
* a complete frame is needed before anything else is judged: ``(0, None)`` asks for more bytes;
* **a LEN too short for the fixed fields, or a wrong CHK, is reported, not hidden**: the decoder
  returns ``(consumed, BadFrame(reason))`` (``consumed`` = the 7 header bytes for a short LEN, the
  whole declared frame for a bad CHK). The host learns at once that a reply came and was damaged
  and can repeat the exchange instead of waiting out its timeout; the simulator answers it with
  SW3 0x10 / 0x11 as a SAM does;
* trailing bytes after a frame stay in the buffer for the next call.

The decoders never raise. :func:`parse_read_data` and :func:`parse_text` raise only
:class:`SamvFormatError` (a ``ValueError``), the declared error for data that is not what §2 says.

Personal data: a reply's DATA and a text block hold a person's name, ID number and photo, so no
class here puts them in its ``repr``.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from functools import reduce
from operator import xor
from typing import Union

PREAMBLE = bytes.fromhex("AA AA AA 96 69")
HEADER = len(PREAMBLE) + 2  # preamble + LEN
MIN_REQUEST_LEN = 3  # CMD PARA CHK
MIN_REPLY_LEN = 4  # SW1 SW2 SW3 CHK
TEXT_LEN = 256
PHOTO_LEN = 1024
FINGERPRINT_LEN = 1024  # per the §2.2 example; 512 and 0 also occur
#: the longest known reply: read with fingerprints, 3 + 6 + 256 + 1024 + 1024 + 1 = 2314 (0x090A)
MAX_REPLY_LEN = 3 + 6 + TEXT_LEN + PHOTO_LEN + FINGERPRINT_LEN + 1
#: no known request carries data; room for 256 bytes of it
MAX_REQUEST_LEN = 3 + 256
LONG_TERM = "长期"


class Command(enum.IntEnum):
    """``CMD << 8 | PARA`` of every command in §2.2."""

    RESET = 0x10FF
    SAM_STATUS = 0x11FF
    SAM_ID = 0x12FF
    FIND = 0x2001
    SELECT = 0x2002
    READ = 0x3001
    READ_WITH_FINGERPRINT = 0x3010
    READ_EXTRA_ADDRESS = 0x3003

    @property
    def cmd(self) -> int:
        return self.value >> 8

    @property
    def para(self) -> int:
        return self.value & 0xFF


class Status(enum.IntEnum):
    """SW3 codes on the wire (§2.3). Vendor-table codes 0x01-0x09 are host-DLL errors, never sent."""

    SUCCESS = 0x90
    NO_CONTENT = 0x91
    CARD_FOUND = 0x9F
    HOST_CHECKSUM_ERROR = 0x10
    HOST_LENGTH_ERROR = 0x11
    BAD_COMMAND = 0x21
    PRIVILEGE_VIOLATION = 0x23
    UNKNOWN_ERROR = 0x24
    CARD_AUTHENTICATES_SAM_FAILED = 0x31
    SAM_AUTHENTICATES_CARD_FAILED = 0x32
    VERIFICATION_FAILED = 0x33
    FINGERPRINT_ERROR = 0x37
    LENGTH_ERROR = 0x3F
    UNRECOGNISED_CARD = 0x40
    READ_FAILED = 0x41
    RANDOM_NUMBER_FAILED = 0x47
    SAM_SELF_TEST_FAILED = 0x60
    SAM_NOT_AUTHORISED = 0x66
    FIND_FAILED = 0x80
    SELECT_FAILED = 0x81


#: what each status means, as the vendor tables say it (for diagnostics and messages)
STATUS_MEANINGS: dict[int, str] = {
    0x90: "success 操作成功",
    0x91: "field has no content 此项无内容",
    0x9F: "card found 寻找证/卡成功",
    0x10: "host-frame checksum error",
    0x11: "host-frame length error",
    0x21: "bad command or parameter",
    0x23: "privilege violation 越权操作",
    0x24: "unknown error",
    0x31: "card failed to authenticate SAM",
    0x32: "SAM failed to authenticate card",
    0x33: "information verification failed",
    0x37: "fingerprint verification error",
    0x3F: "information length error",
    0x40: "unrecognised card type",
    0x41: "card read failed",
    0x47: "getting a random number failed",
    0x60: "SAM self-test failed",
    0x66: "SAM not authorised",
    0x80: "find card failed (no card)",
    0x81: "select card failed",
}


def status_meaning(sw3: int) -> str:
    return STATUS_MEANINGS.get(sw3, "unknown status code")


class Sex(enum.IntEnum):
    """The card's sex code (GB/T 2261.1). A code outside these reads as UNKNOWN."""

    UNKNOWN = 0
    MALE = 1
    FEMALE = 2
    UNSPECIFIED = 9


#: nation (民族) codes of GB/T 3304 as printed on resident ID cards
NATIONS: dict[str, str] = {f"{i:02d}": name for i, name in enumerate((
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白",
    "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西",
    "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌",
    "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔",
    "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺"), start=1)} | {"97": "其他", "98": "外国血统中国籍人士"}


class CardType(enum.StrEnum):
    RESIDENT = "resident"  # type flag blank
    HK_MO_TW_PERMIT = "hk_mo_tw_permit"  # 'J'
    FOREIGN_PERMANENT = "foreign_permanent"  # 'I'


TYPE_FLAG_OFFSET = 248
TYPE_FLAGS = {CardType.HK_MO_TW_PERMIT: "J", CardType.FOREIGN_PERMANENT: "I"}

#: card type -> ((field, offset, size in bytes), ...); sizes are even (UCS-2)
LAYOUTS: dict[CardType, tuple[tuple[str, int, int], ...]] = {
    CardType.RESIDENT: (
        ("name", 0, 30), ("sex", 30, 2), ("nation", 32, 4), ("birth", 36, 16), ("address", 52, 70),
        ("id_number", 122, 36), ("authority", 158, 30), ("valid_from", 188, 16), ("valid_to", 204, 16),
    ),
    CardType.HK_MO_TW_PERMIT: (
        ("name", 0, 30), ("sex", 30, 2), ("birth", 36, 16), ("address", 52, 70), ("id_number", 122, 36),
        ("authority", 158, 30), ("valid_from", 188, 16), ("valid_to", 204, 16), ("pass_number", 220, 18),
        ("issue_count", 238, 4),
    ),
    CardType.FOREIGN_PERMANENT: (
        ("name", 0, 120), ("sex", 120, 2), ("id_number", 122, 30), ("nationality", 152, 6),
        ("chinese_name", 158, 30), ("valid_from", 188, 16), ("valid_to", 204, 16), ("birth", 220, 16),
        ("version", 236, 4), ("authority", 240, 8),
    ),
}


class SamvFormatError(ValueError):
    """Data inside a well-framed reply is not what §2 describes. Messages never hold field values."""


class UnknownCardType(SamvFormatError):
    """The text block's type flag is none of blank, 'J', 'I' (e.g. the 2023 'Y' card, layout unknown)."""

    def __init__(self, flag: str) -> None:
        super().__init__(f"unknown card type flag {flag!r} at offset {TYPE_FLAG_OFFSET}")
        self.flag = flag


# -- frames -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """Host -> SAM: ``cmd``, ``para`` and (for no known command) ``data``."""

    cmd: int
    para: int
    data: bytes = b""

    @property
    def command(self) -> Command | None:
        try:
            return Command(self.cmd << 8 | self.para)
        except ValueError:
            return None


@dataclass(frozen=True, repr=False)
class Reply:
    """SAM -> host. ``data`` may hold a card's text and photo: the repr shows its length only."""

    sw1: int
    sw2: int
    sw3: int
    data: bytes = b""

    @property
    def status(self) -> Status | None:
        """SW3 as a :class:`Status`, or None for a code no table lists."""
        try:
            return Status(self.sw3)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        """SW1 = SW2 = 0 and SW3 one of the success codes (0x90, 0x9F)."""
        return self.sw1 == 0 and self.sw2 == 0 and self.sw3 in (Status.SUCCESS, Status.CARD_FOUND)

    def __repr__(self) -> str:
        return f"Reply(sw1=0x{self.sw1:02X}, sw2=0x{self.sw2:02X}, sw3=0x{self.sw3:02X}, {len(self.data)} data bytes)"


@dataclass(frozen=True)
class BadFrame:
    """A frame that arrived damaged: ``reason`` is "checksum" or "length"; ``length`` the bytes consumed."""

    reason: str
    length: int


Frame = Union[Request, Reply]


def checksum(data: bytes | bytearray) -> int:
    """CHK: XOR of ``data`` (LEN and everything after it, CHK excluded)."""
    return reduce(xor, data, 0)


def request(command: Command) -> Request:
    return Request(command.cmd, command.para)


def reply(status: int, data: bytes = b"", sw1: int = 0, sw2: int = 0) -> Reply:
    return Reply(sw1, sw2, int(status), bytes(data))


def encode(frame: Frame) -> bytes:
    """The bytes of a request (host) or a reply (simulator)."""
    if isinstance(frame, Request):
        fields = [frame.cmd, frame.para]
        max_len = MAX_REQUEST_LEN
    else:
        fields = [frame.sw1, frame.sw2, frame.sw3]
        max_len = MAX_REPLY_LEN
    for value in fields:
        if not 0 <= value <= 0xFF:
            raise ValueError(f"a frame byte must be 0..255, got {value!r}")
    body = bytes(fields) + bytes(frame.data)
    length = len(body) + 1
    if length > max_len:
        raise ValueError(f"LEN {length} is over {max_len}")
    payload = length.to_bytes(2, "big") + body
    return PREAMBLE + payload + bytes([checksum(payload)])


def _frame(buf: bytes | bytearray, min_len: int, max_len: int) -> tuple[int, bytes | BadFrame | None]:
    """Shared framing: ``(consumed, body between LEN and CHK | BadFrame | None)``."""
    start = buf.find(PREAMBLE)
    if start < 0:
        return len(buf) - _partial_preamble(buf), None
    if start > 0:
        return start, None
    if len(buf) < HEADER:
        return 0, None
    length = int.from_bytes(buf[5:7], "big")
    if length > max_len:
        return 1, None  # a false start: look for the next preamble
    if length < min_len:
        return HEADER, BadFrame("length", HEADER)
    total = HEADER + length
    if len(buf) < total:
        return 0, None
    if checksum(buf[5:total - 1]) != buf[total - 1]:
        return total, BadFrame("checksum", total)
    return total, bytes(buf[HEADER:total - 1])


def _partial_preamble(buf: bytes | bytearray) -> int:
    """How many bytes at the end of ``buf`` are the start of a preamble (kept for the next call)."""
    for keep in range(min(len(buf), len(PREAMBLE) - 1), 0, -1):
        if bytes(buf[-keep:]) == PREAMBLE[:keep]:
            return keep
    return 0


def decode(buf: bytes | bytearray) -> tuple[int, Reply | BadFrame | None]:
    """Take one reply off the front of ``buf`` (see the resynchronisation rules above)."""
    consumed, body = _frame(buf, MIN_REPLY_LEN, MAX_REPLY_LEN)
    if isinstance(body, bytes):
        return consumed, Reply(body[0], body[1], body[2], body[3:])
    return consumed, body


def decode_request(buf: bytes | bytearray) -> tuple[int, Request | BadFrame | None]:
    """Take one request off the front of ``buf`` (the simulator's side)."""
    consumed, body = _frame(buf, MIN_REQUEST_LEN, MAX_REQUEST_LEN)
    if isinstance(body, bytes):
        return consumed, Request(body[0], body[1], body[2:])
    return consumed, body


# -- read replies -------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class CardData:
    """The DATA of a read reply, split by its lengths. ``photo`` is WLT, opaque here."""

    text: bytes
    photo: bytes
    fingerprint: bytes | None = None  # only from 30 10

    def __repr__(self) -> str:
        fp = "no fingerprint" if self.fingerprint is None else f"{len(self.fingerprint)} fingerprint bytes"
        return f"CardData({len(self.text)} text bytes, {len(self.photo)} photo bytes, {fp})"


def parse_read_data(data: bytes) -> CardData:
    """Split a read reply's DATA by the lengths it starts with (2 or, with fingerprints, 3)."""
    if len(data) < 4:
        raise SamvFormatError(f"a read reply has at least 4 data bytes, not {len(data)}")
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    if 4 + text_len + photo_len == len(data):
        return CardData(bytes(data[4:4 + text_len]), bytes(data[4 + text_len:]))
    if len(data) >= 6:
        fp_len = int.from_bytes(data[4:6], "big")
        if 6 + text_len + photo_len + fp_len == len(data):
            photo_at = 6 + text_len
            return CardData(bytes(data[6:photo_at]), bytes(data[photo_at:photo_at + photo_len]),
                            bytes(data[photo_at + photo_len:]))
    raise SamvFormatError(f"read reply lengths ({text_len} + {photo_len}) do not match its {len(data)} data bytes")


def read_data(text: bytes, photo: bytes, fingerprint: bytes | None = None) -> bytes:
    """DATA of a read reply (what a SAM sends; for the simulator and tests)."""
    lengths = len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big")
    if fingerprint is None:
        return lengths + text + photo
    return lengths + len(fingerprint).to_bytes(2, "big") + text + photo + fingerprint


# -- the text block -------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class TextBlock:
    """What a card's 256-byte text block says, trimmed and typed. Fields a layout lacks are None.

    ``name`` is the Chinese name (resident, J) or the English name (I, whose Chinese name is
    ``chinese_name``). ``id_number`` is the resident ID number, the permit's 18-character ID number
    (J) or the 15-character permit number (I). ``authority`` is the issuing authority, or for I cards
    its 4-character code. ``valid_to`` None means long-term (长期).
    """

    card_type: CardType
    name: str
    sex: Sex
    birth: dt.date
    id_number: str
    valid_from: dt.date
    valid_to: dt.date | None
    nation: str | None = None  # 2-digit code, resident cards only
    address: str | None = None
    authority: str | None = None
    pass_number: str | None = None  # J: the travel permit (通行证) number
    issue_count: int | None = None  # J: how many times a permit was issued
    chinese_name: str | None = None  # I
    nationality: str | None = None  # I: ISO 3166 alpha-3 code
    version: str | None = None  # I: card version

    def __repr__(self) -> str:  # personal data: never in a repr
        return f"TextBlock({self.card_type.value})"


_DATE = re.compile(r"[0-9]{8}", re.ASCII)


def _text(raw: bytes) -> str:
    return raw.decode("utf-16-le", "replace").strip(" \x00")


def _date(text: str, field: str) -> dt.date:
    if not _DATE.fullmatch(text):
        raise SamvFormatError(f"{field} is not a YYYYMMDD date")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise SamvFormatError(f"{field} is not a calendar date") from None


def card_type_of(block: bytes) -> CardType:
    """The layout named by the type flag at offset 248. Raises :class:`UnknownCardType`."""
    flag = _text(block[TYPE_FLAG_OFFSET:TYPE_FLAG_OFFSET + 2])
    if flag == "":
        return CardType.RESIDENT
    for card_type, letter in TYPE_FLAGS.items():
        if flag == letter:
            return card_type
    raise UnknownCardType(flag)


def parse_text(block: bytes) -> TextBlock:
    """Parse a 256-byte text block. Raises :class:`SamvFormatError` (never showing a field's value)."""
    if len(block) != TEXT_LEN:
        raise SamvFormatError(f"a text block has {TEXT_LEN} bytes, not {len(block)}")
    card_type = card_type_of(block)
    raw = {name: _text(block[offset:offset + size]) for name, offset, size in LAYOUTS[card_type]}
    sex_code = raw.pop("sex")
    sex = Sex(int(sex_code)) if sex_code in ("0", "1", "2", "9") else Sex.UNKNOWN
    valid_to_text = raw.pop("valid_to")
    valid_to = None if valid_to_text.startswith(LONG_TERM) else _date(valid_to_text, "valid_to")
    issue_count = raw.pop("issue_count", None)
    return TextBlock(
        card_type=card_type,
        sex=sex,
        birth=_date(raw.pop("birth"), "birth"),
        valid_from=_date(raw.pop("valid_from"), "valid_from"),
        valid_to=valid_to,
        issue_count=int(issue_count) if issue_count and _DIGITS.fullmatch(issue_count) else None,
        **raw,
    )


_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def _field_bytes(value: str, size: int, name: str) -> bytes:
    data = value.encode("utf-16-le")
    if len(data) > size:
        raise ValueError(f"{name} is longer than {size // 2} characters")
    return data + " ".encode("utf-16-le") * ((size - len(data)) // 2)


def encode_text(text: TextBlock) -> bytes:
    """The 256-byte block a card holds (for the simulator and tests). Raises ValueError if a field
    does not fit its layout."""
    values = {
        "name": text.name, "sex": str(int(text.sex)), "nation": text.nation or "",
        "birth": text.birth.strftime("%Y%m%d"), "address": text.address or "", "id_number": text.id_number,
        "authority": text.authority or "", "valid_from": text.valid_from.strftime("%Y%m%d"),
        "valid_to": LONG_TERM if text.valid_to is None else text.valid_to.strftime("%Y%m%d"),
        "pass_number": text.pass_number or "",
        "issue_count": "" if text.issue_count is None else f"{text.issue_count:02d}",
        "chinese_name": text.chinese_name or "", "nationality": text.nationality or "", "version": text.version or "",
    }
    block = bytearray(_field_bytes("", TEXT_LEN, "block"))
    for name, offset, size in LAYOUTS[text.card_type]:
        block[offset:offset + size] = _field_bytes(values[name], size, name)
    flag = TYPE_FLAGS.get(text.card_type)
    if flag:
        block[TYPE_FLAG_OFFSET:TYPE_FLAG_OFFSET + 2] = flag.encode("utf-16-le")
    return bytes(block)


def decode_ucs2(data: bytes) -> str:
    """A UCS-2 LE text field (the extra address of 30 03), trimmed of its padding."""
    return _text(data[: len(data) // 2 * 2])
