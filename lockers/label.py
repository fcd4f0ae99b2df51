"""The waybill label and the posting receipt of a parcel posted at the kiosk, as 1-bit images.

One rendering path (kiosk-ux-and-stack.md §10.4): each document is drawn once with Pillow as a mode
"1" image at the printer's dpi, and that one image is the on-screen preview (:func:`label_png`), the
golden test file and the print job (TSPL ``BITMAP`` on the label printer, ESC/POS raster on the
receipt printer). Raster avoids every code-page and built-in-font difference between printer models.

The label is the single-part 76 x 130 mm waybill of GB/T 41833-2022, its zones top to bottom in the
order of the ZTO 76 x 130 template (§10.3):

=========================  ======================================================================
header                     service type (inverted box), station and time; the sort code (大头笔)
                           large and bold
码号区 code                 Code 128 of the waybill number (module >= 0.25 mm, quiet zone >= 10
                           modules) and the number in figures
目的地信息区 destination     sort code and origin station
收件人信息区 recipient       收: masked name and phone, full address (the courier needs it)
寄件人信息区 sender          寄: masked name and phone, address
内件信息区 contents          品名, quantity, weight, price
bottom                     QR code for tracking; "已实名" stamp; 签收区 signature and time
=========================  ======================================================================

Personal data (rules R10, R14): names print as first character + ``*`` (``张*``), phones as
``138****5678`` (landlines keep the area code's first 3 and last 4 digits), and **there is no ID
number field at all**. :class:`LabelData` also refuses any other field that holds a full mobile
number or a resident ID number, so none can reach paper through an address or a note.
:func:`label_texts` lists every string the label carries, for tests.

The "已验视 已实名" stamp of carrier waybills means the item was inspected *and* the sender's identity
checked. At a self-service kiosk the inspection (收寄验视) happens when staff collect the parcel, after
the label is printed, so the kiosk prints "已实名" alone (when the identity was checked) and staff add
"已验视" at collection.

Font: WenQuanYi Micro Hei (Debian package ``fonts-wqy-microhei``), which has Latin digits; Droid Sans
Fallback does not and prints numbers as tofu (§10.4). Text is drawn without anti-aliasing, so the
image has no grey to threshold and the codes stay crisp. The pixels depend on the Pillow/FreeType
build and the font file: golden images are regenerated when those change.

The printed words are Chinese by the standard; this module returns images and data, nothing for
the kiosk's screens to translate.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hal.codes import resident_id_check_char
from hal.idcard import mask_address, mask_name
from lockers.errors import CustodyError, InvalidInput
from lockers.personal import mask_phone, normalize_phone

#: where Debian's fonts-wqy-microhei puts the font; face 0 is the proportional "Micro Hei"
FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT_PACKAGE = "fonts-wqy-microhei"

LABEL_SIZE_MM = (76.0, 130.0)
MIN_MODULE_MM = 0.25  # Code 128 narrowest bar (§10.4)
QUIET_MODULES = 10  # Code 128 quiet zone on each side, in modules
QR_MODULE_MM = 0.5  # 4 dots at 203 dpi: scans from a phone held at arm's length
QR_QUIET_MODULES = 4

_WAYBILL = re.compile(r"[A-Z0-9]{6,32}")
_MOBILE_IN_TEXT = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{17})([\dXx])(?![0-9A-Za-z])")
_DIGIT_GAP = re.compile(r"(?<=\d)[\s\-.]+(?=\d)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LabelFontMissing(CustodyError, FileNotFoundError):
    """The CJK font labels are drawn with is not installed: a deployment error."""

    code = "label_font_missing"


class LabelDoesNotFit(InvalidInput):
    """A field is too long for its zone even at the smallest legible size; ``field`` names it."""

    code = "label_does_not_fit"


# -- the data ----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class LabelData:
    """What a posting label and receipt show. Build it once the posting is paid for.

    ``waybill``: the item number the Code 128 carries (UPU S10 such as ``CP123456785CN``, or a
    carrier's number), capitals and digits. ``sort_code``: the carrier's destination short text
    (大头笔, e.g. "浙江 杭州 西湖"). ``contents``: the category title. ``weight_g`` in grams,
    ``price_fen`` in fen. ``tracking_url``: the QR code's content. ``real_name_checked``: the
    sender's identity was verified (prints "已实名"). ``dispatch_text``: the receipt's line on when the
    parcel leaves (e.g. "今日 17:00 前揽收"); not on the label.

    Names, phones and addresses are personal data: the repr masks them, and error messages name
    the field, never its value.
    """

    waybill: str
    service: str
    sort_code: str
    recipient_name: str
    recipient_phone: str
    recipient_address: str
    sender_name: str
    sender_phone: str
    sender_address: str
    contents: str
    quantity: int
    weight_g: int
    price_fen: int
    posted_at: datetime
    tracking_url: str
    real_name_checked: bool
    station: str
    dispatch_text: str = ""
    #: the receipt's payment line (e.g. "微信支付 尾号6789 单号 PK01_20261206_00000012"); no full code
    payment_text: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.waybill, str) or not _WAYBILL.fullmatch(self.waybill):
            raise InvalidInput("waybill", "a waybill number has 6 to 32 capital letters and digits")
        limits = {"service": 8, "sort_code": 20, "recipient_name": 30, "sender_name": 30, "recipient_address": 120,
                  "sender_address": 120, "contents": 24, "tracking_url": 200, "station": 30, "dispatch_text": 120,
                  "payment_text": 80}
        for name, limit in limits.items():
            value = getattr(self, name)
            if not isinstance(value, str) or _CONTROL.search(value):
                raise InvalidInput(name, f"{name} must be one line of text")
            if not value.strip() and name not in ("dispatch_text", "payment_text"):
                raise InvalidInput(name, f"{name} is empty")
            if len(value) > limit:
                raise InvalidInput(name, f"{name} is longer than {limit} characters")
            if _holds_phone_or_id(value):
                raise InvalidInput(name, f"{name} must not hold a phone or resident ID number (rules R10, R14)")
        for name in ("recipient_phone", "sender_phone"):
            value = getattr(self, name)
            digits = re.sub(r"\D", "", value) if isinstance(value, str) else ""
            if not isinstance(value, str) or not re.fullmatch(r"\+?[\d\s\-()]+", value) or not 7 <= len(digits) <= 15:
                raise InvalidInput(name, f"{name} is not a phone number (7 to 15 digits)")
        for name, low in (("quantity", 1), ("weight_g", 1), ("price_fen", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInput(name, f"{name} must be a whole number of at least {low}")
        if not isinstance(self.posted_at, datetime):
            raise InvalidInput("posted_at", "posted_at must be a datetime")

    def __repr__(self) -> str:
        masked = {"recipient_name": mask_name(self.recipient_name), "sender_name": mask_name(self.sender_name),
                  "recipient_phone": mask_any_phone(self.recipient_phone),
                  "sender_phone": mask_any_phone(self.sender_phone),
                  "recipient_address": mask_address(self.recipient_address),
                  "sender_address": mask_address(self.sender_address)}
        shown = ", ".join(f"{f.name}={masked.get(f.name, getattr(self, f.name))!r}" for f in fields(self))
        return f"LabelData({shown})"


def mask_any_phone(phone: str) -> str:
    """A phone as printed (rule R10): a mobile as ``138****5678`` (lockers.personal.mask_phone); a
    landline with its area code likewise (``0571-87654321`` -> ``057****4321``); a shorter local
    number keeps its last 4 digits only, so at least 4 are always hidden."""
    try:
        return mask_phone(normalize_phone(phone))
    except InvalidInput:
        pass
    digits = re.sub(r"\D", "", phone)
    if len(digits) >= 11:
        return mask_phone(digits)
    if len(digits) >= 8:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "*" * len(digits)


def _holds_phone_or_id(text: str) -> bool:
    """True when ``text`` holds a full mainland mobile number (spaces or dashes between digits
    allowed) or a resident ID number with a valid check character."""
    joined = _DIGIT_GAP.sub("", text)
    if _MOBILE_IN_TEXT.search(joined):
        return True
    return any(resident_id_check_char(m.group(1)) == m.group(2).upper() for m in _ID_IN_TEXT.finditer(joined))


def _weight(grams: int) -> str:
    return f"{grams} g" if grams < 1000 else f"{grams / 1000:.3f}".rstrip("0").rstrip(".") + " kg"


def _price(fen: int) -> str:
    return f"¥{fen // 100}.{fen % 100:02d}"


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


# -- fonts and codes ---------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(str(FONT_PATH), size, index=0)
    except OSError as err:
        raise LabelFontMissing(f"the label font {FONT_PATH} cannot be loaded ({err}); install the Debian package "
                               f"{FONT_PACKAGE} (apt-get install {FONT_PACKAGE})") from err


def _stroke(size: int, bold: bool) -> int:
    """A faux bold: Micro Hei has no bold face, so bold text gets an outline of 1 dot per 32 dots
    of size (at least 1)."""
    return max(1, round(size / 32)) if bold else 0


def _text_width(text: str, size: int, bold: bool) -> int:
    return math.ceil(_font(size).getlength(text)) + 2 * _stroke(size, bold)


def _code128_modules(content: str) -> np.ndarray:
    """The bars of a Code 128 as one row of booleans (True = black), one per module, no quiet zone."""
    import zxingcpp

    symbol = zxingcpp.create_barcode(content, zxingcpp.BarcodeFormat.Code128)
    row = np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=1, add_quiet_zones=False))[0]
    return row < 128


def _qr_modules(content: str) -> np.ndarray:
    """The modules of a QR code (ECC level M) as a square of booleans (True = black), no quiet zone."""
    import zxingcpp

    symbol = zxingcpp.create_barcode(content, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    return np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=1, add_quiet_zones=False)) < 128


# -- layout: a list of drawing operations ------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    x: int
    y: int
    text: str
    size: int
    bold: bool = False
    white: bool = False  # white on black (inside a filled box)


@dataclass(frozen=True)
class _Box:
    x0: int
    y0: int
    x1: int
    y1: int  # inclusive corners
    filled: bool = False
    line: int = 1


@dataclass(frozen=True, eq=False)
class _Code:
    x: int
    y: int
    content: str
    black: np.ndarray = field(repr=False)  # already scaled to dots


_Op = _Text | _Box | _Code


class _Sheet:
    """Places text, boxes and codes in dots, from positions in millimetres at ``dpi``."""

    def __init__(self, width: int, height: int, dpi: int) -> None:
        self.width, self.height, self.dpi = width, height, dpi
        self.ops: list[_Op] = []

    def d(self, mm: float) -> int:
        return round(mm * self.dpi / 25.4)

    def text(self, x: int, y: int, text: str, size: int, *, bold: bool = False, white: bool = False) -> int:
        """Draw one line with its top at ``y``; returns its width in dots."""
        self.ops.append(_Text(x, y, text, size, bold, white))
        return _text_width(text, size, bold)

    def fit(self, text: str, max_width: int, size_mm: float, min_mm: float, *, bold: bool = False,
            field_name: str) -> int:
        """The largest size (dots) from ``size_mm`` down to ``min_mm`` at which ``text`` fits on one line."""
        for size in range(self.d(size_mm), self.d(min_mm) - 1, -1):
            if _text_width(text, size, bold) <= max_width:
                return size
        raise LabelDoesNotFit(field_name, f"{field_name} does not fit its zone on one line")

    def wrapped(self, x: int, y: int, text: str, max_width: int, max_lines: int, size_mm: float, min_mm: float,
                *, field_name: str, bold: bool = False, bottom: int | None = None) -> int:
        """Wrap ``text`` into at most ``max_lines`` lines (and above ``bottom``, when given), as large
        as fits: a smaller size may fit more lines. Returns the y below the last line."""
        for size in range(self.d(size_mm), self.d(min_mm) - 1, -1):
            pitch = round(size * 1.2)
            room = max_lines if bottom is None else min(max_lines, (bottom - y - (pitch - size)) // pitch)
            lines = _wrap(text, size, max_width, bold)
            if len(lines) <= room:
                for i, line in enumerate(lines):
                    self.text(x, y + i * pitch, line, size, bold=bold)
                return y + len(lines) * pitch
        raise LabelDoesNotFit(field_name, f"{field_name} does not fit its zone")

    def box(self, x0: int, y0: int, x1: int, y1: int, *, filled: bool = False, line: int = 1) -> None:
        self.ops.append(_Box(x0, y0, x1, y1, filled, line))

    def hrule(self, y: int) -> None:
        self.box(0, y, self.width - 1, y + self.d(0.25) - 1, filled=True)

    def code128(self, y: int, content: str, height: int) -> tuple[int, int]:
        """A Code 128 centred across the width, bars as wide as the width allows (at least 0.25 mm,
        at most twice that), quiet zones included. Returns (module dots, width of the bars)."""
        modules = _code128_modules(content)
        smallest = math.ceil(MIN_MODULE_MM * self.dpi / 25.4 - 1e-9)
        module = self.width // (len(modules) + 2 * QUIET_MODULES)
        if module < smallest:
            raise LabelDoesNotFit("waybill", "the waybill number is too long for a Code 128 across the label")
        module = min(module, 2 * smallest)
        bars = np.repeat(np.tile(modules, (height, 1)), module, axis=1)
        x = (self.width - bars.shape[1]) // 2
        self.ops.append(_Code(x, y, content, bars))
        return module, bars.shape[1]

    def qr(self, x: int, y: int, content: str, max_size: int) -> int:
        """A QR code whose quiet zone (4 modules) starts at (x, y), with modules from twice
        :data:`QR_MODULE_MM` down, as large as fits ``max_size`` dots quiet zone included. Returns
        the size in dots, quiet zone included."""
        modules = _qr_modules(content)
        span = len(modules) + 2 * QR_QUIET_MODULES
        module = min(2 * self.d(QR_MODULE_MM), max_size // span)
        if module < 2:
            raise LabelDoesNotFit("tracking_url", "the tracking link is too long for the QR code's zone")
        black = np.repeat(np.repeat(modules, module, axis=0), module, axis=1)
        quiet = QR_QUIET_MODULES * module
        self.ops.append(_Code(x + quiet, y + quiet, content, black))
        return span * module

    # -- output --------------------------------------------------------------------------------

    def texts(self) -> list[str]:
        return [op.text if isinstance(op, _Text) else op.content for op in self.ops
                if isinstance(op, (_Text, _Code))]

    def image(self, height: int | None = None) -> Image.Image:
        image = Image.new("1", (self.width, height or self.height), 1)
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no anti-aliasing: no grey in a 1-bit image
        for op in self.ops:
            if isinstance(op, _Box):
                if op.filled:
                    draw.rectangle((op.x0, op.y0, op.x1, op.y1), fill=0)
                else:
                    draw.rectangle((op.x0, op.y0, op.x1, op.y1), outline=0, width=op.line)
            elif isinstance(op, _Text):
                stroke = _stroke(op.size, op.bold)
                colour = 1 if op.white else 0
                draw.text((op.x + stroke, op.y + stroke), op.text, font=_font(op.size), fill=colour, anchor="la",
                          stroke_width=stroke, stroke_fill=colour)
        pixels = np.asarray(image, dtype=bool).copy()
        for op in self.ops:
            if isinstance(op, _Code):
                h, w = op.black.shape
                pixels[op.y:op.y + h, op.x:op.x + w] = ~op.black
        return Image.fromarray(pixels)


def _wrap(text: str, size: int, max_width: int, bold: bool) -> list[str]:
    """Lines of ``text`` no wider than ``max_width``: Chinese breaks between any two characters,
    a run of Latin letters and digits (a house number, a phone) is kept whole when it can be."""
    tokens = re.findall(r"[A-Za-z0-9#\-./]+|\s+|.", text.strip())
    lines: list[str] = []
    line = ""
    for token in tokens:
        candidate = line + token
        if _text_width(candidate.rstrip(), size, bold) <= max_width:
            line = candidate
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = token.lstrip()
        while line and _text_width(line, size, bold) > max_width:  # a token longer than a line
            cut = 1
            while cut < len(line) and _text_width(line[:cut + 1], size, bold) <= max_width:
                cut += 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines


# -- the label ---------------------------------------------------------------------------------


def label_size(dpi: int = 203) -> tuple[int, int]:
    """The label's size in dots: 607 x 1039 at 203 dpi."""
    return tuple(round(mm * dpi / 25.4) for mm in LABEL_SIZE_MM)  # type: ignore[return-value]


def _label_sheet(data: LabelData, dpi: int) -> _Sheet:
    if not isinstance(dpi, int) or not 150 <= dpi <= 600:
        raise ValueError(f"dpi must be a whole number from 150 to 600, not {dpi!r}")
    width, height = label_size(dpi)
    s = _Sheet(width, height, dpi)
    d = s.d
    margin = d(2)
    inner = width - 2 * margin

    # header: service in an inverted box, station and time; then the sort code, large and bold
    size = s.fit(data.service, d(22), 4.5, 3, bold=True, field_name="service")
    service_w = _text_width(data.service, size, True) + 2 * d(1.5)
    s.box(margin, d(1), margin + service_w, d(7.5), filled=True)
    s.text(margin + d(1.5), d(1) + (d(6.5) - size) // 2, data.service, size, bold=True, white=True)
    for i, line in enumerate((data.station, _when(data.posted_at))):
        size = s.fit(line, inner - service_w - d(2), 2.6, 2.0, field_name="station")
        s.text(width - margin - _text_width(line, size, False), d(1) + i * d(3.4), line, size)
    size = s.fit(data.sort_code, inner, 9, 4, bold=True, field_name="sort_code")
    s.text((width - _text_width(data.sort_code, size, True)) // 2, d(8.5) + (d(9) - size) // 2, data.sort_code,
           size, bold=True)
    s.hrule(d(18))

    # 码号区: Code 128 and the number in figures
    s.code128(d(19.5), data.waybill, d(14))
    size = d(3.5)
    s.text((width - _text_width(data.waybill, size, True)) // 2, d(34), data.waybill, size, bold=True)
    s.hrule(d(39))

    # 目的地信息区
    caption = d(3)
    s.text(margin, d(41.5), "目的地", caption)
    x = margin + _text_width("目的地", caption, False) + d(2)
    size = s.fit(data.sort_code, width - margin - x, 5, 3, bold=True, field_name="sort_code")
    s.text(x, d(40) + (d(7) - size) // 2, data.sort_code, size, bold=True)
    s.hrule(d(47))

    # 收件人 and 寄件人 blocks: a boxed 收 / 寄, masked name and phone, the address
    _person_block(s, "收", d(47.25), d(74), data.recipient_name, data.recipient_phone, data.recipient_address,
                  "recipient", name_mm=4.2, address_mm=3.6, address_lines=5)
    s.hrule(d(74))
    _person_block(s, "寄", d(74.25), d(92), data.sender_name, data.sender_phone, data.sender_address, "sender",
                  name_mm=3.4, address_mm=3.0, address_lines=4)
    s.hrule(d(92))

    # 内件信息区
    size = d(3.2)
    line = f"品名：{data.contents}  数量：{data.quantity}"
    s.text(margin, d(93.5), line, s.fit(line, inner, 3.2, 2.4, field_name="contents"))
    s.text(margin, d(93.5) + round(size * 1.3), f"重量：{_weight(data.weight_g)}  运费：{_price(data.price_fen)}", size)
    s.hrule(d(104))

    # bottom: QR code (with its quiet zone inside the zone), the stamp, the signature area
    top = d(104.25)
    room = height - top
    x = s.qr(0, top + d(0.5), data.tracking_url, room - d(1)) + d(1)
    if data.real_name_checked:
        stamp = d(4)
        stamp_w = _text_width("已实名", stamp, True) + 2 * d(1.5)
        s.box(width - margin - stamp_w, top + d(2), width - margin, top + d(2) + stamp + 2 * d(1.2), line=d(0.4))
        s.text(width - margin - stamp_w + d(1.5), top + d(2) + d(1.2), "已实名", stamp, bold=True)
    size = d(3)
    s.text(x, top + d(2.5), "签收区", size, bold=True)
    line_x = x + _text_width("签收人：", size, False)
    for i, caption in enumerate(("签收人：", "时间：")):
        y = top + d(11) + i * d(7)
        s.text(x, y, caption, size)
        s.box(line_x, y + size, width - margin, y + size, filled=True)
    return s


def _person_block(s: _Sheet, mark: str, top: int, bottom: int, name: str, phone: str, address: str, who: str,
                  *, name_mm: float, address_mm: float, address_lines: int) -> None:
    d = s.d
    margin = d(2)
    column = d(9)
    mark_size = d(5.5)
    s.box(margin, top + d(1.5), margin + column - d(1.5), top + d(1.5) + column - d(1.5), line=d(0.4))
    s.text(margin + (column - d(1.5) - mark_size) // 2, top + d(1.5) + (column - d(1.5) - mark_size) // 2, mark,
           mark_size, bold=True)
    x = margin + column + d(1)
    room = s.width - margin - x
    first = f"{mask_name(name)}  {mask_any_phone(phone)}"
    size = s.fit(first, room, name_mm, 2.5, bold=True, field_name=f"{who}_name")
    s.text(x, top + d(1.5), first, size, bold=True)
    y = top + d(1.5) + round(size * 1.35)
    s.wrapped(x, y, address, room, address_lines, address_mm, 2.5, field_name=f"{who}_address", bottom=bottom - d(1))


def render_label(data: LabelData, *, dpi: int = 203) -> Image.Image:
    """The 76 x 130 mm waybill label as a mode "1" image at ``dpi`` (607 x 1039 at 203 dpi).

    Raises :class:`LabelDoesNotFit` when a field cannot fit its zone at a legible size,
    :class:`LabelFontMissing` when the font is not installed, ValueError for a dpi out of range."""
    return _label_sheet(data, dpi).image()


def label_texts(data: LabelData, *, dpi: int = 203) -> list[str]:
    """Every string the label carries, top to bottom: each line of text drawn, and the content of
    the Code 128 and of the QR code. For tests that no unmasked personal data reaches paper."""
    return _label_sheet(data, dpi).texts()


# -- the receipt -------------------------------------------------------------------------------


def _receipt_sheet(data: LabelData, width_dots: int, dpi: int) -> tuple[_Sheet, int]:
    if not isinstance(width_dots, int) or not 256 <= width_dots <= 1200:
        raise ValueError(f"width_dots must be a whole number from 256 to 1200, not {width_dots!r}")
    s = _Sheet(width_dots, 0, dpi)
    d = s.d
    margin = d(1)
    inner = width_dots - 2 * margin
    y = d(1)

    def centred(text: str, size_mm: float, *, bold: bool = False, field_name: str = "station") -> None:
        nonlocal y
        size = s.fit(text, inner, size_mm, 2.5, bold=bold, field_name=field_name)
        s.text((width_dots - _text_width(text, size, bold)) // 2, y, text, size, bold=bold)
        y += round(size * 1.4)

    def row(caption: str, value: str, field_name: str, *, size_mm: float = 3.5, bold: bool = False) -> None:
        nonlocal y
        caption_w = max(_text_width(caption, d(size_mm), False), _text_width("寄件人", d(size_mm), False)) + d(2)
        s.text(margin, y, caption, d(size_mm))
        y = s.wrapped(margin + caption_w, y, value, inner - caption_w, 3, size_mm, 2.5, field_name=field_name,
                      bold=bold) + d(1)

    centred(data.station, 5, bold=True)
    centred("寄件凭证", 4, bold=True, field_name="service")
    centred(_when(data.posted_at), 3.5, field_name="posted_at")
    s.hrule(y)
    y += d(2)
    row("运单号", data.waybill, "waybill", bold=True)
    s.code128(y, data.waybill, d(12))
    y += d(12) + d(2)
    row("服务", data.service, "service")
    row("目的地", data.sort_code, "sort_code")
    row("寄件人", f"{mask_name(data.sender_name)}  {mask_any_phone(data.sender_phone)}", "sender_name")
    row("品名", f"{data.contents} ×{data.quantity}", "contents")
    row("重量", _weight(data.weight_g), "weight_g")
    row("运费", _price(data.price_fen), "price_fen", size_mm=5, bold=True)
    if data.payment_text.strip():
        row("支付", data.payment_text, "payment_text")
    if data.real_name_checked:
        row("实名", "已实名", "real_name_checked")
    if data.dispatch_text.strip():
        s.hrule(y)
        y += d(2)
        y = s.wrapped(margin, y, data.dispatch_text, inner, 4, 3.5, 2.5, field_name="dispatch_text") + d(1)
    s.hrule(y)
    y += d(0.5)
    y += s.qr((width_dots - d(30)) // 2, y, data.tracking_url, d(30))
    centred("扫码查询物流，请保留本凭证", 3.2, field_name="tracking_url")
    return s, y + d(2)


def render_receipt(data: LabelData, *, width_dots: int = 576, dpi: int = 203) -> Image.Image:
    """The posting receipt for an 80 mm ESC/POS printer (576 dots at 203 dpi) as a mode "1" image as
    tall as its content: station, time, waybill number and Code 128, service, destination, masked
    sender, contents, weight, price, the dispatch line, and a QR code to keep for tracking."""
    sheet, height = _receipt_sheet(data, width_dots, dpi)
    return sheet.image(height)


def receipt_texts(data: LabelData, *, width_dots: int = 576, dpi: int = 203) -> list[str]:
    """Every string the receipt carries (text lines and code contents), like :func:`label_texts`."""
    return _receipt_sheet(data, width_dots, dpi)[0].texts()


def label_png(image: Image.Image) -> bytes:
    """``image`` as PNG bytes (1-bit, so small: a few KB) for the on-screen preview."""
    if not isinstance(image, Image.Image) or image.mode != "1":
        raise ValueError("label_png takes a 1-bit image (mode '1') from render_label or render_receipt")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()

