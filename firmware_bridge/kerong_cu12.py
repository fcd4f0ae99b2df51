"""Kerong CU12 lock board protocol (12 locks per board): a pure codec (no I/O, no clocks).

Source: hardware-protocols.md §1.2 [ONE], taken from a public KU16 -> CU12 migration project.
Requests and replies have the same shape; the ASK byte tells them apart::

    +------+------+---------+------+------+---------+------+- - - - - - -+------+
    | STX  | ADDR | LOCKNUM | CMD  | ASK  | DATALEN | ETX  | DATA...     | SUM  |   DataPosition.BEFORE_SUM
    | 0x02 |      |         |      |      |         | 0x03 | DATALEN B   |      |   (default)
    +------+------+---------+------+------+---------+------+- - - - - - -+------+

    +------+------+---------+------+------+---------+------+------+- - - - - - -+
    | STX  | ADDR | LOCKNUM | CMD  | ASK  | DATALEN | ETX  | SUM  | DATA...     |   DataPosition.AFTER_SUM
    +------+------+---------+------+------+---------+------+------+- - - - - - -+

    ADDR     board 0x00-0x0F (DIP switch), 0x10 = broadcast
    LOCKNUM  lock 0x00-0x0B (lock 1-12), 0x0C = every lock of the board
    ASK      0x00 in a request; in a reply the board's answer (:class:`Ask`): 0x10 success,
             0x11 failure, 0x12 timeout, 0x13 unknown command, 0x14 checksum error
    SUM      (sum of every other byte of the frame, DATA included) & 0xFF

**Where DATA goes is not settled** (§1.2, §10 question 3): the source's builder code puts it before
SUM, its prose after SUM. Frames without data (status and unlock requests, unlock replies) are the
same either way. The layout is a parameter of :func:`encode` and the decoders, BEFORE_SUM by
default. Evidence seen since the spec was written: the same project's reply parser documents a
status reply ``02 00 00 80 10 02 03 99 02 00`` and a version reply ``02 00 00 8F 10 02 03 C8 10 12``,
both AFTER_SUM and with SUM covering DATA; they are third-party examples, not captures.

**Assumption, one place to change** (:data:`STATUS_DATA_LEN`, :meth:`Reply.status_bits`): a status
reply is ``CMD 0x80, ASK 0x10, DATALEN 2`` with a 12-bit lock bitmap in DATA, bit 0 of the first
byte = lock 1 (the two bytes little-endian; bits 12-15 unused). The spec gives no status layout;
the migration project's parser reads it this way. What a bit means (closed or open) is the
board's polarity, set in ``hal``. No item sensors are known on this board.

Framing is by length: DATALEN says how many DATA bytes follow, so a frame is ``8 + DATALEN`` bytes.
:data:`MAX_DATA_LEN` bounds DATALEN so a false header cannot make the reader wait for 255 bytes.

Resynchronisation rules of :func:`decode_reply` / :func:`decode_request`:

* bytes before an STX are garbage: skipped up to the next STX (or all of them if there is none);
* an STX whose header is impossible (ADDR > 0x10, LOCKNUM > 0x0C, unknown CMD, an ASK of the
  wrong direction, DATALEN out of range, no ETX at offset 6) or whose SUM is wrong is a false
  start: only that STX is dropped and the search restarts at the next STX. Header fields are
  checked as soon as they arrive, so a false start is usually dropped before the frame's length;
* a frame that is not complete yet returns ``(0, None)``: the caller appends bytes and calls again;
* trailing bytes after a frame are left in the buffer for the next call.

The decoders never raise. They return ``(consumed, frame | None)`` like every codec here.

A byte sum catches every single-bit error in the bytes it covers, but DATALEN decides which bytes
those are: a flipped DATALEN bit can reframe a reply into a shorter or longer one whose sum
happens to match (tests show one). The host therefore also checks the reply's address and
command (``bus.transact``'s ``expect``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Union

from firmware_bridge.bitmap import bits_from_bytes, bytes_from_bits

STX = 0x02
ETX = 0x03
BROADCAST = 0x10  # ADDR that every board obeys
ALL_LOCKS = 0x0C  # LOCKNUM for "every lock" (unlock all; also what the status example sends)
LOCKS_PER_BOARD = 12
HEADER_LEN = 7  # STX .. ETX
MAX_DATA_LEN = 16  # [assumption] no known frame carries more than 2 data bytes
STATUS_DATA_LEN = 2  # [assumption] see the module docstring
BAUD_CODES: Mapping[int, int] = {9600: 0, 19200: 1, 57600: 2, 115200: 3}


class DataPosition(enum.Enum):
    """Where DATA sits. After SUM is the default: the frames captured in the source project's reply
    parser (``02 00 00 80 10 02 03 99 02 00``, SUM 0x99 covering header and DATA) put it there, as
    its prose does; its builder code puts it before SUM. Calibrate with the acceptance test."""

    BEFORE_SUM = "before_sum"
    AFTER_SUM = "after_sum"


class Command(enum.IntEnum):
    STATUS = 0x80
    UNLOCK = 0x81
    PULSE_TIME = 0x82  # query (no data) / set (u16 big-endian, unit 10 ms; default 550 ms)
    BAUD = 0x83  # query / set (1 byte: 0=9600 1=19200 2=57600 3=115200)
    DELAYED_UNLOCK = 0x84  # query / set seconds (1 byte)
    PUSH_DOOR_WAIT = 0x85  # query / set seconds (1 byte)
    FACTORY_INIT = 0x8E
    VERSION = 0x8F  # reply data [software, hardware], e.g. 0x10 0x12 = 1.0 / 1.2


#: commands after which the board needs more than 500 ms before the next command (§1.2)
SLOW_COMMANDS = frozenset({Command.PULSE_TIME, Command.DELAYED_UNLOCK, Command.PUSH_DOOR_WAIT, Command.FACTORY_INIT})


class Ask(enum.IntEnum):
    """ASK byte: 0x00 in requests, the board's verdict in replies."""

    REQUEST = 0x00
    SUCCESS = 0x10
    FAILURE = 0x11
    TIMEOUT = 0x12
    UNKNOWN_COMMAND = 0x13
    CHECKSUM_ERROR = 0x14


