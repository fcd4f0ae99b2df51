"""A passive decoder for a sniffed RS-485 lock bus: the protocol analyser behind ``diag bus-monitor``.

A sniffing adapter on a half-duplex bus hears the host's requests and the boards' replies
interleaved on one wire, with no marker of who spoke. :class:`Monitor` takes the bytes as they
arrive, in chunks stamped with their arrival time, and turns them into :class:`Frame` records::

    chunks (time, bytes) --> Monitor.feed() --> Frame(time, direction, board, command, channels,
                                                      payload, checksum_ok, raw, latency)

Nothing here opens a port or reads a clock: times are whatever the caller stamps (the event loop's
clock in the CLI, made-up times in tests), so every capture is replayable and fuzzable.

How a frame is found (hardware-protocols.md §1.9)
-------------------------------------------------

* **By length, with the codecs.** Each protocol has its pure codec (``kerong_cu16``,
  ``kerong_cu12``, ``cu48``, ``generic_8a``) with a request decoder and one or more reply
  decoders. At each position every decoder is asked; a frame is taken once no decoder still needs
  more bytes. Modbus RTU has no header byte, so this module has its own small RTU splitter
  (:func:`decode_rtu_request`, :func:`decode_rtu_reply`): the function code fixes the length, a
  CRC-16 check accepts it. pymodbus's RTU framer is not used: it decodes one direction per
  instance and discards its whole buffer on a bad CRC, where an analyser must show both
  directions and every byte.
* **Silent gaps as boundary hints.** A silence of at least ``gap`` seconds (default
  ``max(3.5 characters, 1.75 ms)``, §1.9/§7) marks a frame boundary. A silence the monitor
  *measured* (:meth:`Monitor.idle` found the line quiet, or :meth:`Monitor.flush` ended the
  capture) is hard: a frame start still incomplete there is a truncated frame (garbage). A
  silence *estimated* from chunk times in :meth:`Monitor.feed` is soft: a reader that stalled
  hands over one chunk with a silence inside it, which shifts the estimate, so a frame that
  decodes across a soft gap is still taken. Either kind ends a run of garbage, and where
  several decodings fit, one that ends at a gap wins. Only a frame followed by a gap can be
  shown with a **bad checksum**: when the bytes up to the gap decode once their checksum is
  recomputed, they are reported as that frame with ``checksum_ok=False``; without a gap a frame
  with a bad checksum is garbage (nothing says where it ends), and its record waits for the gap.
* **Garbage is never dropped.** Bytes no decoder accepts become ``garbage`` records (consecutive
  bytes merged, split at gaps and every :data:`GARBAGE_CHUNK` bytes); decoding resumes at the next
  byte where a frame can start (the codecs' resynchronisation rules). Every byte fed ends up in
  exactly one record's ``raw``.

Direction
---------

Most frames say by their shape whether they are a request or a reply (a KR-CU16 0x35, a CU12
ASK byte, a CU48 status byte). Some do not: an 8A open reply with ST 0x11 is byte for byte an
open request, and a Modbus FC05 reply echoes its request. Then the conversation decides: a frame
that answers the request still waiting for its reply (same board, matching command, within
``reply_window`` seconds) is a reply; otherwise it is a request, or ``unknown`` when it is the
first frame of the capture (the monitor may have started in the middle of a conversation).

Counters (:class:`MonitorStats`) follow the same conversation: a request whose protocol promises
an answer (a status read; not a KR-CU16 unlock, whose reply is not established; not a broadcast)
and that gets none before the next request or ``reply_window`` is a missing reply.
"""

from __future__ import annotations

import enum
import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge import cu48, generic_8a as g8a, kerong_cu12 as cu12, kerong_cu16 as cu16
from firmware_bridge.bitmap import bits_from_bytes

GARBAGE = "garbage"
GARBAGE_CHUNK = 64  # a run of garbage is reported in records of at most this many bytes
DEFAULT_REPLY_WINDOW = 0.5  # seconds; §1.9 suggests a 300-500 ms request timeout


class Direction(str, enum.Enum):
    REQUEST = "request"  # host -> board
    REPLY = "reply"  # board -> host
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Frame:
    """One record of the monitor: a decoded frame, or a run of ``garbage`` bytes.

    ``time`` is the estimated arrival of the first byte, on the clock of the times passed to
    :meth:`Monitor.feed` (seconds). ``channels`` are 0-based (channel 0 = the board's lock 1).
    ``payload`` is plain JSON-able data (bit lists are lists of 0/1, index 0 = channel 0).
    ``latency`` (seconds) is set on a reply: the silence from the end of the request it answers
    to the start of its own first byte. ``decoded`` is the codec's own frame object (None for garbage).
    """

    time: float
    direction: Direction
    board: int | None
    command: str
    channels: tuple[int, ...] = ()
    payload: Mapping[str, Any] = field(default_factory=dict)
    checksum_ok: bool = True
    raw: bytes = b""
    latency: float | None = None
    decoded: Any = field(default=None, compare=False, repr=False)

    @property
    def is_garbage(self) -> bool:
        return self.command == GARBAGE

    @property
    def raw_hex(self) -> str:
        return self.raw.hex(" ").upper()

    def summary(self) -> str:
        """A short human reading: channels and payload, bit lists as 0/1 strings (channel 0 first)."""
        if self.is_garbage:
            return f"{len(self.raw)} byte(s)"
        parts = []
        if self.channels:
            parts.append("ch " + ",".join(str(c) for c in self.channels))
        for key, value in self.payload.items():
            if isinstance(value, (list, tuple)):
                value = "".join(str(int(v)) if isinstance(v, (int, bool)) else str(v)[:1] for v in value)
            elif isinstance(value, bool):
                value = "yes" if value else "no"
            parts.append(f"{key}={value}")
        if self.latency is not None:
            parts.append(f"after {self.latency * 1000:.1f} ms")
        return " ".join(parts)

    def as_dict(self, origin: float = 0.0) -> dict[str, Any]:
        """JSON-able form; ``t_ms`` counts milliseconds from ``origin`` (same clock as ``time``)."""
        return {
            "t_ms": round((self.time - origin) * 1000, 3),
            "direction": self.direction.value,
            "board": self.board,
            "command": self.command,
            "channels": list(self.channels),
            "payload": dict(self.payload),
            "checksum_ok": self.checksum_ok,
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 3),
            "raw": self.raw_hex,
        }


