"""ESC/POS receipt printers: the few commands postkiosk sends, the status bytes it reads back, and a
decoder of the command stream for the printer simulator (hardware-protocols.md §4.1-4.3, §4.5).

Pure codec: no ports, no clocks. What the host sends::

    init              1B 40                               ESC @
    raster image      1D 76 30 m xL xH yL yH d1..dk       GS v 0, k = (xL + 256 xH) * (yL + 256 yH)
                        row after row, (xL + 256 xH) bytes a row, MSB = leftmost dot, 1 = black
    feed n lines      1B 64 n                             ESC d n
    cut               1D 56 00 | 1D 56 01                 GS V m (full | partial)
    Chinese text      1C 26  GBK bytes  1C 2E             FS & ... FS .  (ASCII stays outside)
    Code 128          1D 68 h  1D 77 w  1D 66 00  1D 48 p  1D 6B 49 n d1..dn
                        GS h height (dots), GS w module (dots), GS f HRI font A, GS H HRI position
                        (0 none, 1 above, 2 below, 3 both), GS k m=73: n data bytes, starting with
                        a code set selection "{A" / "{B" / "{C"; "{{" is a literal "{" in set B;
                        in set C each byte is a value 0-99 (two digits), not ASCII
    QR code           1D 28 6B 04 00 31 41 32 00          GS ( k fn 165: model 2
                      1D 28 6B 03 00 31 43 s              fn 167: module size s dots (1-16)
                      1D 28 6B 03 00 31 45 e              fn 169: error correction 30 L 31 M 32 Q 33 H
                      1D 28 6B pL pH 31 50 30 d1..dk      fn 180: store k bytes, pL + 256 pH = k + 3
                      1D 28 6B 03 00 31 51 30             fn 181: print the stored symbol
    line feed         0A
    real-time status  10 04 n                             DLE EOT n, n = 1..4; the printer answers 1 byte

What the printer answers to ``DLE EOT n`` (one byte; bits 1 and 4 always 1, bits 0 and 7 always 0,
so "all fine" is ``0x12``; :func:`decode_status` refuses a byte that breaks this)::

    bit     7   6                 5                      4   3                2                1   0
    n=1     0   (feed button)     (waiting for online)   1   offline          drawer pin 3     1   0
    n=2     0   error occurred    stopped: paper end     1   feed by button   cover open       1   0
    n=3     0   auto-recoverable  unrecoverable          1   cutter error     (model-specific) 1   0
    n=4     0   paper end (5+6)   paper end (5+6)        1   near end (2+3)   near end (2+3)   1   0

Why the commands are written here and not built with python-escpos 3.1: its printers *are*
connections (sync, one class per port type), which STYLE.md tells us not to copy, and importing
``escpos.printer`` calls ``logging.basicConfig()``, creates a temporary directory and parses a YAML
capabilities file: I/O at import time in a library. The commands postkiosk needs are a dozen
fixed byte strings; the tests compare them with python-escpos's ``Dummy`` output (an independent
second encoder, §4.5) wherever both can express the same thing.

Chinese text (§4.2): each run of non-ASCII characters is wrapped in ``FS &`` / ``FS .`` and encoded
in the profile's code page, GBK by default: the two-byte area of GB18030, which is all these
printers render (four-byte GB18030 characters print as garbage). Characters outside it become
``?``. C0 control characters and DEL in text are replaced by spaces, so text that reaches a receipt
(a name, an address) can never smuggle in a command.

:func:`decode` takes one command (or one run of text) off the front of a buffer, for the simulator
and for tests. Resynchronisation rules:

* every byte is either part of a known command (those not modelled come back as ``Op.SETTING``),
  text (``>= 0x20``), or a one- or two-byte unknown command (``Op.OTHER``): garbage is consumed,
  never an exception;
* a command whose parameters or data have not all arrived yet returns ``(0, None)``;
* a raster or length-prefixed block larger than :data:`MAX_BLOCK` is not waited for: its header is
  consumed as ``Op.OTHER`` and decoding goes on after it;
* a run of text ends before the next control byte; at the end of the buffer it is returned only up
  to the last whole character (a GBK lead byte waits for its trail byte), and only once it reaches
  :data:`MAX_TEXT` bytes or is followed by a control byte.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

ESC = 0x1B
GS = 0x1D
FS = 0x1C
DLE = 0x10
EOT = 0x04
LF = 0x0A

INIT = b"\x1b\x40"
CHINESE_ON = b"\x1c\x26"
CHINESE_OFF = b"\x1c\x2e"
STATUS_FIXED_MASK = 0x93  # bits 0, 1, 4, 7
STATUS_FIXED_VALUE = 0x12  # bits 1 and 4 on, 0 and 7 off

MAX_TEXT = 4096  # bytes of text returned at once without a terminating control byte
MAX_BLOCK = 4 * 1024 * 1024  # largest raster or length-prefixed block the decoder waits for


class Align(enum.IntEnum):
    LEFT = 0
    CENTER = 1
    RIGHT = 2


class Hri(enum.IntEnum):
    """``GS H n``: where the printer prints a barcode's human-readable characters."""

    NONE = 0
    ABOVE = 1
    BELOW = 2
    BOTH = 3


