"""Kerong KR-CU16 lock board protocol: a pure codec (no I/O, no clocks).

Source: hardware-protocols.md §1.1 (several third-party integrations agree; no vendor datasheet).

Request (host -> board), 5 bytes plus the command's data bytes::

    +------+------+------+- - - - - -+------+------+
    | STX  | ADDR | CMD  | DATA...   | ETX  | SUM  |
    | 0x02 |      |      | 0..2 B    | 0x03 |      |
    +------+------+------+- - - - - -+------+------+
    ADDR = (board << 4) | lock     board 0-15 (DIP switch) in the high nibble,
                                   lock index 0-15 in the low nibble (0 for board commands)
    SUM  = (sum of every byte from STX to ETX) & 0xFF

Status reply (board -> host), always 9 bytes::

    +------+------+------+-------+--------+--------+---------+------+------+
    | STX  | ADDR | 0x35 | L1-8  | L9-16  | IR1-8  | IR9-16  | ETX  | SUM  |
    +------+------+------+-------+--------+--------+---------+------+------+
    bit 0 of L1-8 is lock 1 (channel 0); IR bit 1 = an item is detected.
    What a lock bit means (closed or open) depends on the board: see ``hal`` polarity.

Framing is by length: the command byte fixes how many data bytes follow (:data:`REQUEST_DATA_LEN`
for requests, :data:`REPLY_DATA_LEN` for replies). Each direction has its own decoder, because the
same command byte is never legal both ways.

Resynchronisation rules of :func:`decode_reply` / :func:`decode_request`:

* bytes before an STX are garbage: skipped up to the next STX (or all of them if there is none);
* an STX followed by an unknown command byte, a missing ETX where the length says it must be, or a
  wrong SUM is a false start: only that STX is dropped and the search restarts at the next STX, so a
  real frame that began inside the rejected bytes is still found;
* a frame that is not complete yet returns ``(0, None)``: the caller appends bytes and calls again;
* trailing bytes after a frame are left in the buffer for the next call.

``decode`` never raises, whatever the bytes. It returns ``(consumed, frame | None)``:
``consumed > 0`` with a frame means a frame was decoded; ``consumed > 0`` without one means that many
bytes were skipped; ``(0, None)`` means "need more bytes".

A byte sum catches every single-bit error inside a frame, but not every two-bit error, and an STX in
garbage can start a false frame that checks out (one candidate in 256 that already has a known
command and an ETX in the right place). The host therefore also checks the reply's address and
kind (``bus.transact``'s ``expect``).

Commands 0x32 (status of all boards), 0x36 (its reply, layout unverified), 0x37/0x38 (pulse time)
and 0x39 (delayed unlock) come from a single source each; 0x40 (set speed) likewise.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Union

STX = 0x02
ETX = 0x03
BROADCAST_BOARD = 0x0F  # ADDR 0xF0 addresses every board (0x32) [ONE]
LOCKS_PER_BOARD = 16
STATUS_REPLY_LEN = 9


class Command(enum.IntEnum):
    """Command byte (CMD). Names follow the CartWise enum used in §1.1."""

    STATUS = 0x30  # one board; reply STATUS_REPLY
    UNLOCK = 0x31  # one lock (index in ADDR low nibble); reply unknown, not relied on
    STATUS_ALL = 0x32  # every board, ADDR 0xF0 [ONE]; reply 0x36 [UNVERIFIED layout]
    UNLOCK_ALL = 0x33  # every lock of one board
    STATUS_REPLY = 0x35  # board -> host, 4 data bytes
    STATUS_ALL_REPLY = 0x36  # board -> host [UNVERIFIED layout]: not decoded
    PULSE_TIME = 0x37  # set the unlock pulse time: 2 bytes, big-endian, unit 10 ms [ONE]
    QUERY_PULSE_TIME = 0x38  # "return unlock time" [ONE, field anecdote only]
    DELAYED_UNLOCK = 0x39  # 1 byte, seconds 0-250 [ONE]
    SET_BAUD = 0x40  # 1 byte: 0=9600 1=19200 2=57600 3=115200 [ONE]


#: data bytes after CMD for each request command (host -> board)
REQUEST_DATA_LEN: Mapping[int, int] = {
    Command.STATUS: 0,
    Command.UNLOCK: 0,
    Command.STATUS_ALL: 0,
    Command.UNLOCK_ALL: 0,
    Command.PULSE_TIME: 2,
    Command.QUERY_PULSE_TIME: 0,
    Command.DELAYED_UNLOCK: 1,
    Command.SET_BAUD: 1,
}

#: data bytes after CMD for each reply command (board -> host)
REPLY_DATA_LEN: Mapping[int, int] = {
    Command.STATUS_REPLY: 4,
}

BAUD_CODES: Mapping[int, int] = {9600: 0, 19200: 1, 57600: 2, 115200: 3}


def checksum(data: bytes | bytearray | memoryview) -> int:
    """SUM byte: the sum of ``data`` modulo 256."""
    return sum(data) & 0xFF


def _check_nibble(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0x0F:
        raise ValueError(f"{name} must be 0..15, got {value!r}")


@dataclass(frozen=True)
class Request:
    """A host -> board frame. ``lock`` is the ADDR low nibble (0 for board-level commands)."""

    board: int
    lock: int
    command: Command
    data: bytes = b""

    def __post_init__(self) -> None:
        _check_nibble("board", self.board)
        _check_nibble("lock", self.lock)
        if self.command not in REQUEST_DATA_LEN:
            raise ValueError(f"{self.command!r} is not a request command")
        object.__setattr__(self, "command", Command(self.command))
        object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) != REQUEST_DATA_LEN[self.command]:
            raise ValueError(
                f"{self.command.name} takes {REQUEST_DATA_LEN[self.command]} data bytes, got {len(self.data)}"
            )

    @property
    def addr(self) -> int:
        return (self.board << 4) | self.lock


@dataclass(frozen=True)
class StatusReply:
    """The 9-byte 0x35 reply. ``locks`` and ``ir`` are 16-bit masks, bit 0 = lock/sensor 1 (channel 0).

    ``lock`` is the ADDR low nibble as received (0 in every known capture).
    """

    board: int
    locks: int
    ir: int
    lock: int = 0

    def __post_init__(self) -> None:
        _check_nibble("board", self.board)
        _check_nibble("lock", self.lock)
        for name in ("locks", "ir"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
                raise ValueError(f"{name} must be a 16-bit mask, got {value!r}")

    @property
    def addr(self) -> int:
        return (self.board << 4) | self.lock

    @property
    def command(self) -> Command:
        return Command.STATUS_REPLY

    def lock_bit(self, channel: int) -> bool:
        """Raw lock/door bit of ``channel`` (0-based). Its meaning depends on the board's polarity."""
        return bool(self.locks >> channel & 1)

    def ir_bit(self, channel: int) -> bool:
        """True when the infrared sensor of ``channel`` (0-based) detects an item."""
        return bool(self.ir >> channel & 1)

    @property
    def lock_bits(self) -> tuple[bool, ...]:
        return tuple(self.lock_bit(i) for i in range(LOCKS_PER_BOARD))

    @property
    def ir_bits(self) -> tuple[bool, ...]:
        return tuple(self.ir_bit(i) for i in range(LOCKS_PER_BOARD))

    @classmethod
    def from_bits(cls, board: int, locks: tuple[bool, ...] | list[bool], ir: tuple[bool, ...] | list[bool]) -> StatusReply:
        """Build a reply from per-channel booleans (index 0 = channel 0; missing channels are 0)."""
        if len(locks) > LOCKS_PER_BOARD or len(ir) > LOCKS_PER_BOARD:
            raise ValueError("at most 16 channels per board")
        return cls(
            board=board,
            locks=sum(1 << i for i, bit in enumerate(locks) if bit),
            ir=sum(1 << i for i, bit in enumerate(ir) if bit),
        )