@dataclass
class MonitorStats:
    """Counters since the monitor was made, for the summary at the end of a capture."""

    frames: int = 0  # decoded frames (not garbage)
    requests: int = 0
    replies: int = 0
    unknown: int = 0  # frames whose direction could not be told
    frames_by_board: Counter[int | None] = field(default_factory=Counter)
    checksum_errors: int = 0  # frames shown with a bad checksum
    garbage_records: int = 0
    garbage_bytes: int = 0
    replies_missing: int = 0  # requests that promise a reply and got none
    replies_missing_by_board: Counter[int | None] = field(default_factory=Counter)
    unmatched_replies: int = 0  # replies that answer no waiting request (late, foreign)

    def as_dict(self) -> dict[str, Any]:
        def by_board(counter: Counter[int | None]) -> dict[str, int]:
            return {("broadcast" if b is None else str(b)): n for b, n in sorted(counter.items(), key=_board_key)}

        return {
            "frames": self.frames,
            "requests": self.requests,
            "replies": self.replies,
            "unknown": self.unknown,
            "frames_by_board": by_board(self.frames_by_board),
            "checksum_errors": self.checksum_errors,
            "garbage_records": self.garbage_records,
            "garbage_bytes": self.garbage_bytes,
            "replies_missing": self.replies_missing,
            "replies_missing_by_board": by_board(self.replies_missing_by_board),
            "unmatched_replies": self.unmatched_replies,
        }


def _board_key(item: tuple[int | None, int]) -> tuple[int, int]:
    return (-1, 0) if item[0] is None else (0, item[0])


def _bits(values: Iterable[bool]) -> list[int]:
    return [int(bool(v)) for v in values]


# -- Modbus RTU: a small pure splitter --------------------------------------------------------
#
#   request                                   reply
#   SLAVE FC ADDR(2) COUNT(2) CRC(2)   01-04  SLAVE FC N DATA(N) CRC(2)           01-04
#   SLAVE FC ADDR(2) VALUE(2) CRC(2)   05/06  SLAVE FC ADDR(2) VALUE(2) CRC(2)    05/06 (echo)
#   SLAVE FC ADDR(2) QTY(2) N DATA(N) CRC(2)  SLAVE FC ADDR(2) QTY(2) CRC(2)      0F/10
#   15/16                                     SLAVE FC|0x80 CODE CRC(2)           exception
#
# CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), sent low byte first. The decoders follow
# the codec convention: (0, None) needs more bytes; (1, None) drops one byte (RTU has no header
# byte to resynchronise on, so the search slides one byte); (n, frame) is a frame.

RTU_FUNCTIONS: Mapping[int, str] = {
    0x01: "read_coils",
    0x02: "read_discrete_inputs",
    0x03: "read_holding_registers",
    0x04: "read_input_registers",
    0x05: "write_coil",
    0x06: "write_register",
    0x0F: "write_coils",
    0x10: "write_registers",
}
RTU_EXCEPTIONS: Mapping[int, str] = {
    0x01: "illegal_function",
    0x02: "illegal_data_address",
    0x03: "illegal_data_value",
    0x04: "device_failure",
    0x05: "acknowledge",
    0x06: "device_busy",
    0x08: "memory_parity_error",
    0x0A: "gateway_path_unavailable",
    0x0B: "gateway_target_no_response",
}
RTU_MAX_FRAME = 256
_READS = (0x01, 0x02, 0x03, 0x04)
_READ_LIMITS = {0x01: 2000, 0x02: 2000, 0x03: 125, 0x04: 125}
# Waveshare Relay (D) coil map (§1.7): FC05 addresses with a meaning beyond one relay
WAVESHARE_ALL_RELAYS = 0x00FF
WAVESHARE_FLASH_ON = 0x0200
WAVESHARE_FLASH_OFF = 0x0400


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/MODBUS of ``data`` (the frame puts it low byte first)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True)
class RtuFrame:
    """One Modbus RTU frame: ``data`` is everything between the function code and the CRC."""

    slave: int
    function: int
    data: bytes

    @property
    def is_exception(self) -> bool:
        return bool(self.function & 0x80)

    def word(self, index: int) -> int:
        """The big-endian 16-bit word at ``data[2 * index : 2 * index + 2]``."""
        return int.from_bytes(self.data[2 * index : 2 * index + 2], "big")