CODE128 = 73  # GS k m for Code 128 (the length-prefixed form)
#: GS ( k fn 169 parameter for each QR error-correction level
QR_EC = {"L": 0x30, "M": 0x31, "Q": 0x32, "H": 0x33}
#: bytes a version-40 QR symbol holds in byte mode (ISO/IEC 18004 table 7): a longer store is refused
QR_BYTE_CAPACITY = {"L": 2953, "M": 2331, "Q": 1663, "H": 1273}


# -- encoders ----------------------------------------------------------------------------------


def init() -> bytes:
    """``ESC @``: clear the print buffer and reset the modes set by earlier jobs."""
    return INIT


def line_feed() -> bytes:
    return b"\n"


def feed(lines: int) -> bytes:
    """``ESC d n``: print what is buffered and feed ``lines`` lines (0-255)."""
    if not 0 <= lines <= 255:
        raise ValueError(f"feed takes 0-255 lines, not {lines}")
    return bytes((ESC, 0x64, lines))


def cut(*, partial: bool = False) -> bytes:
    """``GS V 0`` (full cut) or ``GS V 1`` (partial cut, a tab left holding the receipt). No feed:
    the cutter sits a few lines above the print head, so feed with :func:`feed` first."""
    return bytes((GS, 0x56, 1 if partial else 0))


def align(where: Align) -> bytes:
    """``ESC a n``: justification of the following lines and raster images."""
    return bytes((ESC, 0x61, Align(where)))


def emphasis(on: bool) -> bytes:
    """``ESC E n``: bold."""
    return bytes((ESC, 0x45, 1 if on else 0))


def status_request(n: int) -> bytes:
    """``DLE EOT n``: ask for real-time status byte ``n`` (1 printer, 2 offline cause, 3 error cause,
    4 paper roll sensor). The printer answers at once, even when offline."""
    if n not in (1, 2, 3, 4):
        raise ValueError(f"DLE EOT takes n = 1..4, not {n}")
    return bytes((DLE, EOT, n))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RUNS = re.compile(r"[\x20-\x7e]+|[^\x20-\x7e]+")


def text(s: str, *, code_page: str = "gbk") -> bytes:
    """``s`` as printable bytes: ASCII as is, each non-ASCII run as ``FS &`` + ``code_page`` bytes +
    ``FS .``. Control characters become spaces; characters the code page lacks become ``?``."""
    s = _CONTROL.sub(" ", s)
    out = bytearray()
    for run in _RUNS.findall(s):
        if run[0] <= "\x7e":
            out += run.encode("ascii")
        else:
            out += CHINESE_ON + run.encode(code_page, errors="replace") + CHINESE_OFF
    return bytes(out)


def text_line(s: str, *, code_page: str = "gbk") -> bytes:
    """:func:`text` followed by a line feed (which prints the line)."""
    return text(s, code_page=code_page) + b"\n"


# -- native barcodes ---------------------------------------------------------------------------

