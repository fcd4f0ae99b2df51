"""The generic Chinese "8A/80" lock board (2-50 channels): a pure codec (no I/O, no clocks).

Source: hardware-protocols.md §1.4 [MULTI]; 9600 8N1, board address 1-32 on DIP switches.
Every frame is ``HEAD BOARD LOCK FUNC [PARAM] BCC`` with **BCC = XOR of every preceding byte, the
head included**. LOCK is 1-based on the wire (lock 1 = channel 0); LOCK 0 means "every lock".

Requests (host -> board)::

    open one lock (pulse)          8A bb ll 11 BCC          ll = 0: open every lock of the board
    open one lock, pulse ss s      8A bb ll 11 ss BCC       ss = 1..9 [ONE]
    query one lock                 80 bb ll 33 BCC
    query all locks                80 bb 00 33 BCC
    open several (bitmap)          90 bb S1 S2 S3 BCC
    keep energised on / off        9A bb ll 11 BCC / 9B bb ll 11 BCC

Replies (board -> host)::

    to open                        8A bb ll ST BCC          an acknowledgement, never proof the door opened
    to query one                   80 bb ll ST BCC          ST 0x11 = closed, 0x00 = open (four sources agree)
    to query all                   80 bb S1..Sn 33 BCC      n = 3 (8/12/24-channel models, 7 bytes)
                                                            n = 7 (50-channel models, 11 bytes)

The S bytes of a query-all reply are a lock bitmap, bit 0 = the lowest channel of its byte. Which
byte holds channels 1-8 and whether bit 1 means closed or open differ between sources (a C# source:
first byte, 1 = closed; an Android capture: last byte, 1 = open), so :meth:`QueryAllReply.lock_bits`
takes the byte order and ``hal`` applies the polarity. The Android source's second caption,
"lock 5 open -> ``80 01 00 00 20 33 92``", has bit 5 set, which is lock 6 when lock 1 is bit 0 (as
its first caption, lock 2 -> ``02``, fixes); no byte order or polarity reads it as lock 5, so it is
taken as a slip in the caption (a test says so). What ST means in an open reply is not
documented: it is kept raw. No reply to open-several or keep-energised is known.

**Why the host decoders need to know what was asked.** A query-one and a query-all reply share the
head 0x80, and one query-all reply in 256 begins with five bytes that check out as a query-one
reply; a 50-channel reply likewise may begin with a valid 7-byte one. The host knows which query it
sent and which model it talks to, so :func:`decode_reply` takes the number of status bytes and
decodes query-all replies only, and :func:`decode_query_one_reply` decodes query-one replies only.
Both also decode open replies (0x8A), so a late acknowledgement is seen as a frame, not garbage.
On the board side the two lengths of an open request cannot be confused: with board and lock
below 0x40, the BCC of a 5-byte open is 0x80-0xBF and never a pulse byte 1-9.

Resynchronisation rules (some boards send garbage before the real reply, §1.4):

* bytes before a head byte (0x80, 0x8A; and 0x90, 0x9A, 0x9B for requests) are skipped. §1.4
  also names 0x90 as a reply head, but no reply with that head is known, so the host decoders
  skip it like any garbage byte (a resync point that would be rejected at once: the same effect);
* a head followed by an impossible byte (board or lock above :data:`MAX_ADDRESS`, the wrong FUNC
  byte, a pulse outside 1-9) or a wrong BCC is a false start: only that head byte is dropped and
  the search restarts at the next head byte;
* a frame that is not complete yet returns ``(0, None)``: the caller appends bytes and calls again;
* trailing bytes after a frame are left in the buffer for the next call.

The decoders never raise. An XOR check catches every single-bit error in a frame of known length,
so with the reply kind fixed a single flipped bit never decodes at the reply's start; but a status
byte can itself be a head byte, and a frame hidden in the status bytes is found once the real one
is rejected. The host also checks board and kind (``bus.transact``'s ``expect``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import xor
from typing import Union

from firmware_bridge.bitmap import bits_from_bytes, bytes_from_bits

MAX_ADDRESS = 0x3F  # board and lock bytes accepted by the codec (DIP boards 1-32, locks 0-50)
ALL_LOCKS = 0  # LOCK byte meaning "every lock of the board"
ST_CLOSED = 0x11  # query-one reply: lock closed
ST_OPEN = 0x00  # query-one reply: lock open
STATUS_BYTE_COUNTS = (3, 7)  # S bytes in a query-all reply: 8/12/24-channel models, 50-channel models
MAX_CHANNELS = 50
PULSE_SECONDS = range(1, 10)


class Head(enum.IntEnum):
    QUERY = 0x80
    OPEN = 0x8A
    OPEN_SEVERAL = 0x90
    HOLD_ON = 0x9A  # keep energised
    HOLD_OFF = 0x9B


class Func(enum.IntEnum):
    OPEN = 0x11
    QUERY = 0x33


REQUEST_HEADS = frozenset(h.value for h in Head)
REPLY_HEADS = frozenset({Head.QUERY.value, Head.OPEN.value})  # no reply to 0x90/0x9A/0x9B is known


def bcc(data: bytes | bytearray) -> int:
    """BCC byte: XOR of every byte of ``data`` (the head included)."""
    return reduce(xor, data, 0)


def status_bytes_for(channels: int) -> int:
    """Status bytes in the query-all reply of a board model with ``channels`` channels (1-50)."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"8A/80 boards have 1..{MAX_CHANNELS} channels, not {channels}")
    return 3 if channels <= 24 else 7