Frame = Union[Request, StatusReply]
Decoder = Callable[[bytes | bytearray], tuple[int, Union[Frame, None]]]


# -- constructors named after what they do ------------------------------------------------------


def status_request(board: int) -> Request:
    return Request(board, 0, Command.STATUS)


def unlock_request(board: int, lock: int) -> Request:
    """Unlock ``lock`` (0-based channel, 0..15) of ``board``."""
    return Request(board, lock, Command.UNLOCK)


def unlock_all_request(board: int) -> Request:
    return Request(board, 0, Command.UNLOCK_ALL)


def status_all_request() -> Request:
    return Request(BROADCAST_BOARD, 0, Command.STATUS_ALL)


def pulse_time_request(board: int, pulse_ms: int) -> Request:
    """Set the unlock pulse time; the board counts in 10 ms units, so ``pulse_ms`` is rounded down."""
    units = pulse_ms // 10
    if not 0 <= units <= 0xFFFF:
        raise ValueError(f"pulse time out of range: {pulse_ms} ms")
    return Request(board, 0, Command.PULSE_TIME, units.to_bytes(2, "big"))


def delayed_unlock_request(board: int, lock: int, seconds: int) -> Request:
    if not 0 <= seconds <= 250:
        raise ValueError(f"delay must be 0..250 s, got {seconds}")
    return Request(board, lock, Command.DELAYED_UNLOCK, bytes([seconds]))