_DIGIT_RUNS = re.compile(r"[0-9]+|[^0-9]+")


def code128_data(data: str, *, compact: bool = True) -> bytes:
    """The ``GS k 73`` data for ``data`` (printable ASCII): code set B, ``{`` doubled. ``compact``
    switches to code set C (two digits a symbol) for digit runs long enough to save space (2 when
    they are the whole content, 4 at either end, 6 in the middle), which keeps a waybill number
    like CP100000003CN two symbols (44 dots at module 2) narrower. Raises ValueError for empty
    data, a character outside 0x20-0x7E, or more than 255 bytes."""
    if not data:
        raise ValueError("a Code 128 needs at least one character")
    for i, ch in enumerate(data):
        if not " " <= ch <= "~":
            raise ValueError(f"Code 128 set B takes printable ASCII; character {i + 1} of {len(data)} is not")
    out = bytearray()
    current = ""

    def select(code_set: str) -> None:
        nonlocal current
        if current != code_set:
            out.extend(b"{" + code_set.encode())
            current = code_set

    def in_b(chunk: str) -> None:
        if chunk:
            select("B")
            out.extend(chunk.replace("{", "{{").encode("ascii"))

    runs = _DIGIT_RUNS.findall(data)
    for index, run in enumerate(runs):
        first, last = index == 0, index == len(runs) - 1
        threshold = 2 if first and last else 4 if first or last else 6
        if not (compact and "0" <= run[0] <= "9" and len(run) >= threshold):
            in_b(run)
            continue
        odd = len(run) % 2
        lead, pairs, tail = ("", run[:len(run) - odd], run[len(run) - odd:]) if first else (run[:odd], run[odd:], "")
        in_b(lead)
        select("C")
        out.extend(int(pairs[i:i + 2]) for i in range(0, len(pairs), 2))
        in_b(tail)
    if len(out) > 255:
        raise ValueError(f"Code 128 data is {len(out)} bytes on the wire; GS k takes at most 255")
    return bytes(out)


def parse_code128(payload: bytes) -> tuple[str, int]:
    """What a printer makes of ``GS k 73`` data: ``(content, symbols)``, ``symbols`` counting the
    symbol characters between start and check character (code set switches included). Raises
    ValueError for data a printer refuses: no code set selection first, a byte outside the current
    set, a dangling ``{``, or FNC1-4 / shift (not modelled)."""
    if len(payload) < 2 or payload[0] != 0x7B or payload[1] not in b"ABC":
        raise ValueError("Code 128 data must start with a code set selection ({A, {B or {C)")
    code_set = chr(payload[1])
    content: list[str] = []
    symbols = 0
    i = 2
    while i < len(payload):
        b = payload[i]
        if b == 0x7B:  # outside set B's "{{", always an escape: 0x7B is in neither set A nor C
            if i + 1 >= len(payload):
                raise ValueError("Code 128 data ends in a lone '{'")
            nxt = payload[i + 1]
            if nxt in b"ABC":
                code_set = chr(nxt)
            elif nxt == 0x7B and code_set == "B":
                content.append("{")
            else:
                raise ValueError(f"Code 128 escape '{{' + 0x{nxt:02X} in code set {code_set} is not supported")
            symbols += 1
            i += 2
            continue
        if code_set == "C":
            if b > 99:
                raise ValueError(f"code set C takes values 0-99, not {b}")
            content.append(f"{b:02d}")
        elif code_set == "B" and 0x20 <= b <= 0x7F or code_set == "A" and b <= 0x5F:
            content.append(chr(b))
        else:
            raise ValueError(f"byte 0x{b:02X} is not in Code 128 code set {code_set}")
        symbols += 1
        i += 1
    if not content:
        raise ValueError("Code 128 data holds no characters")
    return "".join(content), symbols


def code128_modules(data: str, *, compact: bool = True) -> int:
    """Width in modules of the Code 128 that :func:`code128` prints for ``data``, without quiet
    zones: start (11) + 11 per symbol + check (11) + stop (13). Multiply by ``module`` for dots."""
    return 11 * parse_code128(code128_data(data, compact=compact))[1] + 35