def _check(name: str, value: int, low: int = 0, high: int = MAX_ADDRESS) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value!r}")


# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenRequest:
    """``8A bb ll 11 [ss] BCC``. ``lock`` is the wire lock number (1-based; 0 = every lock)."""

    board: int
    lock: int
    pulse_s: int | None = None  # seconds 1-9 [ONE]; None = the board's default pulse

    def __post_init__(self) -> None:
        _check("board", self.board)
        _check("lock", self.lock)
        if self.pulse_s is not None and self.pulse_s not in PULSE_SECONDS:
            raise ValueError(f"pulse must be 1..9 s, got {self.pulse_s!r}")


@dataclass(frozen=True)
class QueryRequest:
    """``80 bb ll 33 BCC``: one lock (1-based), or every lock with ``lock=0``."""

    board: int
    lock: int

    def __post_init__(self) -> None:
        _check("board", self.board)
        _check("lock", self.lock)


@dataclass(frozen=True)
class OpenSeveralRequest:
    """``90 bb S1 S2 S3 BCC``: the 3 raw bitmap bytes as sent (their byte order is not settled)."""

    board: int
    bitmap: bytes

    def __post_init__(self) -> None:
        _check("board", self.board)
        object.__setattr__(self, "bitmap", bytes(self.bitmap))
        if len(self.bitmap) != 3:
            raise ValueError("open-several carries 3 bitmap bytes")


@dataclass(frozen=True)
class HoldRequest:
    """``9A bb ll 11 BCC`` (keep energised, ``on=True``) or ``9B bb ll 11 BCC`` (release)."""

    board: int
    lock: int
    on: bool

    def __post_init__(self) -> None:
        _check("board", self.board)
        _check("lock", self.lock)


Request = Union[OpenRequest, QueryRequest, OpenSeveralRequest, HoldRequest]


# -- replies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenReply:
    """``8A bb ll ST BCC``: the board took the open command. ``status`` is kept raw."""

    board: int
    lock: int
    status: int

    def __post_init__(self) -> None:
        _check("board", self.board)
        _check("lock", self.lock)
        _check("status", self.status, 0, 0xFF)


@dataclass(frozen=True)
class QueryOneReply:
    """``80 bb ll ST BCC``: ST 0x11 closed, 0x00 open."""

    board: int
    lock: int
    status: int

    def __post_init__(self) -> None:
        _check("board", self.board)
        _check("lock", self.lock)
        _check("status", self.status, 0, 0xFF)

    @property
    def closed(self) -> bool | None:
        """True (0x11), False (0x00), or None for any other ST."""
        return {ST_CLOSED: True, ST_OPEN: False}.get(self.status)


@dataclass(frozen=True)
class QueryAllReply:
    """``80 bb S1..Sn 33 BCC`` with n = 3 or 7 raw status bytes, in wire order."""

    board: int
    data: bytes

    def __post_init__(self) -> None:
        _check("board", self.board)
        object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) not in STATUS_BYTE_COUNTS:
            raise ValueError(f"a query-all reply carries 3 or 7 status bytes, not {len(self.data)}")

    def lock_bits(self, *, first_byte_first: bool = True) -> tuple[bool, ...]:
        """Raw bits, index 0 = channel 0 (lock 1). Their meaning depends on the board's polarity."""
        return bits_from_bytes(self.data, first_byte_first=first_byte_first)


Reply = Union[OpenReply, QueryOneReply, QueryAllReply]
Frame = Union[Request, Reply]


# -- constructors named after what they do (channels are 0-based here) ------------------------


def open_request(board: int, channel: int, *, pulse_s: int | None = None) -> OpenRequest:
    """Pulse the lock of ``channel`` (0-based; the frame carries ``channel + 1``)."""
    _check("channel", channel, 0, MAX_CHANNELS - 1)
    return OpenRequest(board, channel + 1, pulse_s)


def open_all_request(board: int) -> OpenRequest:
    """Every lock of ``board`` at once. A constant frame: see the security note in §1.4."""
    return OpenRequest(board, ALL_LOCKS)


