"""The "CU" 48-lock board, 6-byte request variant: a pure codec (no I/O, no clocks).

Source: hardware-protocols.md §1.3 [ONE], a public ``CuProtocol`` TypeScript module (vendor not
named; possibly a Kerong CU48). Request (host -> board), always 6 bytes::

    +------+------+------+------+------+------+
    | STX  | DEV  | LOCK | CMD  | ETX  | SUM  |
    | 0x02 |      |      |      | 0x03 |      |
    +------+------+------+------+------+------+
    DEV   board address, one byte (its DIP range is not documented: 0x00-0xFF accepted)
    LOCK  0-based lock 0-47 for open; 0 for status
    CMD   0x60 status, 0x61 open
    SUM   (sum of every byte before it) & 0xFF

Reply (board -> host). The spec only says "byte 3 = 0x75 means success" and "a status reply
carries DLEN=6 followed by 6 bytes". The layout below is the one the source module documents in
its own response diagrams [ONE, not a capture]::

    +------+------+------+------+------+- - - - - - -+------+
    | STX  | DEV  | LOCK | ST   | DLEN | DATA...     | SUM  |
    | 0x02 |      |      |      | 0|6  | DLEN bytes  |      |
    +------+------+------+------+------+- - - - - - -+------+
    ST    0x75 success, 0x00 failure (the module's enum; no other value is known)
    DLEN  0 for an open acknowledgement (6 bytes), 6 for a status reply (12 bytes)
    DATA  48 lock bits: bit 0 of the first byte = lock 1 (channel 0), as the module reads them.
          The module reads bit = 1 as closed; ``hal`` makes polarity a per-bank setting.
    Note: a reply has no ETX. SUM = (sum of every byte before it) & 0xFF.

No item sensors are known for this board.

Framing is by length: DLEN (only 0 and 6 exist) fixes the reply's length; requests are 6 bytes.
Each direction has its own decoder: CMD 0x60/0x61 never appear at offset 3 of a reply, and 0x75 or
0x00 never at offset 3 of a request.

Resynchronisation rules of :func:`decode_reply` / :func:`decode_request`:

* bytes before an STX are garbage: skipped up to the next STX (or all of them if there is none);
* an STX whose header is impossible (request: unknown CMD, LOCK > 47, no ETX at offset 4; reply:
  unknown ST, DLEN other than 0 or 6, LOCK > 47) or whose SUM is wrong is a false start: only
  that STX is dropped and the search restarts at the next STX. Header bytes are checked as soon
  as they arrive;
* a frame that is not complete yet returns ``(0, None)``: the caller appends bytes and calls again;
* trailing bytes after a frame are left in the buffer for the next call.

The decoders never raise. A byte sum catches every single-bit error in a frame of fixed length,
and no single flipped bit turns DLEN 0 into 6 or ST 0x75 into 0x00, so a single flipped bit never
yields a frame at the reply's start. A run of zero bytes after an STX is, however, a valid failure
reply (``02 00 00 00 00 02``): the host also checks address and kind (``bus.transact``'s ``expect``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from firmware_bridge.bitmap import bits_from_bytes, bytes_from_bits

STX = 0x02
ETX = 0x03
LOCKS_PER_BOARD = 48
REQUEST_LEN = 6
STATUS_DATA_LEN = 6
REPLY_DATA_LENS = frozenset({0, STATUS_DATA_LEN})
MAX_FRAME = 6 + STATUS_DATA_LEN


class Command(enum.IntEnum):
    STATUS = 0x60
    OPEN = 0x61


class Status(enum.IntEnum):
    """Byte 3 of a reply."""

    SUCCESS = 0x75
    FAILURE = 0x00


_COMMANDS = frozenset(c.value for c in Command)
_STATUSES = frozenset(s.value for s in Status)


def checksum(data: bytes | bytearray) -> int:
    """SUM byte: the sum of ``data`` modulo 256."""
    return sum(data) & 0xFF


def _check(name: str, value: int, high: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{name} must be 0..{high}, got {value!r}")


@dataclass(frozen=True)
class Request:
    """A host -> board frame. ``lock`` is the 0-based lock (0 for status)."""

    board: int
    lock: int
    command: Command

    def __post_init__(self) -> None:
        _check("board", self.board, 0xFF)
        _check("lock", self.lock, LOCKS_PER_BOARD - 1)
        object.__setattr__(self, "command", Command(self.command))


@dataclass(frozen=True)
class Reply:
    """A board -> host frame: an open acknowledgement (no data) or a status reply (6 data bytes)."""

    board: int
    lock: int
    status: Status
    data: bytes = b""

    def __post_init__(self) -> None:
        _check("board", self.board, 0xFF)
        _check("lock", self.lock, LOCKS_PER_BOARD - 1)
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) not in REPLY_DATA_LENS:
            raise ValueError(f"a reply carries 0 or {STATUS_DATA_LEN} data bytes, not {len(self.data)}")

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS

    @property
    def has_status(self) -> bool:
        """True for a status reply (48 lock bits), False for an acknowledgement."""
        return len(self.data) == STATUS_DATA_LEN

    def lock_bits(self, *, first_byte_first: bool = True) -> tuple[bool, ...] | None:
        """Raw lock bits of a status reply (index 0 = lock 1), or None for an acknowledgement."""
        if not self.has_status:
            return None
        return bits_from_bytes(self.data, first_byte_first=first_byte_first)


Frame = Union[Request, Reply]


# -- constructors named after what they do ------------------------------------------------------


def status_request(board: int) -> Request:
    return Request(board, 0, Command.STATUS)


def open_request(board: int, lock: int) -> Request:
    """Open ``lock`` (0-based channel, 0..47) of ``board``."""
    return Request(board, lock, Command.OPEN)


def ack(board: int, lock: int, status: Status = Status.SUCCESS) -> Reply:
    return Reply(board, lock, status)


def status_reply(board: int, bits: Sequence[bool], *, lock: int = 0, first_byte_first: bool = True) -> Reply:
    """A successful status reply carrying raw lock ``bits`` (index 0 = lock 1, at most 48)."""
    data = bytes_from_bits(bits, STATUS_DATA_LEN, first_byte_first=first_byte_first)
    return Reply(board, lock, Status.SUCCESS, data)


# -- encode / decode ----------------------------------------------------------------------------


def encode(frame: Frame) -> bytes:
    """The exact bytes of ``frame`` on the wire, checksum included."""
    if isinstance(frame, Request):
        body = bytes([STX, frame.board, frame.lock, frame.command, ETX])
    elif isinstance(frame, Reply):
        body = bytes([STX, frame.board, frame.lock, frame.status, len(frame.data)]) + frame.data
    else:
        raise TypeError(f"cannot encode {frame!r}")
    return body + bytes([checksum(body)])


def _skip_to_next_stx(buf: bytes | bytearray, start: int) -> int:
    index = buf.find(STX, start)
    return len(buf) if index < 0 else index


def _request_length(buf: bytes | bytearray) -> int | None:
    """Length the request starting at ``buf[0]`` (an STX) must have; None if impossible so far."""
    n = len(buf)
    if (n > 2 and buf[2] >= LOCKS_PER_BOARD) or (n > 3 and buf[3] not in _COMMANDS):
        return None
    if n > 4 and buf[4] != ETX:
        return None
    return REQUEST_LEN


def _reply_length(buf: bytes | bytearray) -> int | None:
    n = len(buf)
    if (n > 2 and buf[2] >= LOCKS_PER_BOARD) or (n > 3 and buf[3] not in _STATUSES):
        return None
    if n > 4:
        return 6 + buf[4] if buf[4] in REPLY_DATA_LENS else None
    return 6  # at least


def _decode(buf: bytes | bytearray, length_of) -> tuple[int, bytes | None]:
    if not buf:
        return 0, None
    if buf[0] != STX:
        return _skip_to_next_stx(buf, 1), None
    total = length_of(buf[:5])
    if total is None:
        return _skip_to_next_stx(buf, 1), None
    if len(buf) < 5 or len(buf) < total:
        return 0, None
    raw = bytes(buf[:total])
    if checksum(raw[:-1]) != raw[-1]:
        return _skip_to_next_stx(buf, 1), None
    return total, raw


def decode_request(buf: bytes | bytearray) -> tuple[int, Request | None]:
    """Board-side decoder: find the next request in ``buf``. Never raises."""
    consumed, raw = _decode(buf, _request_length)
    if raw is None:
        return consumed, None
    return consumed, Request(raw[1], raw[2], Command(raw[3]))


def decode_reply(buf: bytes | bytearray) -> tuple[int, Reply | None]:
    """Host-side decoder: find the next reply in ``buf``. Never raises."""
    consumed, raw = _decode(buf, _reply_length)
    if raw is None:
        return consumed, None
    return consumed, Reply(raw[1], raw[2], Status(raw[3]), raw[5:-1])


def reply_checksum_error(buf: bytes | bytearray) -> bool:
    """True when ``buf`` starts with a complete reply whose checksum alone is wrong (the bus
    statistics' checksum errors; ``decode_reply`` skips it like garbage). Never raises."""
    if len(buf) < 5 or buf[0] != STX:
        return False
    total = _reply_length(buf[:5])
    if total is None or len(buf) < total:
        return False
    return checksum(buf[: total - 1]) != buf[total - 1]


def decode(buf: bytes | bytearray, direction: str = "reply") -> tuple[int, Frame | None]:
    """``decode_reply`` (``direction="reply"``, host side) or ``decode_request`` (``"request"``)."""
    if direction == "reply":
        return decode_reply(buf)
    if direction == "request":
        return decode_request(buf)
    raise ValueError(f"direction must be 'reply' or 'request', got {direction!r}")