def code128(data: str, *, height: int = 80, module: int = 2, hri: Hri = Hri.BELOW, compact: bool = True) -> bytes:
    """A native Code 128 of ``data`` (printable ASCII): ``GS h height`` (dots, 1-255), ``GS w module``
    (dots a narrow bar, 2-6, Epson's range; 2 dots = 0.25 mm at 203 dpi, the smallest a scanner
    reads reliably), ``GS f 0``, ``GS H hri`` and ``GS k 73``. The printer ignores a barcode wider
    than its paper: check with :func:`code128_modules`. See :func:`code128_data` for ``compact``."""
    if not 1 <= height <= 255:
        raise ValueError(f"barcode height must be 1-255 dots, not {height}")
    if not 2 <= module <= 6:
        raise ValueError(f"barcode module must be 2-6 dots, not {module}")
    payload = code128_data(data, compact=compact)
    return (bytes((GS, 0x68, height, GS, 0x77, module, GS, 0x66, 0, GS, 0x48, Hri(hri), GS, 0x6B, CODE128,
                   len(payload))) + payload)


def _qr_function(fn: int, params: bytes) -> bytes:
    body = bytes((0x31, fn)) + params
    return bytes((GS, 0x28, 0x6B)) + len(body).to_bytes(2, "little") + body


def qr_code(data: str, *, module: int = 6, ec: str = "M") -> bytes:
    """A native QR code (model 2) of ``data``: ``GS ( k`` functions 165 (model), 167 (module size,
    dots, 1-16), 169 (error correction "L", "M", "Q" or "H"), 180 (store) and 181 (print). The text
    is stored as UTF-8 without an ECI header, which is what phone scanners expect; the printer
    picks the symbol version. Raises ValueError for empty data or more than the version-40
    byte-mode capacity at ``ec``."""
    if not 1 <= module <= 16:
        raise ValueError(f"QR module size must be 1-16 dots, not {module}")
    if ec not in QR_EC:
        raise ValueError(f"QR error correction must be one of {', '.join(QR_EC)}, not {ec!r}")
    payload = data.encode("utf-8")
    if not payload:
        raise ValueError("a QR code needs at least one character")
    if len(payload) > QR_BYTE_CAPACITY[ec]:
        raise ValueError(f"{len(payload)} bytes do not fit a QR code at level {ec} "
                         f"(at most {QR_BYTE_CAPACITY[ec]})")
    return (_qr_function(0x41, bytes((0x32, 0))) + _qr_function(0x43, bytes((module,)))
            + _qr_function(0x45, bytes((QR_EC[ec],))) + _qr_function(0x50, b"\x30" + payload)
            + _qr_function(0x51, b"\x30"))


def code128_picture(content: str, *, module: int = 2, height: int = 80, hri: Hri = Hri.BELOW) -> Image.Image:
    """A Code 128 of ``content`` as a printer draws it: bars ``height`` dots high, ``module`` dots a
    module, no quiet zone, the human-readable line above and/or below. Drawn by zxing-cpp, whose
    choice of code sets may differ from the host's (and so the width by a few symbols); the
    content is the same. For the simulator and for printers without native barcodes."""
    import zxingcpp

    symbol = zxingcpp.create_barcode(content, zxingcpp.BarcodeFormat.Code128)
    with_text = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=module, add_hrt=True,
                                                           add_quiet_zones=False)) > 127
    bars_only = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=module, add_quiet_zones=False)) > 127
    bars = np.repeat(bars_only[:1], height, axis=0)
    text_rows = with_text[bars_only.shape[0]:]
    blocks = ([text_rows] if hri in (Hri.ABOVE, Hri.BOTH) else []) + [bars]
    blocks += [text_rows] if hri in (Hri.BELOW, Hri.BOTH) else []
    return Image.fromarray(np.vstack(blocks))