def encode_rtu(frame: RtuFrame) -> bytes:
    body = bytes([frame.slave, frame.function]) + frame.data
    return body + crc16(body).to_bytes(2, "little")


def _rtu_crc_ok(raw: bytes | bytearray) -> bool:
    return crc16(raw[:-2]) == int.from_bytes(raw[-2:], "little")


def decode_rtu_request(buf: bytes | bytearray) -> tuple[int, RtuFrame | None]:
    """A master's request at ``buf[0]``. Never raises."""
    if len(buf) < 2:
        return 0, None
    fc = buf[1]
    if fc in (0x0F, 0x10):
        if len(buf) < 7:
            return 0, None
        qty, n = int.from_bytes(buf[4:6], "big"), buf[6]
        if not (1 <= qty <= (1968 if fc == 0x0F else 123)) or n != (math.ceil(qty / 8) if fc == 0x0F else 2 * qty):
            return 1, None
        total = 9 + n
    elif fc in RTU_FUNCTIONS:
        total = 8
    else:
        return 1, None
    if len(buf) < total:
        return 0, None
    raw = bytes(buf[:total])
    if not _rtu_crc_ok(raw):
        return 1, None
    frame = RtuFrame(raw[0], fc, raw[2:-2])
    if fc in _READS and not 1 <= frame.word(1) <= _READ_LIMITS[fc]:
        return 1, None
    return total, frame


def decode_rtu_reply(buf: bytes | bytearray) -> tuple[int, RtuFrame | None]:
    """A slave's reply (or exception) at ``buf[0]``. Never raises."""
    if len(buf) < 2:
        return 0, None
    fc = buf[1]
    if fc & 0x80:
        if fc & 0x7F not in RTU_FUNCTIONS:
            return 1, None
        total = 5
    elif fc in _READS:
        if len(buf) < 3:
            return 0, None
        n = buf[2]
        if n == 0 or (fc in (0x03, 0x04) and n % 2):
            return 1, None
        total = 5 + n
    elif fc in RTU_FUNCTIONS:
        total = 8
    else:
        return 1, None
    if len(buf) < total:
        return 0, None
    raw = bytes(buf[:total])
    if not _rtu_crc_ok(raw):
        return 1, None
    return total, RtuFrame(raw[0], fc, raw[2:-2])


# -- one dialect per protocol: decoders, checksum repair, description, conversation -------------


@dataclass(frozen=True)
class Described:
    board: int | None
    command: str
    channels: tuple[int, ...] = ()
    payload: Mapping[str, Any] = field(default_factory=dict)


class _Dialect:
    """What the monitor needs to know of one protocol."""

    #: the longest frame: a frame start with more bytes than this before the next gap is decided
    MAX_FRAME = 16

    def __init__(self, *, closed_is_1: bool | None, first_byte_first: bool) -> None:
        self.closed_is_1 = closed_is_1
        self.first_byte_first = first_byte_first

    #: (direction, decoder) pairs; each decoder follows the codec convention
    decoders: Sequence[tuple[Direction, Callable[[bytes | bytearray], tuple[int, Any]]]] = ()

    def may_start(self, byte: int) -> bool:
        """True when a frame can begin with ``byte`` (so a rejected start may be a bad checksum)."""
        return True

    def repair(self, raw: bytes) -> bytes | None:
        """``raw`` with its checksum recomputed, or None when it is too short to be a frame."""
        raise NotImplementedError

    def plausible(self, direction: Direction, frame: Any) -> bool:
        return True

    def describe(self, frame: Any, shape: Direction, request: Any | None) -> Described:
        """Board, command and payload of a decoded ``frame``. ``shape`` is the direction of the
        decoder that found it; ``request`` is the request it answers, if known."""
        raise NotImplementedError

    def answers(self, request: Any, reply: Any) -> bool:
        raise NotImplementedError

    def expects_reply(self, request: Any) -> bool:
        raise NotImplementedError

    def _lock_payload(self, bits: Sequence[bool], count: int | None = None) -> dict[str, Any]:
        bits = list(bits)[: count if count is not None else len(bits)]
        payload: dict[str, Any] = {"lock_bits": _bits(bits)}
        if self.closed_is_1 is not None:
            payload["doors"] = ["closed" if bool(b) == self.closed_is_1 else "open" for b in bits]
        return payload


def _sum_repair(raw: bytes, minimum: int) -> bytes | None:
    if len(raw) < minimum:
        return None
    return raw[:-1] + bytes([sum(raw[:-1]) & 0xFF])


