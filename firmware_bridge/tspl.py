"""TSPL label printers (TSC, Gprinter, HPRT, Xprinter label models): the commands postkiosk sends,
the status byte it reads back, and a decoder for the printer simulator (hardware-protocols.md §4.4,
kiosk-ux-and-stack.md §10.5).

Pure codec: no ports, no clocks. A job is ASCII command lines, each ending in CR LF; units are dots
(203 dpi: 8 dots = 1 mm)::

    SIZE 76 mm,130 mm\\r\\n                    label size ("mm" suffix; without it, inches)
    GAP 2 mm,0 mm\\r\\n                        gap between labels, offset
    DIRECTION 1\\r\\n
    CLS\\r\\n                                  clear the image buffer
    TEXT 16,16,"TSS24.BF2",0,1,1,"取件码"\\r\\n built-in font; TSS24.BF2 = simplified Chinese 24x24
    BITMAP x,y,wb,h,mode,<wb*h raw bytes>\\r\\n  binary rows, MSB = leftmost dot, bit 0 = BLACK
    PRINT 1,1\\r\\n                            sets, copies

    <ESC>!?   1B 21 3F   status query, answered at once with one byte:

    bit   7            6           5         4       3               2               1           0
          head temp.   cover open  printing  paused  out of ribbon   out of paper    paper jam   head open
          (option)     (option)                                                                  00 = ready

Polarity: in ``BITMAP`` data a 0 bit prints (the opposite of ESC/POS raster). Several independent
drivers agree on that; a printer that prints the negative needs mode or data inverted, which is a
one-line change here, so check it on the model bought.

Chinese text: the whole stream is encoded in the code page (GBK by default) and ``TEXT`` uses a
GB font. A ``"`` inside a quoted string is written ``\\["]``.

:func:`decode` takes one command off the front of a buffer, for the simulator. Resynchronisation:

* a line ends at LF (a CR before it is dropped); empty lines are skipped (``(n, None)``);
* ``BITMAP`` is framed by its header: after the fifth comma exactly ``wb * h`` data bytes follow,
  whatever they contain (CR, LF, ESC). A header whose numbers do not parse, or whose data would
  exceed :data:`MAX_BITMAP`, is consumed up to the next LF as an unknown line;
* ``ESC`` at the start of a command is an immediate command (``1B 21 x``), three bytes;
* a line longer than :data:`MAX_LINE` without LF is dropped; bytes that are not text come back
  decoded with replacement characters, never as an exception.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from PIL import Image

from firmware_bridge.escpos import pack_rows, unpack_rows

CRLF = b"\r\n"
ESC = 0x1B
STATUS_QUERY = b"\x1b!?"
MAX_LINE = 8192
MAX_BITMAP = 8 * 1024 * 1024
CHINESE_FONT = "TSS24.BF2"


class BitmapMode(enum.IntEnum):
    OVERWRITE = 0
    OR = 1
    XOR = 2


# -- encoders ----------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:g}"


def size_mm(width: float, height: float) -> bytes:
    return f"SIZE {_number(width)} mm,{_number(height)} mm".encode("ascii") + CRLF


def gap_mm(gap: float, offset: float = 0) -> bytes:
    return f"GAP {_number(gap)} mm,{_number(offset)} mm".encode("ascii") + CRLF


def direction(n: int = 1) -> bytes:
    return f"DIRECTION {int(n)}".encode("ascii") + CRLF


def density(n: int) -> bytes:
    if not 0 <= n <= 15:
        raise ValueError(f"DENSITY takes 0-15, not {n}")
    return f"DENSITY {n}".encode("ascii") + CRLF


def cls() -> bytes:
    return b"CLS" + CRLF


def quote(s: str) -> str:
    """``s`` as a TSPL string literal; control characters become spaces."""
    s = re.sub(r"[\x00-\x1f\x7f]", " ", s)
    return '"' + s.replace('"', '\\["]') + '"'


def text(x: int, y: int, content: str, *, font: str = CHINESE_FONT, rotation: int = 0, x_mul: int = 1,
         y_mul: int = 1, code_page: str = "gbk") -> bytes:
    """``TEXT`` with a built-in font, encoded in ``code_page`` (unencodable characters become ``?``)."""
    line = f"TEXT {int(x)},{int(y)},{quote(font)},{int(rotation)},{int(x_mul)},{int(y_mul)},{quote(content)}"
    return line.encode(code_page, errors="replace") + CRLF


def bitmap(x: int, y: int, image: Image.Image, mode: BitmapMode = BitmapMode.OVERWRITE) -> bytes:
    """``BITMAP`` of the 1-bit ``image`` with its top-left corner at dot ``(x, y)``; black prints.
    A width that is not a multiple of 8 is padded with white on the right."""
    width_bytes, data = pack_rows(image, one_is_black=False)
    header = f"BITMAP {int(x)},{int(y)},{width_bytes},{image.height},{int(BitmapMode(mode))},"
    return header.encode("ascii") + data + CRLF


def print_(sets: int = 1, copies: int = 1) -> bytes:
    """``PRINT m,n``: print the image buffer ``m`` times, each ``n`` copies."""
    if sets < 1 or copies < 1:
        raise ValueError("PRINT needs at least one set and one copy")
    return f"PRINT {sets},{copies}".encode("ascii") + CRLF


def status_query() -> bytes:
    """``<ESC>!?``: one status byte, answered at once (even mid-job)."""
    return STATUS_QUERY


# -- status ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelPrinterStatus:
    head_open: bool = False
    paper_jam: bool = False
    paper_out: bool = False
    ribbon_out: bool = False
    paused: bool = False
    printing: bool = False
    cover_open: bool = False
    head_overheat: bool = False

    @property
    def ready(self) -> bool:
        return encode_status(self) & ~0x20 == 0  # printing is not a fault


_BITS = ("head_open", "paper_jam", "paper_out", "ribbon_out", "paused", "printing", "cover_open", "head_overheat")


def decode_status(value: int) -> LabelPrinterStatus:
    """The answer to ``<ESC>!?`` as named flags; every byte value is a valid status."""
    if not 0 <= value <= 0xFF:
        raise ValueError(f"a status is one byte, not {value}")
    return LabelPrinterStatus(**{name: bool(value >> bit & 1) for bit, name in enumerate(_BITS)})


def encode_status(status: LabelPrinterStatus) -> int:
    return sum(1 << bit for bit, name in enumerate(_BITS) if getattr(status, name))


# -- decoder (the printer's side) --------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command line: ``name`` upper-cased, ``args`` split at commas outside quotes, quoted
    strings unquoted and unescaped."""

    name: str
    args: tuple[str, ...] = ()

    def __repr__(self) -> str:  # TEXT may carry a name: show its shape only
        return f"Command({self.name}, {len(self.args)} args)"