def qr_picture(data: str | bytes, *, module: int = 6, ec: str = "M") -> Image.Image:
    """A QR code (model 2) of ``data`` as a printer draws it: ``module`` dots a module, no quiet
    zone. Raises ValueError when it does not fit any version at level ``ec``."""
    import zxingcpp

    symbol = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.QRCode, ec_level=ec)
    return Image.fromarray(np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=module,
                                                                      add_quiet_zones=False)) > 127)


def pack_rows(image: Image.Image, *, one_is_black: bool) -> tuple[int, bytes]:
    """A 1-bit image as rows of bytes, MSB = leftmost dot; ``(width_bytes, data)``. The last byte of
    each row is padded with white dots. ``one_is_black``: ESC/POS raster sets a bit for a black
    dot; TSPL ``BITMAP`` clears it."""
    if image.mode != "1":
        raise ValueError(f"a raster needs a 1-bit image (mode '1'), not mode {image.mode!r}")
    white = np.asarray(image, dtype=bool)  # PIL mode "1": True = white
    width_bytes = (image.width + 7) // 8
    pad = width_bytes * 8 - image.width
    if pad:
        white = np.pad(white, ((0, 0), (0, pad)), constant_values=True)
    bits = ~white if one_is_black else white
    return width_bytes, np.packbits(bits, axis=1).tobytes()


def unpack_rows(width_bytes: int, height: int, data: bytes, *, one_is_black: bool) -> Image.Image:
    """The inverse of :func:`pack_rows`: a mode "1" image ``8 * width_bytes`` dots wide."""
    if len(data) != width_bytes * height:
        raise ValueError(f"{width_bytes} x {height} raster needs {width_bytes * height} bytes, got {len(data)}")
    if width_bytes == 0 or height == 0:
        return Image.new("1", (8 * width_bytes, height), 1)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8).reshape(height, width_bytes), axis=1).astype(bool)
    white = ~bits if one_is_black else bits
    return Image.fromarray(white)


def raster(image: Image.Image, *, band_rows: int = 960) -> bytes:
    """``GS v 0`` blocks printing the 1-bit ``image`` at normal size, cut into bands of at most
    ``band_rows`` rows (printers have a limited receive buffer; python-escpos uses 960). Black pixels
    print. A width that is not a multiple of 8 is padded with white on the right."""
    if band_rows < 1:
        raise ValueError("band_rows must be at least 1")
    width_bytes, data = pack_rows(image, one_is_black=True)
    if width_bytes > 0xFFFF or image.height == 0:
        raise ValueError(f"cannot print a {image.width} x {image.height} raster")
    out = bytearray()
    for top in range(0, image.height, band_rows):
        rows = min(band_rows, image.height - top)
        out += bytes((GS, 0x76, 0x30, 0)) + width_bytes.to_bytes(2, "little") + rows.to_bytes(2, "little")
        out += data[top * width_bytes:(top + rows) * width_bytes]
    return bytes(out)


# -- real-time status --------------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterState:
    """``DLE EOT 1``."""

    offline: bool = False
    drawer_pin_high: bool = False
    waiting_for_recovery: bool = False  # some models
    feed_button: bool = False  # some models


@dataclass(frozen=True)
class OfflineCause:
    """``DLE EOT 2``: why the printer is offline."""

    cover_open: bool = False
    feeding_by_button: bool = False
    paper_end_stop: bool = False  # printing stopped because the paper ran out
    error: bool = False


@dataclass(frozen=True)
class ErrorCause:
    """``DLE EOT 3``."""

    recoverable_error: bool = False  # bit 2: model-specific
    cutter_error: bool = False
    unrecoverable_error: bool = False
    auto_recoverable_error: bool = False  # e.g. print head over temperature


@dataclass(frozen=True)
class PaperSensor:
    """``DLE EOT 4``: the roll sensors."""

    near_end: bool = False
    paper_end: bool = False


StatusByte = PrinterState | OfflineCause | ErrorCause | PaperSensor

