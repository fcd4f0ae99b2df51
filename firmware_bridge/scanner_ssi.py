"""Zebra/Symbol SSI (Simple Serial Interface) packets of SE/DS scan engines (hardware-protocols.md §3.2).

Every packet, both directions::

    +-----+--------+-----+--------+----------------+---------+---------+
    | LEN | OPCODE | SRC | STATUS | DATA           | CKSUM_H | CKSUM_L |
    +-----+--------+-----+--------+----------------+---------+---------+
      LEN counts LEN..DATA (4 + len(DATA)), not the checksum; 4..255
      SRC 04 = host, 00 = decoder (the scan engine)
      CKSUM = two's complement of the 16-bit sum of LEN..DATA, big-endian:
              (0x10000 - sum) & 0xFFFF, so sum + CKSUM == 0 mod 0x10000

    START_DECODE  04 E4 04 00 FF 14       STOP_DECODE  04 E5 04 00 FF 13
    CMD_ACK       04 D0 04 00 FF 28       SCAN_ENABLE  04 E9 04 00 FF 0F
    SCAN_DISABLE  04 EA 04 00 FF 0E       REQUEST_REVISION 04 A3 04 00 FF 55   [MULTI]

    DECODE_DATA (decoder to host, opcode F3), DATA = BARCODE_TYPE then the code's bytes:
    07 F3 00 00 03 55 53 FE 5B            Code 128 "US"   [ONE: captured exchange in a public
                                                           SE3300 integration, recomputed]
    CMD_NAK  05 D1 SRC 00 CAUSE CKSUM     CAUSE 01 resend (bad checksum), 02 bad context,
                                          06 denied   [ONE]

A host that sleeps the engine sends one wake byte ``00`` before a command (§3.2).

[UNVERIFIED] details, kept in one place so a capture can correct them:

* STATUS bits: 0x01 retransmission, 0x02 continuation (more packets of the same DECODE_DATA follow),
  0x08 permanent change (PARAM_SEND). Every packet of a multi-packet DECODE_DATA is taken to start
  with the BARCODE_TYPE byte.
* The host must ACK each DECODE_DATA packet; the engine resends it (with the retransmission bit)
  when no ACK comes.
* BARCODE_TYPE values (:data:`CODE_TYPES`) come from one third-party SDK's table; only 0x03
  (Code 128) is confirmed by the capture above.
* Parameter 0xEE "decode data packet format": 0 raw lines, 1 packeted DECODE_DATA.

Resynchronisation rules of :func:`decode`: a first byte below 4 (the wake byte ``00``, noise), an
opcode not in :class:`Opcode`, a SRC other than 00/04, or a checksum that does not match skips one
byte, so the next possible packet start is tried. An incomplete packet needs more bytes: a caller
that sees the line go quiet with bytes left drops the first one and decodes again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HEADER = 4  # LEN OPCODE SRC STATUS
WAKE = b"\x00"
MAX_DATA = 0xFF - HEADER


class Opcode(enum.IntEnum):
    CUSTOM_DEFAULTS = 0x12
    REQUEST_REVISION = 0xA3
    REPLY_REVISION = 0xA4
    AIM_OFF = 0xC4
    AIM_ON = 0xC5
    PARAM_SEND = 0xC6
    PARAM_REQUEST = 0xC7
    PARAM_DEFAULTS = 0xC8
    CMD_ACK = 0xD0
    CMD_NAK = 0xD1
    FLUSH_QUEUE = 0xD2
    CAPABILITIES_REQUEST = 0xD3
    CAPABILITIES_REPLY = 0xD4
    START_DECODE = 0xE4
    STOP_DECODE = 0xE5
    BEEP = 0xE6
    LED_ON = 0xE7
    LED_OFF = 0xE8
    SCAN_ENABLE = 0xE9
    SCAN_DISABLE = 0xEA
    SLEEP = 0xEB
    DECODE_DATA = 0xF3
    EVENT = 0xF6
    IMAGER_MODE = 0xF7


class Source(enum.IntEnum):
    DECODER = 0x00
    HOST = 0x04


class Status(enum.IntFlag):
    RETRANSMIT = 0x01
    CONTINUATION = 0x02
    PERMANENT = 0x08


class NakCause(enum.IntEnum):
    RESEND = 0x01  # checksum failure: send it again
    BAD_CONTEXT = 0x02  # unknown or malformed command
    DENIED = 0x06  # understood, but not now (e.g. scanning disabled)


#: parameter number -> value for PARAM_SEND (single-byte parameter numbers only)
PARAM_DECODE_DATA_PACKET_FORMAT = 0xEE
PACKETED = 0x01
NO_BEEP = 0xFF

#: BARCODE_TYPE byte of DECODE_DATA -> (name, AIM identifier) [ONE, see module docstring]
CODE_TYPES: dict[int, tuple[str, str | None]] = {
    0x01: ("Code 39", "]A0"),
    0x02: ("Codabar", "]F0"),
    0x03: ("Code 128", "]C0"),
    0x04: ("Discrete 2 of 5", "]S0"),
    0x06: ("Interleaved 2 of 5", "]I0"),
    0x07: ("Code 93", "]G0"),
    0x08: ("UPC-A", "]E0"),
    0x09: ("UPC-E", "]E0"),
    0x0A: ("EAN-8", "]E4"),
    0x0B: ("EAN-13", "]E0"),
    0x0C: ("Code 11", "]H0"),
    0x0E: ("MSI", "]M0"),
    0x0F: ("GS1-128", "]C1"),
    0x11: ("PDF417", "]L0"),
    0x1B: ("Data Matrix", "]d1"),
    0x1C: ("QR Code", "]Q1"),
    0x2D: ("Aztec", "]z0"),
    0x30: ("GS1 DataBar", "]e0"),
}


@dataclass(frozen=True)
class Packet:
    opcode: int
    source: int = Source.HOST
    status: int = 0
    data: bytes = b""

    def __repr__(self) -> str:  # DECODE_DATA carries a scanned code: never its bytes in a repr
        try:
            name = Opcode(self.opcode).name
        except ValueError:
            name = f"0x{self.opcode:02X}"
        return f"Packet({name}, source={self.source:#04x}, status={self.status:#04x}, {len(self.data)} data bytes)"


@dataclass(frozen=True)
class DecodeData:
    """The content of one DECODE_DATA packet."""

    code_type: int
    data: bytes
    continued: bool = False  # more packets of this code follow
    retransmitted: bool = False

    def __repr__(self) -> str:
        return f"DecodeData(type=0x{self.code_type:02X}, {len(self.data)} bytes, continued={self.continued})"

    @property
    def symbology(self) -> str | None:
        """The AIM identifier for :attr:`code_type`, or None when the type is not in the table."""
        return CODE_TYPES.get(self.code_type, ("", None))[1]


def checksum(body: bytes | bytearray) -> int:
    """Two's complement of the 16-bit byte sum of ``body`` (LEN..DATA)."""
    return (0x10000 - sum(body)) & 0xFFFF


