"""Grow GM65 / GM805 / GM812 scan-engine command frames (hardware-protocols.md §3.2).

Decoded codes are plain lines (``firmware_bridge.scanner_lines``); this module is the host's command
channel on the same UART. Host to module::

    +----+----+------+-----+--------+--------+-----------+-------+-------+
    | 7E | 00 | TYPE | LEN | ADDR_H | ADDR_L | DATA      | CRC_H | CRC_L |
    +----+----+------+-----+--------+--------+-----------+-------+-------+
      TYPE 07 read zone bits (DATA = how many bytes to read), 08 write zone bits, 09 save to flash
      LEN  = len(DATA)
      CRC  = CRC-16/XMODEM (poly 0x1021, init 0, no reflection) over TYPE..DATA plus the 00 after
             7E, or the literal AB CD, which tells the module not to check

    trigger a scan   7E 00 08 01 00 02 01 AB CD    (write 01 to zone 0x0002)
    save to flash    7E 00 09 01 00 00 00 DE C8
    AIM id on / off  7E 00 08 01 00 D0 80 AB CD / 7E 00 08 01 00 D0 00 AB CD

Module to host::

    +----+----+----+-----+-----------+-------+-------+
    | 02 | 00 | 00 | LEN | DATA      | CRC_H | CRC_L |      trigger reply: 02 00 00 01 00 33 31
    +----+----+----+-----+-----------+-------+-------+
      DATA 00 after a write or save; the zone bytes after a read
      CRC  = CRC-16/XMODEM over the bytes after 02

The CRC algorithm is not stated by the sources [UNVERIFIED]: CRC-16/XMODEM reproduces every
checksum they print (``DE C8`` above, ``A7 EA`` for ``7E 00 08 02 00 2A 39 01`` and ``D8 0F`` for
``7E 00 07 01 00 2A 02``, and the reply's ``33 31``). Sending ``AB CD`` avoids the question, so
:func:`encode` does that by default.

Resynchronisation rules: :func:`decode_command` skips to the next ``7E 00``; a frame whose CRC is
neither right nor ``AB CD`` is skipped one byte at a time. :func:`decode_reply` skips one byte at a
time until ``02 00 00``; a reply whose CRC is neither right nor ``AB CD`` is skipped by one byte. Both need more bytes for
an incomplete frame; a caller that sees the line go quiet gives the fragment up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

HEAD = b"\x7e\x00"
REPLY_HEAD = b"\x02\x00\x00"
NO_CRC = b"\xab\xcd"

ZONE_TRIGGER = 0x0002  # write 01: start one scan in command trigger mode
ZONE_AIM = 0x00D0  # bit 7: send AIM identifiers
AIM_BIT = 0x80


class FrameType(enum.IntEnum):
    READ = 0x07
    WRITE = 0x08
    SAVE = 0x09


@dataclass(frozen=True)
class Command:
    """One host frame. ``data``: for WRITE the bytes written from ``address`` on; for READ one byte,
    how many to read; for SAVE ``00``."""

    kind: FrameType
    address: int
    data: bytes

    def encode(self, *, crc: bool = False) -> bytes:
        return encode(self, crc=crc)


@dataclass(frozen=True)
class Reply:
    data: bytes

    @property
    def ok(self) -> bool:
        """A write or save was accepted (DATA ``00``)."""
        return self.data == b"\x00"


def crc16_xmodem(data: bytes | bytearray) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def encode(frame: Command, *, crc: bool = False) -> bytes:
    """The host frame; ``crc=False`` sends ``AB CD`` (no check), ``True`` the CRC-16/XMODEM."""
    if not 0 <= frame.address <= 0xFFFF:
        raise ValueError(f"zone address must be 0..0xFFFF, not {frame.address!r}")
    if not 1 <= len(frame.data) <= 0xFF:
        raise ValueError(f"a frame carries 1..255 data bytes, not {len(frame.data)}")
    body = bytes([0x00, frame.kind, len(frame.data)]) + frame.address.to_bytes(2, "big") + frame.data
    check = crc16_xmodem(body).to_bytes(2, "big") if crc else NO_CRC
    return b"\x7e" + body + check


def write(address: int, data: bytes | int, *, crc: bool = False) -> bytes:
    raw = bytes([data]) if isinstance(data, int) else bytes(data)
    return encode(Command(FrameType.WRITE, address, raw), crc=crc)


def read(address: int, count: int = 1, *, crc: bool = False) -> bytes:
    return encode(Command(FrameType.READ, address, bytes([count])), crc=crc)


TRIGGER = write(ZONE_TRIGGER, 0x01)
SAVE = encode(Command(FrameType.SAVE, 0x0000, b"\x00"), crc=True)
AIM_ON = write(ZONE_AIM, AIM_BIT)
AIM_OFF = write(ZONE_AIM, 0x00)
OK_REPLY_DATA = b"\x00"


def decode_command(buf: bytes | bytearray) -> tuple[int, Command | None]:
    """Take one host frame off the front of ``buf`` (the simulator's side)."""
    if not buf:
        return 0, None
    if buf[0] != 0x7E:
        start = buf.find(b"\x7e")
        return (len(buf) if start < 0 else start), None
    if len(buf) < 2:
        return 0, None
    if buf[1] != 0x00:
        return 1, None
    if len(buf) >= 3 and buf[2] not in (FrameType.READ, FrameType.WRITE, FrameType.SAVE):
        return 1, None
    if len(buf) < 4:
        return 0, None
    length = buf[3]
    total = 6 + length + 2  # 7E 00 TYPE LEN ADDR_H ADDR_L, DATA, CRC
    if length == 0:
        return 1, None
    if len(buf) < total:
        return 0, None
    body = bytes(buf[1:total - 2])
    check = bytes(buf[total - 2:total])
    if check != NO_CRC and int.from_bytes(check, "big") != crc16_xmodem(body):
        return 1, None
    return total, Command(FrameType(body[1]), int.from_bytes(body[3:5], "big"), body[5:])


def encode_reply(data: bytes = OK_REPLY_DATA) -> bytes:
    """The module's reply (what the simulator writes)."""
    if not 1 <= len(data) <= 0xFF:
        raise ValueError(f"a reply carries 1..255 data bytes, not {len(data)}")
    body = b"\x00\x00" + bytes([len(data)]) + data
    return b"\x02" + body + crc16_xmodem(body).to_bytes(2, "big")


def decode_reply(buf: bytes | bytearray) -> tuple[int, Reply | None]:
    """Take one reply off the front of ``buf``: ``(consumed, reply)``, ``(n, None)`` skips ``n``
    bytes, ``(0, None)`` needs more."""
    if not buf:
        return 0, None
    head = bytes(buf[:3])
    if head != REPLY_HEAD[:len(head)]:
        return 1, None
    if len(buf) < 4:
        return 0, None
    length = buf[3]
    total = 4 + length + 2
    if length == 0:
        return 1, None
    if len(buf) < total:
        return 0, None
    check = bytes(buf[total - 2:total])
    if check != NO_CRC and int.from_bytes(check, "big") != crc16_xmodem(bytes(buf[1:total - 2])):
        return 1, None
    return total, Reply(bytes(buf[4:total - 2]))