_STATUS_BITS: dict[int, tuple[type, tuple[tuple[str, int], ...]]] = {
    1: (PrinterState, (("drawer_pin_high", 0x04), ("offline", 0x08), ("waiting_for_recovery", 0x20),
                       ("feed_button", 0x40))),
    2: (OfflineCause, (("cover_open", 0x04), ("feeding_by_button", 0x08), ("paper_end_stop", 0x20),
                       ("error", 0x40))),
    3: (ErrorCause, (("recoverable_error", 0x04), ("cutter_error", 0x08), ("unrecoverable_error", 0x20),
                     ("auto_recoverable_error", 0x40))),
    4: (PaperSensor, (("near_end", 0x0C), ("paper_end", 0x60))),
}


class StatusByteError(ValueError):
    """A byte that cannot be a ``DLE EOT`` answer (fixed bits wrong): garbage or a stale reply."""


def is_status_byte(value: int) -> bool:
    return value & STATUS_FIXED_MASK == STATUS_FIXED_VALUE


def decode_status(n: int, value: int) -> StatusByte:
    """The answer ``value`` to ``DLE EOT n`` as named flags. Raises :class:`StatusByteError` when
    the fixed bits are wrong. For n = 4 either bit of a sensor pair counts."""
    if n not in _STATUS_BITS:
        raise ValueError(f"DLE EOT takes n = 1..4, not {n}")
    if not 0 <= value <= 0xFF or not is_status_byte(value):
        raise StatusByteError(f"0x{value:02X} is not a DLE EOT {n} status byte")
    cls, bits = _STATUS_BITS[n]
    return cls(**{name: bool(value & mask) for name, mask in bits})


def encode_status(flags: StatusByte) -> int:
    """The byte a printer sends for ``flags`` (what the simulator answers)."""
    for cls, bits in _STATUS_BITS.values():
        if isinstance(flags, cls):
            value = STATUS_FIXED_VALUE
            for name, mask in bits:
                if getattr(flags, name):
                    value |= mask
            return value
    raise TypeError(f"not a status: {flags!r}")


def status_number(flags: StatusByte) -> int:
    """The ``n`` of ``DLE EOT n`` that ``flags`` answers."""
    for n, (cls, _) in _STATUS_BITS.items():
        if isinstance(flags, cls):
            return n
    raise TypeError(f"not a status: {flags!r}")


# -- decoder (the printer's side) --------------------------------------------------------------


class Op(enum.Enum):
    TEXT = "text"  # data: the bytes as sent (ASCII, or code-page bytes in Chinese mode)
    LINE_FEED = "line feed"
    CARRIAGE_RETURN = "carriage return"
    INIT = "init"
    FEED = "feed"  # args: (lines,)
    CUT = "cut"  # args: (m,) or (m, n); partial when m is odd
    RASTER = "raster"  # args: (m, width_bytes, height); data: the rows
    CHINESE_ON = "chinese on"
    CHINESE_OFF = "chinese off"
    STATUS_REQUEST = "status request"  # args: (n,)
    ALIGN = "align"  # args: (n,)
    EMPHASIS = "emphasis"  # args: (n,)
    BARCODE = "barcode"  # args: (m,); data: the content
    BLOCK = "block"  # GS ( x / GS 8 L blocks (QR, graphics); args: (function letter,); data: the block
    BIT_IMAGE = "bit image"  # ESC * (column format); args: (m,)
    SETTING = "setting"  # any other known command (font, spacing, code page, barcode height...)
    OTHER = "other"  # an unknown command, or a byte that is none


@dataclass(frozen=True)
class Command:
    """One decoded command. ``raw`` is every byte it took from the stream."""

    op: Op
    raw: bytes
    args: tuple[int, ...] = ()
    data: bytes = b""

    @property
    def partial_cut(self) -> bool:
        return self.op is Op.CUT and self.args[0] % 2 == 1

    def image(self) -> Image.Image:
        """A ``RASTER`` command's dots as a mode "1" image (``8 * width_bytes`` wide)."""
        if self.op is not Op.RASTER:
            raise ValueError(f"{self.op.value} has no image")
        _, width_bytes, height = self.args
        return unpack_rows(width_bytes, height, self.data, one_is_black=True)

    def __repr__(self) -> str:  # text may be a name or an address: show sizes, not content
        return f"Command({self.op.name}, args={self.args}, {len(self.raw)} bytes)"