class _KerongCU16(_Dialect):
    MAX_FRAME = 9
    decoders = ((Direction.REQUEST, cu16.decode_request), (Direction.REPLY, cu16.decode_reply))

    def may_start(self, byte: int) -> bool:
        return byte == cu16.STX

    def repair(self, raw: bytes) -> bytes | None:
        return _sum_repair(raw, 5)

    def describe(self, frame: Any, shape: Direction, request: Any | None) -> Described:
        if isinstance(frame, cu16.StatusReply):
            payload = self._lock_payload(frame.lock_bits)
            payload["item_bits"] = _bits(frame.ir_bits)
            return Described(frame.board, "status_reply", (), payload)
        command = frame.command
        name = command.name.lower()
        if command is cu16.Command.STATUS_ALL:
            return Described(None, name, (), {"broadcast": True})
        channels: tuple[int, ...] = ()
        payload: dict[str, Any] = {}
        if command in (cu16.Command.UNLOCK, cu16.Command.DELAYED_UNLOCK):
            channels = (frame.lock,)
        if command is cu16.Command.UNLOCK_ALL:
            payload["all_locks"] = True
        elif command is cu16.Command.PULSE_TIME:
            payload["pulse_ms"] = int.from_bytes(frame.data, "big") * 10
        elif command is cu16.Command.DELAYED_UNLOCK:
            payload["delay_s"] = frame.data[0]
        elif command is cu16.Command.SET_BAUD:
            rates = {code: rate for rate, code in cu16.BAUD_CODES.items()}
            payload["baudrate"] = rates.get(frame.data[0], f"code {frame.data[0]}")
        return Described(frame.board, name, channels, payload)

    def answers(self, request: Any, reply: Any) -> bool:
        return (
            isinstance(request, cu16.Request)
            and isinstance(reply, cu16.StatusReply)
            and request.command in (cu16.Command.STATUS, cu16.Command.UNLOCK, cu16.Command.UNLOCK_ALL)
            and reply.board == request.board
        )

    def expects_reply(self, request: Any) -> bool:
        return request.command is cu16.Command.STATUS  # whether an unlock is answered is not known


class _KerongCU12(_Dialect):
    MAX_FRAME = cu12.HEADER_LEN + 1 + cu12.MAX_DATA_LEN

    def __init__(self, *, data_position: cu12.DataPosition = cu12.DataPosition.AFTER_SUM, **kw: Any) -> None:
        super().__init__(**kw)
        self.data_position = cu12.DataPosition(data_position)
        self.decoders = (
            (Direction.REQUEST, functools.partial(cu12.decode_request, data_position=self.data_position)),
            (Direction.REPLY, functools.partial(cu12.decode_reply, data_position=self.data_position)),
        )

    def may_start(self, byte: int) -> bool:
        return byte == cu12.STX

    def repair(self, raw: bytes) -> bytes | None:
        if len(raw) < cu12.HEADER_LEN + 1:
            return None
        if self.data_position is cu12.DataPosition.BEFORE_SUM:
            return _sum_repair(raw, cu12.HEADER_LEN + 1)
        header, data = raw[: cu12.HEADER_LEN], raw[cu12.HEADER_LEN + 1 :]
        return header + bytes([cu12.checksum(header + data)]) + data

    def describe(self, frame: Any, shape: Direction, request: Any | None) -> Described:
        board = None if frame.board == cu12.BROADCAST else frame.board
        name = frame.command.name.lower()
        channels = (frame.lock,) if frame.lock < cu12.LOCKS_PER_BOARD and frame.command is cu12.Command.UNLOCK else ()
        payload: dict[str, Any] = {}
        if board is None:
            payload["broadcast"] = True
        if frame.lock == cu12.ALL_LOCKS and frame.command is cu12.Command.UNLOCK:
            payload["all_locks"] = True
        if isinstance(frame, cu12.Reply):
            payload["ask"] = frame.ask.name.lower()
            bits = frame.status_bits(first_byte_first=self.first_byte_first)
            if bits is not None:
                payload.update(self._lock_payload(bits))
                return Described(board, name, channels, payload)
        data = frame.data
        if data:
            if frame.command is cu12.Command.PULSE_TIME and len(data) == 2:
                payload["pulse_ms"] = int.from_bytes(data, "big") * 10
            elif frame.command is cu12.Command.VERSION and len(data) == 2:
                payload["software"], payload["hardware"] = (f"{b >> 4}.{b & 0x0F}" for b in data)
            elif frame.command is cu12.Command.BAUD and len(data) == 1:
                rates = {code: rate for rate, code in cu12.BAUD_CODES.items()}
                payload["baudrate"] = rates.get(data[0], f"code {data[0]}")
            elif len(data) == 1:
                payload["seconds"] = data[0]
            else:
                payload["data"] = data.hex(" ").upper()
        return Described(board, name, channels, payload)

    def answers(self, request: Any, reply: Any) -> bool:
        return (
            isinstance(request, cu12.Request)
            and isinstance(reply, cu12.Reply)
            and reply.board == request.board
            and reply.command is request.command
        )

    def expects_reply(self, request: Any) -> bool:
        return request.board != cu12.BROADCAST


class _CU48(_Dialect):
    MAX_FRAME = cu48.MAX_FRAME
    decoders = ((Direction.REQUEST, cu48.decode_request), (Direction.REPLY, cu48.decode_reply))

    def may_start(self, byte: int) -> bool:
        return byte == cu48.STX

    def repair(self, raw: bytes) -> bytes | None:
        return _sum_repair(raw, 6)

    def describe(self, frame: Any, shape: Direction, request: Any | None) -> Described:
        if isinstance(frame, cu48.Request):
            if frame.command is cu48.Command.OPEN:
                return Described(frame.board, "open", (frame.lock,))
            return Described(frame.board, "status")
        payload: dict[str, Any] = {"status": frame.status.name.lower()}
        bits = frame.lock_bits(first_byte_first=self.first_byte_first)
        if bits is not None:
            payload.update(self._lock_payload(bits))
            return Described(frame.board, "status_reply", (), payload)
        return Described(frame.board, "ack", (frame.lock,), payload)

    def answers(self, request: Any, reply: Any) -> bool:
        if not (isinstance(request, cu48.Request) and isinstance(reply, cu48.Reply)) or reply.board != request.board:
            return False
        if request.command is cu48.Command.STATUS:
            return reply.has_status or not reply.ok
        return not reply.has_status and reply.lock == request.lock

    def expects_reply(self, request: Any) -> bool:
        return True