REPLY_ASKS = frozenset(a.value for a in Ask if a is not Ask.REQUEST)

#: DATALEN values a request may carry per command (0 = query for the query/set commands)
REQUEST_DATA_LENS: Mapping[int, frozenset[int]] = {
    Command.STATUS: frozenset({0}),
    Command.UNLOCK: frozenset({0}),
    Command.PULSE_TIME: frozenset({0, 2}),
    Command.BAUD: frozenset({0, 1}),
    Command.DELAYED_UNLOCK: frozenset({0, 1}),
    Command.PUSH_DOOR_WAIT: frozenset({0, 1}),
    Command.FACTORY_INIT: frozenset({0}),
    Command.VERSION: frozenset({0}),
}


def checksum(data: bytes | bytearray) -> int:
    """SUM byte: the sum of ``data`` modulo 256 (pass the header and DATA, never SUM itself)."""
    return sum(data) & 0xFF


def _check(name: str, value: int, high: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{name} must be 0..{high:#04x}, got {value!r}")


@dataclass(frozen=True)
class Request:
    """A host -> board frame. ``lock`` is LOCKNUM: 0-11, or :data:`ALL_LOCKS`."""

    board: int
    lock: int
    command: Command
    data: bytes = b""

    def __post_init__(self) -> None:
        _check("board", self.board, BROADCAST)
        _check("lock", self.lock, ALL_LOCKS)
        if self.command not in REQUEST_DATA_LENS:
            raise ValueError(f"{self.command!r} is not a CU12 command")
        object.__setattr__(self, "command", Command(self.command))
        object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) not in REQUEST_DATA_LENS[self.command]:
            raise ValueError(f"{self.command.name} takes {sorted(REQUEST_DATA_LENS[self.command])} data bytes")

    @property
    def ask(self) -> Ask:
        return Ask.REQUEST


@dataclass(frozen=True)
class Reply:
    """A board -> host frame: ``ask`` is the board's verdict, ``data`` the command's payload."""

    board: int
    lock: int
    command: Command
    ask: Ask
    data: bytes = b""

    def __post_init__(self) -> None:
        _check("board", self.board, BROADCAST)
        _check("lock", self.lock, ALL_LOCKS)
        object.__setattr__(self, "command", Command(self.command))
        if self.ask not in REPLY_ASKS:
            raise ValueError(f"{self.ask!r} is not a reply ASK")
        object.__setattr__(self, "ask", Ask(self.ask))
        object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) > MAX_DATA_LEN:
            raise ValueError(f"at most {MAX_DATA_LEN} data bytes")

    @property
    def ok(self) -> bool:
        return self.ask is Ask.SUCCESS

    def status_bits(self, *, first_byte_first: bool = True) -> tuple[bool, ...] | None:
        """Raw lock bits of a successful status reply (index 0 = lock 1), else None.

        [assumption] 2 data bytes, lock 1 = bit 0 of the first byte; ``first_byte_first=False``
        reads the two bytes the other way round.
        """
        if self.command is not Command.STATUS or not self.ok or len(self.data) != STATUS_DATA_LEN:
            return None
        return bits_from_bytes(self.data, first_byte_first=first_byte_first)[:LOCKS_PER_BOARD]