def encode(packet: Packet) -> bytes:
    if len(packet.data) > MAX_DATA:
        raise ValueError(f"an SSI packet holds at most {MAX_DATA} data bytes, not {len(packet.data)}")
    body = bytes([HEADER + len(packet.data), packet.opcode, packet.source, packet.status]) + packet.data
    return body + checksum(body).to_bytes(2, "big")


_OPCODES = frozenset(int(o) for o in Opcode)
_SOURCES = frozenset(int(s) for s in Source)


def decode(buf: bytes | bytearray) -> tuple[int, Packet | None]:
    """Take one packet off the front of ``buf``: ``(consumed, packet)``; ``(n, None)`` skips ``n``
    bytes; ``(0, None)`` needs more bytes."""
    if not buf:
        return 0, None
    length = buf[0]
    if length < HEADER:
        return 1, None
    if len(buf) >= 2 and buf[1] not in _OPCODES:
        return 1, None
    if len(buf) >= 3 and buf[2] not in _SOURCES:
        return 1, None
    if len(buf) < length + 2:
        return 0, None
    body = bytes(buf[:length])
    if int.from_bytes(buf[length:length + 2], "big") != checksum(body):
        return 1, None
    return length + 2, Packet(body[1], body[2], body[3], body[4:])


def command(opcode: Opcode, data: bytes = b"", *, status: int = 0) -> bytes:
    """A host command packet, encoded."""
    return encode(Packet(opcode, Source.HOST, status, data))


START_DECODE = command(Opcode.START_DECODE)
STOP_DECODE = command(Opcode.STOP_DECODE)
CMD_ACK = command(Opcode.CMD_ACK)
SCAN_ENABLE = command(Opcode.SCAN_ENABLE)
SCAN_DISABLE = command(Opcode.SCAN_DISABLE)
REQUEST_REVISION = command(Opcode.REQUEST_REVISION)


def nak(cause: NakCause, source: int = Source.HOST) -> bytes:
    return encode(Packet(Opcode.CMD_NAK, source, 0, bytes([cause])))


def ack(source: int = Source.HOST) -> bytes:
    return encode(Packet(Opcode.CMD_ACK, source))


def param_send(params: Mapping[int, int] | Iterable[tuple[int, int]], *, permanent: bool = False,
               beep: int = NO_BEEP) -> bytes:
    """PARAM_SEND (``C6 04 STATUS ...``): ``beep`` code (FF = none), then parameter/value pairs.
    ``permanent`` sets the change-type bit so the engine keeps them over a power cycle."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    data = bytearray([beep])
    for number, value in pairs:
        if not (0 <= number < 0xF0 and 0 <= value <= 0xFF):
            raise ValueError(f"only single-byte parameters 0x00..0xEF with values 0..255: {number!r}={value!r}")
        data += bytes([number, value])
    return command(Opcode.PARAM_SEND, bytes(data), status=Status.PERMANENT if permanent else 0)


def decode_data(packet: Packet) -> DecodeData | None:
    """The barcode type and bytes of a DECODE_DATA packet; None for any other packet or an empty one."""
    if packet.opcode != Opcode.DECODE_DATA or not packet.data:
        return None
    return DecodeData(packet.data[0], packet.data[1:], bool(packet.status & Status.CONTINUATION),
                      bool(packet.status & Status.RETRANSMIT))


def decode_data_packets(data: bytes, code_type: int, *, retransmit: bool = False) -> list[bytes]:
    """The DECODE_DATA packets an engine sends for ``data`` (what the simulator writes): split at
    :data:`MAX_DATA` - 1 bytes, the continuation bit on all but the last."""
    chunk = MAX_DATA - 1
    parts = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
    packets = []
    for i, part in enumerate(parts):
        status = (Status.CONTINUATION if i < len(parts) - 1 else 0) | (Status.RETRANSMIT if retransmit else 0)
        packets.append(encode(Packet(Opcode.DECODE_DATA, Source.DECODER, int(status), bytes([code_type]) + part)))
    return packets


def nak_cause(packet: Packet) -> NakCause | int | None:
    """The cause byte of a CMD_NAK (a :class:`NakCause` when known), None for other packets."""
    if packet.opcode != Opcode.CMD_NAK:
        return None
    if not packet.data:
        return 0
    try:
        return NakCause(packet.data[0])
    except ValueError:
        return packet.data[0]