def query_request(board: int, channel: int) -> QueryRequest:
    _check("channel", channel, 0, MAX_CHANNELS - 1)
    return QueryRequest(board, channel + 1)


def query_all_request(board: int) -> QueryRequest:
    return QueryRequest(board, ALL_LOCKS)


def open_several_request(board: int, channels: Iterable[int], *, first_byte_first: bool = True) -> OpenSeveralRequest:
    """Open the given 0-based channels (0..23) at once."""
    chosen = set(channels)
    if not chosen <= set(range(24)):
        raise ValueError(f"open-several reaches channels 0..23, not {sorted(chosen - set(range(24)))}")
    bits = [ch in chosen for ch in range(24)]
    return OpenSeveralRequest(board, bytes_from_bits(bits, 3, first_byte_first=first_byte_first))


def hold_request(board: int, channel: int, on: bool) -> HoldRequest:
    _check("channel", channel, 0, MAX_CHANNELS - 1)
    return HoldRequest(board, channel + 1, on)


def query_all_reply(
    board: int, bits: Sequence[bool], *, status_bytes: int = 3, first_byte_first: bool = True
) -> QueryAllReply:
    """A query-all reply carrying raw ``bits`` (index 0 = channel 0) in ``status_bytes`` bytes."""
    if status_bytes not in STATUS_BYTE_COUNTS:
        raise ValueError(f"status_bytes must be 3 or 7, not {status_bytes}")
    return QueryAllReply(board, bytes_from_bits(bits, status_bytes, first_byte_first=first_byte_first))


# -- encode / decode ----------------------------------------------------------------------------


def encode(frame: Frame) -> bytes:
    """The exact bytes of ``frame`` on the wire, BCC included."""
    if isinstance(frame, OpenRequest):
        body = bytes([Head.OPEN, frame.board, frame.lock, Func.OPEN])
        if frame.pulse_s is not None:
            body += bytes([frame.pulse_s])
    elif isinstance(frame, QueryRequest):
        body = bytes([Head.QUERY, frame.board, frame.lock, Func.QUERY])
    elif isinstance(frame, OpenSeveralRequest):
        body = bytes([Head.OPEN_SEVERAL, frame.board]) + frame.bitmap
    elif isinstance(frame, HoldRequest):
        body = bytes([Head.HOLD_ON if frame.on else Head.HOLD_OFF, frame.board, frame.lock, Func.OPEN])
    elif isinstance(frame, OpenReply):
        body = bytes([Head.OPEN, frame.board, frame.lock, frame.status])
    elif isinstance(frame, QueryOneReply):
        body = bytes([Head.QUERY, frame.board, frame.lock, frame.status])
    elif isinstance(frame, QueryAllReply):
        body = bytes([Head.QUERY, frame.board]) + frame.data + bytes([Func.QUERY])
    else:
        raise TypeError(f"cannot encode {frame!r}")
    return body + bytes([bcc(body)])


def _skip_to_next_head(buf: bytes | bytearray, start: int, heads: frozenset[int]) -> int:
    for index in range(start, len(buf)):
        if buf[index] in heads:
            return index
    return len(buf)


_NEED_MORE = 0
_IMPOSSIBLE = -1
_LONGEST = 4 + max(STATUS_BYTE_COUNTS)  # the longest frame: an 11-byte query-all reply


def _open_reply_length(buf: bytes | bytearray) -> int:
    """5 when ``buf`` can start an open reply, _IMPOSSIBLE otherwise."""
    if any(b > MAX_ADDRESS for b in buf[1:3]):
        return _IMPOSSIBLE
    return 5


def _query_all_length(status_bytes: int):
    def length(buf: bytes | bytearray) -> int:
        if len(buf) > 1 and buf[1] > MAX_ADDRESS:
            return _IMPOSSIBLE
        func_at = 2 + status_bytes
        if len(buf) > func_at and buf[func_at] != Func.QUERY:
            return _IMPOSSIBLE
        return status_bytes + 4

    return length


def _query_one_length(buf: bytes | bytearray) -> int:
    return _open_reply_length(buf)


def _request_length(buf: bytes | bytearray) -> int:
    """Length of the request starting at ``buf[0]`` (a head), _NEED_MORE, or _IMPOSSIBLE."""
    head = buf[0]
    if head == Head.OPEN_SEVERAL:
        return _IMPOSSIBLE if len(buf) > 1 and buf[1] > MAX_ADDRESS else 6
    if any(b > MAX_ADDRESS for b in buf[1:3]):
        return _IMPOSSIBLE
    func = Func.QUERY if head == Head.QUERY else Func.OPEN
    if len(buf) > 3 and buf[3] != func:
        return _IMPOSSIBLE
    if head != Head.OPEN:
        return 5
    if len(buf) < 5:
        return _NEED_MORE
    if buf[4] == bcc(buf[:4]):
        return 5  # never also a pulse byte: see the module docstring
    return 6 if buf[4] in PULSE_SECONDS else _IMPOSSIBLE