Frame = Union[Request, Reply]


# -- constructors named after what they do ------------------------------------------------------


def status_request(board: int) -> Request:
    """Status of every lock of ``board`` (LOCKNUM 0x0C, as in the spec's example)."""
    return Request(board, ALL_LOCKS, Command.STATUS)


def unlock_request(board: int, lock: int) -> Request:
    """Unlock ``lock`` (0-based channel, 0..11) of ``board``."""
    if not 0 <= lock < LOCKS_PER_BOARD:
        raise ValueError(f"lock must be 0..{LOCKS_PER_BOARD - 1}, got {lock}")
    return Request(board, lock, Command.UNLOCK)


def unlock_all_request(board: int) -> Request:
    return Request(board, ALL_LOCKS, Command.UNLOCK)


def pulse_time_request(board: int, pulse_ms: int | None = None) -> Request:
    """Query (``None``) or set the unlock pulse; the board counts 10 ms units, so it rounds down."""
    if pulse_ms is None:
        return Request(board, 0, Command.PULSE_TIME)
    units = pulse_ms // 10
    if not 0 <= units <= 0xFFFF:
        raise ValueError(f"pulse time out of range: {pulse_ms} ms")
    return Request(board, 0, Command.PULSE_TIME, units.to_bytes(2, "big"))


def set_baud_request(board: int, baudrate: int) -> Request:
    try:
        code = BAUD_CODES[baudrate]
    except KeyError:
        raise ValueError(f"unsupported baud rate {baudrate}; known: {sorted(BAUD_CODES)}") from None
    return Request(board, 0, Command.BAUD, bytes([code]))


def version_request(board: int) -> Request:
    return Request(board, 0, Command.VERSION)


def reply_to(request: Request, ask: Ask = Ask.SUCCESS, data: bytes = b"") -> Reply:
    """The board's answer to ``request`` (same ADDR, LOCKNUM and CMD)."""
    return Reply(request.board, request.lock, request.command, ask, data)


def status_reply(
    board: int, bits: Sequence[bool], *, lock: int = ALL_LOCKS, first_byte_first: bool = True
) -> Reply:
    """A successful status reply carrying raw lock ``bits`` (index 0 = lock 1, at most 12)."""
    if len(bits) > LOCKS_PER_BOARD:
        raise ValueError(f"at most {LOCKS_PER_BOARD} locks per board")
    data = bytes_from_bits(bits, STATUS_DATA_LEN, first_byte_first=first_byte_first)
    return Reply(board, lock, Command.STATUS, Ask.SUCCESS, data)


# -- encode / decode ----------------------------------------------------------------------------


def encode(frame: Frame, *, data_position: DataPosition = DataPosition.AFTER_SUM) -> bytes:
    """The exact bytes of ``frame`` on the wire, checksum included."""
    if not isinstance(frame, (Request, Reply)):
        raise TypeError(f"cannot encode {frame!r}")
    header = bytes([STX, frame.board, frame.lock, frame.command, frame.ask, len(frame.data), ETX])
    total = checksum(header + frame.data)
    if data_position is DataPosition.BEFORE_SUM:
        return header + frame.data + bytes([total])
    return header + bytes([total]) + frame.data


def _skip_to_next_stx(buf: bytes | bytearray, start: int) -> int:
    index = buf.find(STX, start)
    return len(buf) if index < 0 else index