# Parameter bytes of fixed-length commands after ESC x / GS x / FS x / DLE x.
_ESC_FIXED = {
    0x21: 1, 0x24: 2, 0x2D: 1, 0x32: 0, 0x33: 1, 0x3C: 0, 0x3D: 1, 0x40: 0, 0x42: 2, 0x44: None, 0x45: 1, 0x47: 1,
    0x4A: 1, 0x4C: 0, 0x4D: 1, 0x52: 1, 0x53: 0, 0x54: 1, 0x55: 1, 0x56: 1, 0x5C: 2, 0x61: 1, 0x63: 2,
    0x64: 1, 0x65: 1, 0x69: 0, 0x6D: 0, 0x70: 3, 0x72: 1, 0x74: 1, 0x7B: 1, 0x20: 1, 0x25: 1, 0x3F: 1,
}
_GS_FIXED = {
    0x21: 1, 0x24: 2, 0x2F: 1, 0x3A: 0, 0x42: 1, 0x48: 1, 0x49: 1, 0x4C: 2, 0x50: 2, 0x54: 1, 0x57: 2,
    0x5C: 2, 0x61: 1, 0x62: 1, 0x66: 1, 0x68: 1, 0x72: 1, 0x77: 1,
}
_FS_FIXED = {0x26: 0, 0x2E: 0, 0x21: 1, 0x2D: 1, 0x43: 1, 0x53: 2, 0x57: 1, 0x70: 2, 0x3F: 2}
_DLE_FIXED = {0x04: 1, 0x05: 1, 0x14: 3}

_SIMPLE_OPS = {
    (ESC, 0x40): Op.INIT, (ESC, 0x64): Op.FEED, (ESC, 0x61): Op.ALIGN, (ESC, 0x45): Op.EMPHASIS,
    (FS, 0x26): Op.CHINESE_ON, (FS, 0x2E): Op.CHINESE_OFF, (DLE, 0x04): Op.STATUS_REQUEST,
}


def decode(buf: bytes | bytearray) -> tuple[int, Command | None]:
    """Take one command off the front of ``buf``: ``(consumed, command)``, or ``(0, None)`` when
    more bytes are needed. Never raises; unknown bytes come back as ``Op.OTHER``."""
    if not buf:
        return 0, None
    first = buf[0]
    if first >= 0x20:
        return _text(buf)
    if first == LF:
        return 1, Command(Op.LINE_FEED, b"\n")
    if first == 0x0D:
        return 1, Command(Op.CARRIAGE_RETURN, b"\r")
    if first not in (ESC, GS, FS, DLE):
        return 1, Command(Op.OTHER, bytes(buf[:1]))
    if len(buf) < 2:
        return 0, None
    second = buf[1]
    if first == GS and second == 0x76:
        return _raster(buf)
    if first == GS and second == 0x56:
        return _cut(buf)
    if first == GS and second == 0x28:
        return _block(buf, header=5, length_at=3, length_bytes=2)
    if first == GS and second == 0x38:
        return _block(buf, header=7, length_at=3, length_bytes=4)
    if first == GS and second == 0x6B:
        return _barcode(buf)
    if first == ESC and second == 0x2A:
        return _bit_image(buf)
    table = {ESC: _ESC_FIXED, GS: _GS_FIXED, FS: _FS_FIXED, DLE: _DLE_FIXED}[first]
    if second not in table:
        return 2, Command(Op.OTHER, bytes(buf[:2]))
    nparams = table[second]
    if nparams is None:  # ESC D: tab stops, NUL-terminated (at most 32)
        end = buf.find(b"\x00", 2, 35)
        if end < 0:
            return (0, None) if len(buf) < 35 else (2, Command(Op.OTHER, bytes(buf[:2])))
        return end + 1, Command(Op.SETTING, bytes(buf[:end + 1]))
    size = 2 + nparams
    if len(buf) < size:
        return 0, None
    raw = bytes(buf[:size])
    return size, Command(_SIMPLE_OPS.get((first, second), Op.SETTING), raw, tuple(raw[2:]))