@dataclass(frozen=True)
class Bitmap:
    x: int
    y: int
    width_bytes: int
    height: int
    mode: int
    data: bytes

    def image(self) -> Image.Image:
        return unpack_rows(self.width_bytes, self.height, self.data, one_is_black=False)

    def __repr__(self) -> str:
        return f"Bitmap({self.x},{self.y}, {self.width_bytes}x{self.height}, mode {self.mode})"


@dataclass(frozen=True)
class Immediate:
    """``<ESC>!x``: ``?`` status, ``R`` reset, ``P`` pause... answered without queueing."""

    code: str


@dataclass(frozen=True)
class Unknown:
    """A line that could not be parsed (bad BITMAP header, noise)."""

    raw: bytes

    def __repr__(self) -> str:
        return f"Unknown({len(self.raw)} bytes)"


Frame = Command | Bitmap | Immediate | Unknown

_BITMAP = re.compile(rb"\s*BITMAP\s", re.IGNORECASE)
_BITMAP_HEADER = re.compile(rb"\s*BITMAP\s+(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,", re.IGNORECASE)


def decode(buf: bytes | bytearray, *, code_page: str = "gbk") -> tuple[int, Frame | None]:
    """Take one command off the front of ``buf``: ``(consumed, frame)``; ``(n, None)`` skips an
    empty line; ``(0, None)`` needs more bytes. Never raises."""
    if not buf:
        return 0, None
    if buf[0] == ESC:
        if len(buf) < 3:
            return 0, None
        if buf[1] != 0x21:
            return 1, Unknown(bytes(buf[:1]))
        return 3, Immediate(chr(buf[2]))
    if _BITMAP.match(buf[:16]):
        header = _BITMAP_HEADER.match(buf[:96])
        if header:
            x, y, wb, h, mode = (int(g) for g in header.groups())
            size = wb * h
            if size <= MAX_BITMAP:
                start = header.end()
                if len(buf) < start + size:
                    return 0, None
                return start + size, Bitmap(x, y, wb, h, mode, bytes(buf[start:start + size]))
        elif buf.count(b",", 0, 96) < 5 and b"\n" not in buf[:96] and len(buf) < 96:
            return 0, None  # the header is still arriving
    end = buf.find(b"\n", 0, MAX_LINE + 2)
    if end < 0:
        return (len(buf), None) if len(buf) > MAX_LINE else (0, None)
    line = bytes(buf[:end]).rstrip(b"\r")
    if _BITMAP.match(line):
        return end + 1, Unknown(line)
    if not line.strip():
        return end + 1, None
    return end + 1, _command(line.decode(code_page, errors="replace"))


def _command(line: str) -> Command:
    name, _, rest = line.lstrip().partition(" ")
    return Command(name.upper(), tuple(_split_args(rest)) if rest.strip() else ())


def _split_args(rest: str) -> list[str]:
    """Arguments at commas; a quoted argument is kept exactly as between its quotes (unescaped),
    an unquoted one is stripped. Text after a closing quote and before the comma is dropped."""
    args: list[str] = []
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] == " ":
            i += 1
        if i < n and rest[i] == '"':
            value: list[str] = []
            i += 1
            while i < n and rest[i] != '"':
                if rest.startswith('\\["]', i):
                    value.append('"')
                    i += 4
                else:
                    value.append(rest[i])
                    i += 1
            args.append("".join(value))
            comma = rest.find(",", i)
        else:
            comma = rest.find(",", i)
            args.append((rest[i:] if comma < 0 else rest[i:comma]).strip())
        if comma < 0:
            return args
        i = comma + 1


def mm_or_inches(value: str, dpi: int) -> int:
    """A ``SIZE``/``GAP`` argument (``"76 mm"``, ``"2"`` inches, ``"203 dot"``) in dots; ValueError
    when it is not a number."""
    value = value.strip().lower()
    for suffix, per_unit in (("mm", dpi / 25.4), ("dot", 1.0)):
        if value.endswith(suffix):
            return round(float(value[: -len(suffix)]) * per_unit)
    return round(float(value) * dpi)