def _decode(buf: bytes | bytearray, heads: frozenset[int], length_of) -> tuple[int, bytes | None]:
    """Shared framing: (consumed, raw frame | None). ``length_of(buf)`` knows the head's frames."""
    if not buf:
        return 0, None
    if buf[0] not in heads:
        return _skip_to_next_head(buf, 1, heads), None
    total = length_of(buf[:_LONGEST])
    if total == _IMPOSSIBLE:
        return _skip_to_next_head(buf, 1, heads), None
    if total == _NEED_MORE or len(buf) < total:
        return 0, None
    raw = bytes(buf[:total])
    if bcc(raw) != 0:  # XOR over the frame including its BCC is 0
        return _skip_to_next_head(buf, 1, heads), None
    return total, raw


def decode_request(buf: bytes | bytearray) -> tuple[int, Request | None]:
    """Board-side decoder: find the next request in ``buf``. Never raises."""
    consumed, raw = _decode(buf, REQUEST_HEADS, _request_length)
    if raw is None:
        return consumed, None
    head = raw[0]
    if head == Head.OPEN:
        return consumed, OpenRequest(raw[1], raw[2], raw[4] if len(raw) == 6 else None)
    if head == Head.QUERY:
        return consumed, QueryRequest(raw[1], raw[2])
    if head == Head.OPEN_SEVERAL:
        return consumed, OpenSeveralRequest(raw[1], raw[2:5])
    return consumed, HoldRequest(raw[1], raw[2], on=head == Head.HOLD_ON)


def decode_reply(
    buf: bytes | bytearray, *, status_bytes: int = 3
) -> tuple[int, OpenReply | QueryAllReply | None]:
    """Host-side decoder after a query-all (or an open): open and query-all replies.

    Never raises on any bytes. ``status_bytes``: 3 or 7, the model's query-all reply size
    (:func:`status_bytes_for`); any other value is a programming error (``ValueError``).
    """
    if status_bytes not in STATUS_BYTE_COUNTS:
        raise ValueError(f"status_bytes must be 3 or 7, not {status_bytes!r}")
    query_all = _query_all_length(status_bytes)

    def length(head_buf: bytes | bytearray) -> int:
        return _open_reply_length(head_buf) if head_buf[0] == Head.OPEN else query_all(head_buf)

    consumed, raw = _decode(buf, REPLY_HEADS, length)
    if raw is None:
        return consumed, None
    if raw[0] == Head.OPEN:
        return consumed, OpenReply(raw[1], raw[2], raw[3])
    return consumed, QueryAllReply(raw[1], raw[2:-2])


def reply_checksum_error(buf: bytes | bytearray, *, status_bytes: int = 3) -> bool:
    """True when ``buf`` starts with a complete open or query-all reply whose BCC alone is wrong (the
    bus statistics' checksum errors; ``decode_reply`` skips it like garbage). Never raises on bytes."""
    if not buf or buf[0] not in REPLY_HEADS:
        return False
    length = _open_reply_length if buf[0] == Head.OPEN else _query_all_length(status_bytes)
    total = length(buf[:_LONGEST])
    if total in (_IMPOSSIBLE, _NEED_MORE) or len(buf) < total:
        return False
    return bcc(buf[:total]) != 0


def decode_query_one_reply(buf: bytes | bytearray) -> tuple[int, OpenReply | QueryOneReply | None]:
    """Host-side decoder after a query-one (or an open): open and query-one replies. Never raises."""

    def length(head_buf: bytes | bytearray) -> int:
        return _open_reply_length(head_buf) if head_buf[0] == Head.OPEN else _query_one_length(head_buf)

    consumed, raw = _decode(buf, REPLY_HEADS, length)
    if raw is None:
        return consumed, None
    kind = OpenReply if raw[0] == Head.OPEN else QueryOneReply
    return consumed, kind(raw[1], raw[2], raw[3])


def decode(buf: bytes | bytearray, direction: str = "reply", *, status_bytes: int = 3) -> tuple[int, Frame | None]:
    """``decode_reply`` (``direction="reply"``), ``decode_query_one_reply`` (``"query_one_reply"``)
    or ``decode_request`` (``"request"``)."""
    if direction == "reply":
        return decode_reply(buf, status_bytes=status_bytes)
    if direction == "query_one_reply":
        return decode_query_one_reply(buf)
    if direction == "request":
        return decode_request(buf)
    raise ValueError(f"direction must be 'reply', 'query_one_reply' or 'request', got {direction!r}")