class _Generic8A(_Dialect):
    MAX_FRAME = 4 + max(g8a.STATUS_BYTE_COUNTS)

    def __init__(self, *, status_bytes: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        counts = g8a.STATUS_BYTE_COUNTS if status_bytes is None else (status_bytes,)
        for count in counts:
            if count not in g8a.STATUS_BYTE_COUNTS:
                raise ValueError(f"status_bytes must be 3 or 7, not {count!r}")
        self.decoders = (
            (Direction.REQUEST, g8a.decode_request),
            *((Direction.REPLY, functools.partial(g8a.decode_reply, status_bytes=n)) for n in counts),
            (Direction.REPLY, g8a.decode_query_one_reply),
        )

    def may_start(self, byte: int) -> bool:
        return byte in g8a.REQUEST_HEADS

    def repair(self, raw: bytes) -> bytes | None:
        if len(raw) < 5:
            return None
        return raw[:-1] + bytes([g8a.bcc(raw[:-1])])

    def plausible(self, direction: Direction, frame: Any) -> bool:
        # "80 bb ll 33 BCC" is a query request; read as a query-one reply its ST would be the
        # query function byte, which no board sends (ST is 0x11 or 0x00)
        return not (isinstance(frame, g8a.QueryOneReply) and frame.status == g8a.Func.QUERY)

    def describe(self, frame: Any, shape: Direction, request: Any | None) -> Described:
        def channel(lock: int) -> tuple[int, ...]:
            return () if lock == g8a.ALL_LOCKS else (lock - 1,)

        if isinstance(frame, g8a.OpenRequest):
            payload = {} if frame.pulse_s is None else {"pulse_s": frame.pulse_s}
            name = "open_all" if frame.lock == g8a.ALL_LOCKS else "open"
            return Described(frame.board, name, channel(frame.lock), payload)
        if isinstance(frame, g8a.QueryRequest):
            name = "query_all" if frame.lock == g8a.ALL_LOCKS else "query_one"
            return Described(frame.board, name, channel(frame.lock))
        if isinstance(frame, g8a.OpenSeveralRequest):
            bits = bits_from_bytes(frame.bitmap, first_byte_first=self.first_byte_first)
            return Described(frame.board, "open_several", tuple(i for i, b in enumerate(bits) if b))
        if isinstance(frame, g8a.HoldRequest):
            return Described(frame.board, "hold_on" if frame.on else "hold_off", channel(frame.lock))
        if isinstance(frame, g8a.OpenReply):
            return Described(frame.board, "open", channel(frame.lock), {"st": f"{frame.status:02X}"})
        if isinstance(frame, g8a.QueryOneReply):
            state = {True: "closed", False: "open", None: "unknown"}[frame.closed]
            return Described(frame.board, "query_one", channel(frame.lock), {"st": f"{frame.status:02X}", "door": state})
        payload = self._lock_payload(frame.lock_bits(first_byte_first=self.first_byte_first))
        payload["status_bytes"] = len(frame.data)
        return Described(frame.board, "query_all", (), payload)

    def answers(self, request: Any, reply: Any) -> bool:
        if getattr(request, "board", None) != getattr(reply, "board", None):
            return False
        if isinstance(request, g8a.OpenRequest):
            return isinstance(reply, g8a.OpenReply) and reply.lock == request.lock
        if isinstance(request, g8a.QueryRequest):
            if request.lock == g8a.ALL_LOCKS:
                return isinstance(reply, g8a.QueryAllReply)
            return isinstance(reply, g8a.QueryOneReply) and reply.lock == request.lock
        return False

    def expects_reply(self, request: Any) -> bool:
        return isinstance(request, (g8a.OpenRequest, g8a.QueryRequest))


class _ModbusRelay(_Dialect):
    MAX_FRAME = RTU_MAX_FRAME
    decoders = ((Direction.REQUEST, decode_rtu_request), (Direction.REPLY, decode_rtu_reply))

    def repair(self, raw: bytes) -> bytes | None:
        if len(raw) < 5:
            return None
        return raw[:-2] + crc16(raw[:-2]).to_bytes(2, "little")

    def describe(self, frame: RtuFrame, shape: Direction, request: Any | None) -> Described:
        slave = None if frame.slave == 0 else frame.slave
        fc = frame.function & 0x7F
        name = RTU_FUNCTIONS.get(fc, f"function_{fc:02X}")
        if frame.is_exception:
            code = frame.data[0] if frame.data else 0
            return Described(slave, "exception", (), {"function": name, "code": code,
                                                      "reason": RTU_EXCEPTIONS.get(code, "unknown")})
        payload: dict[str, Any] = {}
        if slave is None:
            payload["broadcast"] = True
        answered = request if isinstance(request, RtuFrame) and request.function == fc else None
        if fc in _READS and shape is Direction.REQUEST:
            payload.update(address=frame.word(0), count=frame.word(1))
            return Described(slave, name, (), payload)
        if fc in _READS:  # a read reply: byte count, then the data
            data = frame.data[1:]
            if fc in (0x01, 0x02):
                count = answered.word(1) if answered is not None else None
                bits = bits_from_bytes(data)[:count] if count is not None else bits_from_bytes(data)
                if answered is not None:
                    payload["address"] = answered.word(0)
                if fc == 0x02:
                    payload.update(self._lock_payload(bits))
                    payload["input_bits"] = payload.pop("lock_bits")
                else:
                    payload["coil_bits"] = _bits(bits)
            else:
                payload["registers"] = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
            return Described(slave, name, (), payload)
        address, value = frame.word(0), frame.word(1)
        if fc == 0x05:
            if WAVESHARE_FLASH_ON <= address < WAVESHARE_FLASH_ON + 0x100:
                return Described(slave, "flash_on", (address - WAVESHARE_FLASH_ON,), {"pulse_ms": value * 100})
            if WAVESHARE_FLASH_OFF <= address < WAVESHARE_FLASH_OFF + 0x100:
                return Described(slave, "flash_off", (address - WAVESHARE_FLASH_OFF,), {"pause_ms": value * 100})
            state = {0xFF00: "on", 0x0000: "off"}.get(value, f"{value:04X}")
            if address == WAVESHARE_ALL_RELAYS:
                return Described(slave, "all_relays", (), {**payload, "value": state})
            return Described(slave, name, (address,), {**payload, "value": state})
        if fc == 0x0F and len(frame.data) > 5:
            bits = bits_from_bytes(frame.data[5:])[:value]
            payload["coil_bits"] = _bits(bits)
            return Described(slave, name, tuple(address + i for i, b in enumerate(bits) if b), payload)
        payload["address"] = address
        payload["value" if fc == 0x06 else "count"] = value
        return Described(slave, name, (), payload)

    def answers(self, request: Any, reply: Any) -> bool:
        if not (isinstance(request, RtuFrame) and isinstance(reply, RtuFrame)) or reply.slave != request.slave:
            return False
        fc = request.function
        if reply.is_exception:
            return reply.function & 0x7F == fc
        if reply.function != fc:
            return False
        if fc in (0x01, 0x02):
            return reply.data[0] == math.ceil(request.word(1) / 8)
        if fc in (0x03, 0x04):
            return reply.data[0] == 2 * request.word(1)
        if fc in (0x05, 0x06):
            return reply.data == request.data
        return reply.data == request.data[:4]

    def expects_reply(self, request: Any) -> bool:
        return request.slave != 0


_DIALECTS: Mapping[str, type[_Dialect]] = {
    "kerong-cu16": _KerongCU16,
    "kerong-cu12": _KerongCU12,
    "cu48": _CU48,
    "generic-8a": _Generic8A,
    "modbus-relay": _ModbusRelay,
}
#: protocol names the monitor decodes (the names of ``hal.lockbank.BACKENDS``)
PROTOCOLS: tuple[str, ...] = tuple(_DIALECTS)


def default_gap(baudrate: int, bits_per_char: int = 10) -> float:
    """Silence (seconds) that separates two frames: ``max(3.5 characters, 1.75 ms)``."""
    return max(3.5 * bits_per_char / baudrate, 0.00175)


@dataclass
class _Candidate:
    length: int
    frame: Any
    direction: Direction  # as reported
    checksum_ok: bool = True
    shape: Direction | None = None  # the direction of the decoder that found it

    def __post_init__(self) -> None:
        if self.shape is None:
            self.shape = self.direction


@dataclass
class _Pending:
    record: Frame
    end: float  # time of the request's last byte
    answered: bool = False
    tentative: bool = False  # an ambiguous frame taken as a request: never counted as unanswered


class Monitor:
    """Decode one sniffed lock bus of ``protocol`` (a name of :data:`PROTOCOLS`).

    ``baudrate`` sets the character time used to estimate byte times and the default ``gap``
    (seconds; ``math.inf`` turns gap hints off). ``closed_is_1`` (the bank's polarity, optional)
    adds door states to status payloads; ``first_byte_first`` is the status byte order.
    ``status_bytes`` (8A/80 only: 3 or 7, None tries both) and ``data_position`` (CU12 only)
    select the board variant. ``reply_window`` (seconds) is how long a request waits for its reply.
    """

    def __init__(
        self,
        protocol: str,
        baudrate: int,
        *,
        gap: float | None = None,
        closed_is_1: bool | None = None,
        first_byte_first: bool = True,
        status_bytes: int | None = None,
        data_position: cu12.DataPosition | str = cu12.DataPosition.AFTER_SUM,
        reply_window: float = DEFAULT_REPLY_WINDOW,
        bits_per_char: int = 10,
    ) -> None:
        try:
            dialect_cls = _DIALECTS[protocol]
        except KeyError:
            raise ValueError(f"no bus monitor for {protocol!r}; known: {', '.join(PROTOCOLS)}") from None
        if baudrate <= 0:
            raise ValueError(f"baudrate must be positive, not {baudrate}")
        options: dict[str, Any] = {"closed_is_1": closed_is_1, "first_byte_first": first_byte_first}
        if dialect_cls is _Generic8A:
            options["status_bytes"] = status_bytes
        if dialect_cls is _KerongCU12:
            options["data_position"] = cu12.DataPosition(data_position)
        self.protocol = protocol
        self.baudrate = baudrate
        self.char_time = bits_per_char / baudrate
        self.gap = default_gap(baudrate, bits_per_char) if gap is None else gap
        self.reply_window = reply_window
        self.stats = MonitorStats()
        self._dialect = dialect_cls(**options)
        self._buf = bytearray()
        self._times: list[float] = []  # estimated arrival of each byte of _buf
        self._bounds: list[tuple[int, bool]] = []  # (offset into _buf of the byte after a gap, hard)
        self._garbage = bytearray()
        self._garbage_time = 0.0
        self._last_time: float | None = None
        self._pending: _Pending | None = None
        self._seen = 0  # frames decoded so far

    # -- input -----------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray, at: float) -> list[Frame]:
        """Take ``data`` that arrived at time ``at`` (seconds; the arrival of its last byte) and
        return the records it completes. Never raises on any bytes."""
        out: list[Frame] = []
        if not data:
            return out
        n = len(data)
        first = at - (n - 1) * self.char_time
        if self._last_time is not None and first - self.char_time - self._last_time >= self.gap:
            self._boundary(out, hard=False)
        last = self._last_time if self._last_time is not None else -math.inf
        self._times += [max(first + k * self.char_time, last) for k in range(n)]
        self._buf += data
        self._last_time = max(at, last)
        self._process(out)
        return out

    def idle(self, now: float) -> list[Frame]:
        """Nothing arrived until ``now``: once the line has been silent for a gap, close the
        segment, and give up on a reply whose window has passed. Returns the records that completes."""
        out: list[Frame] = []
        if self._last_time is not None and now - self._last_time >= self.gap:
            self._boundary(out, hard=True)
            self._process(out)
        self._expire(now)
        return out

    def flush(self, now: float | None = None) -> list[Frame]:
        """End of the capture: decode what is left (a frame start that never completed is
        garbage). A request still waiting for its reply counts as missing only when ``now`` is
        given and its window has passed by then."""
        out: list[Frame] = []
        self._boundary(out, hard=True)
        self._process(out)
        if now is not None:
            self._expire(now)
        return out

    # -- segmentation and decoding ---------------------------------------------------------------
    #
    # A boundary is *hard* when the silence was measured (idle(), or the end of the capture): no
    # frame spans it. A boundary seen in feed() is estimated from chunk times, and a reader that
    # stalled hands over a chunk with a silence inside it, which makes the estimate put a gap
    # where there was none. So a *soft* boundary does not cut a frame that decodes across it; it
    # only ends a run of garbage, decides between decodings, and delimits a bad-checksum frame.

    def _boundary(self, out: list[Frame], *, hard: bool) -> None:
        if not self._buf:
            self._emit_garbage(out)
        elif self._bounds and self._bounds[-1][0] == len(self._buf):
            self._bounds[-1] = (len(self._buf), self._bounds[-1][1] or hard)
        else:
            self._bounds.append((len(self._buf), hard))

    def _process(self, out: list[Frame]) -> None:
        while self._buf:
            hard_end = next((offset for offset, hard in self._bounds if hard), None)
            view = self._buf if hard_end is None else self._buf[:hard_end]
            hints = [offset for offset, _ in self._bounds if offset <= len(view)]
            step = self._decode_at(view, hard_end is not None, hints)
            if step is None:
                return  # need more bytes
            if isinstance(step, _Candidate):
                self._emit_frame(step, out)
                self._consume(step.length, out)
            else:
                self._add_garbage(step, out)
                self._consume(step, out)

    def _consume(self, n: int, out: list[Frame]) -> None:
        del self._buf[:n]
        del self._times[:n]
        bounds = [(offset - n, hard) for offset, hard in self._bounds]
        self._bounds = [(offset, hard) for offset, hard in bounds if offset > 0]
        if len(self._bounds) < len(bounds):
            self._emit_garbage(out)  # garbage never runs across a gap

    def _decode_at(self, view: bytearray, closed: bool, hints: list[int]) -> _Candidate | int | None:
        """A frame at ``view[0]``, a count of garbage bytes to drop, or None to wait for bytes.

        ``closed``: a hard boundary ends ``view``. ``hints``: offsets of the gaps in ``view``.
        """
        dialect = self._dialect
        candidates: list[_Candidate] = []
        waiting = False
        skips: list[int] = []
        for direction, decoder in dialect.decoders:
            consumed, frame = decoder(view)
            if consumed == 0:
                waiting = True
            elif frame is None:
                skips.append(consumed)
            elif dialect.plausible(direction, frame):
                candidates.append(_Candidate(consumed, frame, direction))
            else:
                skips.append(1)
        if waiting and not closed:
            return None
        if candidates:
            return self._choose(candidates, hints)
        if dialect.may_start(view[0]):
            if hints and hints[0] <= dialect.MAX_FRAME:
                repaired = self._repaired(bytes(view[: hints[0]]))
                if repaired is not None:
                    return repaired
            elif not closed and len(view) <= dialect.MAX_FRAME:
                return None  # a frame with a bad checksum? only the next gap can tell where it ends
        if waiting:  # a start that a hard boundary cut short
            skips.append(1)
        return max(1, min(skips))

    def _repaired(self, raw: bytes) -> _Candidate | None:
        """``raw`` (up to the next gap) as one frame whose checksum is wrong, if fixing it makes it decode."""
        dialect = self._dialect
        fixed = dialect.repair(raw)
        if fixed is None or fixed == raw:
            return None
        candidates = []
        for direction, decoder in dialect.decoders:
            consumed, frame = decoder(fixed)
            if frame is not None and consumed == len(fixed) and dialect.plausible(direction, frame):
                candidates.append(_Candidate(consumed, frame, direction, checksum_ok=False))
        return self._choose(candidates, [len(raw)]) if candidates else None

    def _fresh_pending(self, at: float) -> _Pending | None:
        pending = self._pending
        if pending is None or pending.answered or at - pending.end > self.reply_window:
            return None
        return pending

    def _choose(self, candidates: list[_Candidate], hints: list[int]) -> _Candidate:
        at_gap = [c for c in candidates if c.length in hints]
        candidates = at_gap or candidates
        pending = self._fresh_pending(self._times[0])

        def answers(c: _Candidate) -> bool:
            return (
                pending is not None
                and c.direction is Direction.REPLY
                and self._dialect.answers(pending.record.decoded, c.frame)
            )

        best = max(candidates, key=lambda c: (answers(c), c.direction is Direction.REQUEST, c.length))
        twins = [c for c in candidates if c.length == best.length and c.direction is not best.direction]
        if twins and not answers(best) and self._seen == 0:
            # the same bytes read as request and as reply, and no conversation to tell which
            best = _Candidate(best.length, best.frame, Direction.UNKNOWN, best.checksum_ok, best.shape)
        return best

    # -- records ---------------------------------------------------------------------------------

    def _emit_frame(self, c: _Candidate, out: list[Frame]) -> None:
        self._emit_garbage(out)
        start, end = self._times[0], self._times[c.length - 1]
        pending = self._fresh_pending(start)
        answered = pending if pending is not None and c.direction is Direction.REPLY and \
            self._dialect.answers(pending.record.decoded, c.frame) else None
        self._expire(start)
        assert c.shape is not None
        described = self._dialect.describe(c.frame, c.shape, answered.record.decoded if answered else None)
        record = Frame(
            time=start,
            direction=c.direction,
            board=described.board,
            command=described.command,
            channels=tuple(described.channels),
            payload=dict(described.payload),
            checksum_ok=c.checksum_ok,
            raw=bytes(self._buf[: c.length]),
            latency=None if answered is None else max(0.0, start - self.char_time - answered.end),
            decoded=c.frame,
        )
        stats = self.stats
        stats.frames += 1
        stats.frames_by_board[record.board] += 1
        if not c.checksum_ok:
            stats.checksum_errors += 1
        if c.direction is Direction.REQUEST:
            stats.requests += 1
            self._settle_pending()
            self._pending = _Pending(record, end)
        elif c.direction is Direction.REPLY:
            stats.replies += 1
            if answered is not None:
                answered.answered = True
            else:
                stats.unmatched_replies += 1
        else:
            stats.unknown += 1
            if c.shape is Direction.REQUEST:  # perhaps a request: let its echo be seen as the reply
                self._settle_pending()
                self._pending = _Pending(record, end, tentative=True)
        self._seen += 1
        out.append(record)

    def _settle_pending(self) -> None:
        """The waiting request will get no reply now: count it if it promised one."""
        pending, self._pending = self._pending, None
        if pending is None or pending.answered or pending.tentative:
            return
        if self._dialect.expects_reply(pending.record.decoded):
            self.stats.replies_missing += 1
            self.stats.replies_missing_by_board[pending.record.board] += 1

    def _expire(self, now: float) -> None:
        pending = self._pending
        if pending is not None and not pending.answered and now - pending.end > self.reply_window:
            self._settle_pending()

    def _add_garbage(self, n: int, out: list[Frame]) -> None:
        for k in range(n):
            if not self._garbage:
                self._garbage_time = self._times[k]
            self._garbage.append(self._buf[k])
            if len(self._garbage) >= GARBAGE_CHUNK:
                self._emit_garbage(out)

    def _emit_garbage(self, out: list[Frame]) -> None:
        if not self._garbage:
            return
        raw, self._garbage = bytes(self._garbage), bytearray()
        self.stats.garbage_records += 1
        self.stats.garbage_bytes += len(raw)
        out.append(Frame(time=self._garbage_time, direction=Direction.UNKNOWN, board=None, command=GARBAGE,
                         payload={"length": len(raw)}, checksum_ok=False, raw=raw))


def decode_capture(protocol: str, chunks: Iterable[tuple[float, bytes]], baudrate: int, **options: Any) -> list[Frame]:
    """Every record of a whole capture: ``chunks`` are ``(arrival time, bytes)`` in order."""
    monitor = Monitor(protocol, baudrate, **options)
    frames: list[Frame] = []
    for at, data in chunks:
        frames += monitor.feed(data, at)
    return frames + monitor.flush()