def _header_is_impossible(buf: bytes | bytearray, request: bool) -> bool:
    """Check every header byte that has arrived; ``buf[0]`` is an STX."""
    n = len(buf)
    if n > 1 and buf[1] > BROADCAST:
        return True
    if n > 2 and buf[2] > ALL_LOCKS:
        return True
    if n > 3 and buf[3] not in REQUEST_DATA_LENS:
        return True
    if n > 4 and (buf[4] != Ask.REQUEST if request else buf[4] not in REPLY_ASKS):
        return True
    if n > 5 and (buf[5] not in REQUEST_DATA_LENS[buf[3]] if request else buf[5] > MAX_DATA_LEN):
        return True
    return n > 6 and buf[6] != ETX


def _decode(
    buf: bytes | bytearray, request: bool, data_position: DataPosition
) -> tuple[int, tuple[bytes, bytes] | None]:
    """Shared framing: (consumed, (header, data) | None)."""
    if not buf:
        return 0, None
    if buf[0] != STX:
        return _skip_to_next_stx(buf, 1), None
    if _header_is_impossible(buf[:HEADER_LEN], request):
        return _skip_to_next_stx(buf, 1), None
    if len(buf) < HEADER_LEN:
        return 0, None
    total = HEADER_LEN + 1 + buf[5]
    if len(buf) < total:
        return 0, None
    header = bytes(buf[:HEADER_LEN])
    if data_position is DataPosition.BEFORE_SUM:
        data, sum_byte = bytes(buf[HEADER_LEN : total - 1]), buf[total - 1]
    else:
        data, sum_byte = bytes(buf[HEADER_LEN + 1 : total]), buf[HEADER_LEN]
    if checksum(header + data) != sum_byte:
        return _skip_to_next_stx(buf, 1), None
    return total, (header, data)


def decode_request(
    buf: bytes | bytearray, *, data_position: DataPosition = DataPosition.AFTER_SUM
) -> tuple[int, Request | None]:
    """Board-side decoder: find the next request (ASK 0x00) in ``buf``. Never raises."""
    consumed, parts = _decode(buf, True, data_position)
    if parts is None:
        return consumed, None
    header, data = parts
    return consumed, Request(header[1], header[2], Command(header[3]), data)


def decode_reply(
    buf: bytes | bytearray, *, data_position: DataPosition = DataPosition.AFTER_SUM
) -> tuple[int, Reply | None]:
    """Host-side decoder: find the next reply (ASK 0x10-0x14) in ``buf``. Never raises."""
    consumed, parts = _decode(buf, False, data_position)
    if parts is None:
        return consumed, None
    header, data = parts
    return consumed, Reply(header[1], header[2], Command(header[3]), Ask(header[4]), data)


def reply_checksum_error(buf: bytes | bytearray, *, data_position: DataPosition = DataPosition.AFTER_SUM) -> bool:
    """True when ``buf`` starts with a complete reply whose checksum alone is wrong (the bus
    statistics' checksum errors; ``decode_reply`` skips it like garbage). Never raises."""
    if not buf or buf[0] != STX or _header_is_impossible(buf[:HEADER_LEN], False) or len(buf) < HEADER_LEN:
        return False
    total = HEADER_LEN + 1 + buf[5]
    if len(buf) < total:
        return False
    header = bytes(buf[:HEADER_LEN])
    if data_position is DataPosition.BEFORE_SUM:
        data, sum_byte = bytes(buf[HEADER_LEN : total - 1]), buf[total - 1]
    else:
        data, sum_byte = bytes(buf[HEADER_LEN + 1 : total]), buf[HEADER_LEN]
    return checksum(header + data) != sum_byte


def decode(
    buf: bytes | bytearray,
    direction: str = "reply",
    *,
    data_position: DataPosition = DataPosition.AFTER_SUM,
) -> tuple[int, Frame | None]:
    """``decode_reply`` (``direction="reply"``, host side) or ``decode_request`` (``"request"``)."""
    if direction == "reply":
        return decode_reply(buf, data_position=data_position)
    if direction == "request":
        return decode_request(buf, data_position=data_position)
    raise ValueError(f"direction must be 'reply' or 'request', got {direction!r}")