def _text(buf: bytes | bytearray) -> tuple[int, Command | None]:
    end = 0
    limit = min(len(buf), MAX_TEXT)
    while end < limit and buf[end] >= 0x20:
        end += 1
    if end == len(buf) or buf[end] >= 0x20:  # no control byte yet
        if end < MAX_TEXT:
            return 0, None
        end = _whole_characters(buf, end)  # a long run: return it, but never half a character
    data = bytes(buf[:end])
    return end, Command(Op.TEXT, data, data=data)


def _whole_characters(buf: bytes | bytearray, end: int) -> int:
    """The longest prefix of ``buf[:end]`` that ends on a GB18030 character boundary."""
    i = last = 0
    while i < end:
        b = buf[i]
        if b < 0x80 or b == 0x80 or b == 0xFF:
            step = 1
        elif i + 1 < end and 0x30 <= buf[i + 1] <= 0x39:
            step = 4
        else:
            step = 2
        if i + step > end:
            break
        i += step
        last = i
    return last


def _raster(buf: bytes | bytearray) -> tuple[int, Command | None]:
    if len(buf) < 8:
        return 0, None
    if buf[2] not in (0x00, 0x30):  # GS v 0 is the only raster command; anything else is unknown
        return 2, Command(Op.OTHER, bytes(buf[:2]))
    mode = buf[3]
    width_bytes = buf[4] | buf[5] << 8
    height = buf[6] | buf[7] << 8
    size = width_bytes * height
    if size > MAX_BLOCK:
        return 8, Command(Op.OTHER, bytes(buf[:8]))
    if len(buf) < 8 + size:
        return 0, None
    return 8 + size, Command(Op.RASTER, bytes(buf[:8 + size]), (mode, width_bytes, height), bytes(buf[8:8 + size]))


def _cut(buf: bytes | bytearray) -> tuple[int, Command | None]:
    if len(buf) < 3:
        return 0, None
    m = buf[2]
    size = 3 if m in (0, 1, 0x30, 0x31) else 4
    if len(buf) < size:
        return 0, None
    raw = bytes(buf[:size])
    return size, Command(Op.CUT, raw, tuple(raw[2:]))


def _block(buf: bytes | bytearray, *, header: int, length_at: int, length_bytes: int) -> tuple[int, Command | None]:
    if len(buf) < header:
        return 0, None
    length = int.from_bytes(buf[length_at:length_at + length_bytes], "little")
    if length > MAX_BLOCK:
        return header, Command(Op.OTHER, bytes(buf[:header]))
    size = length_at + length_bytes + length
    if len(buf) < size:
        return 0, None
    raw = bytes(buf[:size])
    return size, Command(Op.BLOCK, raw, (buf[2],), raw[length_at + length_bytes:])


def _barcode(buf: bytes | bytearray) -> tuple[int, Command | None]:
    if len(buf) < 3:
        return 0, None
    m = buf[2]
    if m <= 6:  # NUL-terminated data
        end = buf.find(b"\x00", 3, 3 + 256)
        if end < 0:
            return (0, None) if len(buf) < 3 + 256 else (3, Command(Op.OTHER, bytes(buf[:3])))
        return end + 1, Command(Op.BARCODE, bytes(buf[:end + 1]), (m,), bytes(buf[3:end]))
    if len(buf) < 4:
        return 0, None
    size = 4 + buf[3]
    if len(buf) < size:
        return 0, None
    return size, Command(Op.BARCODE, bytes(buf[:size]), (m,), bytes(buf[4:size]))


def _bit_image(buf: bytes | bytearray) -> tuple[int, Command | None]:
    """``ESC * m nL nH d1..dk``: column-format bit image, k = n (8-dot modes) or 3n (24-dot modes)."""
    if len(buf) < 5:
        return 0, None
    columns = buf[3] | buf[4] << 8
    size = 5 + columns * (3 if buf[2] in (32, 33) else 1)
    if len(buf) < size:
        return 0, None
    return size, Command(Op.BIT_IMAGE, bytes(buf[:size]), (buf[2],))