def set_baud_request(board: int, baudrate: int) -> Request:
    try:
        code = BAUD_CODES[baudrate]
    except KeyError:
        raise ValueError(f"unsupported baud rate {baudrate}; known: {sorted(BAUD_CODES)}") from None
    return Request(board, 0, Command.SET_BAUD, bytes([code]))


# -- encode / decode ----------------------------------------------------------------------------


def encode(frame: Frame) -> bytes:
    """The exact bytes of ``frame`` on the wire, checksum included."""
    if isinstance(frame, Request):
        body = bytes([STX, frame.addr, frame.command]) + frame.data + bytes([ETX])
    elif isinstance(frame, StatusReply):
        body = bytes(
            [
                STX,
                frame.addr,
                Command.STATUS_REPLY,
                frame.locks & 0xFF,
                frame.locks >> 8,
                frame.ir & 0xFF,
                frame.ir >> 8,
                ETX,
            ]
        )
    else:
        raise TypeError(f"cannot encode {frame!r}")
    return body + bytes([checksum(body)])


def _skip_to_next_stx(buf: bytes | bytearray, start: int) -> int:
    index = buf.find(STX, start)
    return len(buf) if index < 0 else index


def _decode(buf: bytes | bytearray, lengths: Mapping[int, int]) -> tuple[int, bytes | None]:
    """Shared framing: returns (consumed, raw frame bytes | None)."""
    if not buf:
        return 0, None
    if buf[0] != STX:
        return _skip_to_next_stx(buf, 1), None
    if len(buf) < 3:
        return 0, None
    data_len = lengths.get(buf[2])
    if data_len is None:
        return _skip_to_next_stx(buf, 1), None
    total = 5 + data_len
    if len(buf) < total:
        return 0, None
    raw = bytes(buf[:total])
    if raw[-2] != ETX or checksum(raw[:-1]) != raw[-1]:
        return _skip_to_next_stx(buf, 1), None
    return total, raw


def decode_request(buf: bytes | bytearray) -> tuple[int, Request | None]:
    """Board-side decoder: find the next request in ``buf``. Never raises."""
    consumed, raw = _decode(buf, REQUEST_DATA_LEN)
    if raw is None:
        return consumed, None
    return consumed, Request(raw[1] >> 4, raw[1] & 0x0F, Command(raw[2]), raw[3:-2])


def decode_reply(buf: bytes | bytearray) -> tuple[int, StatusReply | None]:
    """Host-side decoder: find the next reply in ``buf``. Never raises."""
    consumed, raw = _decode(buf, REPLY_DATA_LEN)
    if raw is None:
        return consumed, None
    return consumed, StatusReply(
        board=raw[1] >> 4,
        lock=raw[1] & 0x0F,
        locks=raw[3] | raw[4] << 8,
        ir=raw[5] | raw[6] << 8,
    )


def reply_checksum_error(buf: bytes | bytearray) -> bool:
    """True when ``buf`` starts with a complete reply whose checksum alone is wrong: what the bus
    statistics count as a checksum error (``decode_reply`` skips it like garbage). Never raises."""
    if len(buf) < 3 or buf[0] != STX:
        return False
    data_len = REPLY_DATA_LEN.get(buf[2])
    if data_len is None or len(buf) < 5 + data_len:
        return False
    raw = bytes(buf[: 5 + data_len])
    return raw[-2] == ETX and checksum(raw[:-1]) != raw[-1]


def decode(buf: bytes | bytearray, direction: str = "reply") -> tuple[int, Frame | None]:
    """``decode_reply`` (``direction="reply"``, host side) or ``decode_request`` (``"request"``)."""
    if direction == "reply":
        return decode_reply(buf)
    if direction == "request":
        return decode_request(buf)
    raise ValueError(f"direction must be 'reply' or 'request', got {direction!r}")
