"""Reading barcodes and QR codes in camera frames: pure image work, no devices, no clocks.

:class:`CodeDecoder` reads only the symbologies the station uses (QR and Code 128, and those the
configuration adds), so a retail EAN-13 on a parcel is not reported as if it were a waybill. A frame
goes through passes, each tried only when the ones before it read nothing:

1. ``zxing``: zxing-cpp on the grey frame, restricted formats, its own defaults otherwise.
2. the gate: is anything in the frame code-like at all? On the half-size frame, pixels whose
   gradient (|Sobel x| + |Sobel y|) stands above the noise floor (3 x the median gradient, itself
   the noise of a mostly empty frame) are edges; a region where edges make up at least 63 % of a
   9 x 9 window is code-like. Codes are nearly all edges; the empty counter, a straight edge
   (44 % at most) and sensor noise are not. An idle frame costs zxing-cpp plus these few 8-bit
   operations and nothing more. Each region's orientation and coherence (how much its gradients
   agree: bars 0.69-0.92, QR codes under 0.05 as measured) come from the structure tensor of the
   full-resolution region (Scharr), which is accurate to about 0.4 degrees.
3. ``pyzbar``: zbar, restricted to the same symbologies, on each region's crop.
4. ``rotated`` (bar-like regions, when a linear format is configured): the region is cut out of
   the full-resolution frame turned so its bars stand upright, smoothed along the bars (the noise
   goes, the edges stay) and read by zxing-cpp. This is what reads a waybill tilted 30 degrees:
   zxing-cpp and zbar scan rows and columns, and a short wide symbol tilted further than
   atan(height / width) (11 degrees for a waybill's 1:5) has no row crossing all its bars.
5. ``enhanced`` (other regions, when a 2-D format is configured): the crop lightly blurred (noisy
   frames), then the crop turned so its module grid runs along the pixel axes and enlarged 4
   times with Lanczos interpolation (QR modules under 2 pixels: read down to about 1.8).

Every hit is a :class:`Decoded` naming its pass (diagnostics show it). Texts never appear in
reprs: they may be pickup tokens or ID numbers.

    frame --grey--> zxing --read--> [codes]
                      |
                   nothing
                      v
          gate (half size, 8-bit) --no region--> []          (idle frame: nothing more)
                      |
                regions (<= 4)
                      v
          pyzbar (crops) -> rotated (bars) -> enhanced (grids)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import zxingcpp

#: the symbologies every station reads: pickup notices (QR) and waybills (Code 128)
DEFAULT_FORMATS = ("QRCode", "Code128")

#: zxing-cpp format name -> zbar symbol name (formats zbar cannot read are absent: DataMatrix, Aztec)
_ZBAR_SYMBOLS = {
    "QRCode": "QRCODE", "Code128": "CODE128", "EAN13": "EAN13", "EAN8": "EAN8", "UPCA": "UPCA", "UPCE": "UPCE",
    "Code39": "CODE39", "Code93": "CODE93", "ITF": "I25", "Codabar": "CODABAR", "PDF417": "PDF417",
    "DataBar": "DATABAR", "DataBarExpanded": "DATABAR_EXP", "DataBarExp": "DATABAR_EXP",
}
#: zbar type -> (zxing-cpp format name, AIM identifier); zbar reports no AIM modifiers, so the plain
#: one is given (GS1-128 read by zbar shows as ]C0)
_FROM_ZBAR = {
    "QRCODE": ("QRCode", "]Q1"), "CODE128": ("Code128", "]C0"), "EAN13": ("EAN13", "]E0"),
    "EAN8": ("EAN8", "]E4"), "UPCA": ("UPCA", "]E0"), "UPCE": ("UPCE", "]E0"), "CODE39": ("Code39", "]A0"),
    "CODE93": ("Code93", "]G0"), "I25": ("ITF", "]I0"), "CODABAR": ("Codabar", "]F0"),
    "PDF417": ("PDF417", "]L0"), "DATABAR": ("DataBar", "]e0"), "DATABAR_EXP": ("DataBarExpanded", "]e0"),
}

#: the gate's window (half-size pixels) and smallest region (half-size pixels: a 12 x 12 patch)
_WINDOW = 9
_MIN_AREA = 144
#: frames smaller than this (pixels a side) get the plain pass only: nothing smaller holds a code
#: the fallbacks could find
_MIN_SIDE = 32
_CLOSE = cv2.getStructuringElement(cv2.MORPH_RECT, (11, 11))
#: regions whose gradients agree at least this much are bars (measured: bars 0.69-0.92, QR codes
#: 0.00-0.05)
BAR_COHERENCE = 0.4
#: the enhanced pass enlarges a crop up to this many times, and to at most this many pixels a side
_ENLARGE = 4.0
_ENLARGED_MAX = 800

PASSES = ("zxing", "pyzbar", "rotated", "enhanced")


@dataclass(frozen=True)
class Decoded:
    """One code read in a frame. ``format``: zxing-cpp's name ("QRCode", "Code128", "EAN13");
    ``symbology``: the AIM identifier ("]Q1", "]C0"); ``found_by``: the pass that read it (one of
    :data:`PASSES`); ``corners``: the symbol's four corners in frame pixels when known.
    ``error``: None, or "undecodable" when the bytes are not UTF-8 (``text`` then shows escapes)."""

    text: str
    format: str
    symbology: str | None
    found_by: str
    corners: tuple[tuple[float, float], ...] = field(default=(), compare=False)
    error: str | None = None

    def __repr__(self) -> str:  # the text may be a pickup token or an ID number
        return (f"Decoded({len(self.text)} chars, format={self.format!r}, symbology={self.symbology!r}, "
                f"found_by={self.found_by!r})")


@dataclass(frozen=True)
class Region:
    """A code-like part of a frame (full-resolution pixels): ``center``, ``length`` across the bars
    and ``width`` along them, ``angle`` of the gradient (radians; bars run perpendicular to it),
    ``coherence`` 0..1 (1: every gradient points one way, as across bars)."""

    center: tuple[float, float]
    length: float
    width: float
    angle: float
    coherence: float
    box: tuple[int, int, int, int]  # x, y, w, h: axis-aligned bounds


class CodeDecoder:
    """Decodes ``formats`` (zxing-cpp format names: "QRCode", "Code128", "EAN13", "DataMatrix"...) in
    frames; QR and Code 128 unless told otherwise, ``extra`` adds to them (the station's
    configuration). The gate: an edge pixel's gradient is above ``min_edge`` (grey levels) and
    ``noise_factor`` times the frame's median gradient; a code-like region has at least
    ``min_density`` edge pixels around each of its pixels. ``max_regions``: most regions the
    fallbacks look at per frame. ``fallbacks``: the passes after ``zxing``, in order (tests and
    benchmarks turn some off).
    """

    def __init__(self, formats: Sequence[str] = DEFAULT_FORMATS, *, extra: Iterable[str] = (),
                 min_edge: float = 8.0, noise_factor: float = 3.0, min_density: float = 0.63, max_regions: int = 4,
                 fallbacks: Sequence[str] = PASSES[1:]) -> None:
        names = list(dict.fromkeys([*formats, *extra]))
        if not names:
            raise ValueError("no formats to read")
        for name in names:
            fmt = getattr(zxingcpp.BarcodeFormat, name, None)
            if not isinstance(fmt, zxingcpp.BarcodeFormat) or name == "NONE" or name.startswith("All") or \
                    name in ("LinearCodes", "MatrixCodes"):
                raise ValueError(f"unknown barcode format {name!r} (one zxing-cpp name each: QRCode, Code128, "
                                 "EAN13...)")
        unknown = set(fallbacks) - set(PASSES[1:])
        if unknown:
            raise ValueError(f"unknown passes {sorted(unknown)}")
        self.formats = tuple(names)
        self._zx_formats = tuple(getattr(zxingcpp.BarcodeFormat, n) for n in names)
        linear = {f.name for f in zxingcpp.barcode_formats_list(zxingcpp.BarcodeFormat.AllLinear)}
        self._zx_linear = tuple(getattr(zxingcpp.BarcodeFormat, n) for n in names if n in linear)
        self._zx_matrix = tuple(getattr(zxingcpp.BarcodeFormat, n) for n in names if n not in linear)
        self._zbar_symbols = [n for n in dict.fromkeys(_ZBAR_SYMBOLS[n] for n in names if n in _ZBAR_SYMBOLS)]
        self.min_edge = min_edge
        self.min_density = min_density
        self.noise_factor = noise_factor
        self.max_regions = max_regions
        self.fallbacks = tuple(fallbacks)

    # ------------------------------------------------------------------------------------------

    def decode(self, frame: np.ndarray) -> list[Decoded]:
        """Every code of the configured formats found in ``frame`` (BGR, BGRA or grey ``uint8``, rows
        x columns [x channels]), or []. ``ValueError`` for anything else."""
        gray = to_gray(frame)
        if gray.size == 0:
            return []
        found = self._zxing(gray, self._zx_formats, "zxing")
        if found or not self.fallbacks or min(gray.shape) < _MIN_SIDE:
            return found
        regions = self.regions(gray)
        if not regions:
            return []
        for name in self.fallbacks:
            found = getattr(self, f"_pass_{name}")(gray, regions)
            if found:
                return _unique(found)
        return []

    def regions(self, gray: np.ndarray) -> list[Region]:
        """Code-like regions of a grey frame, largest first (at most ``max_regions``); [] fast when
        there is none (the idle-frame path: a handful of 8-bit operations on a half-size frame)."""
        small = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        # |d/dx| + |d/dy| (Sobel, quartered to fit 8 bits)
        grad = cv2.add(cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 1, 0), alpha=0.25),
                       cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 0, 1), alpha=0.25))
        # an edge pixel stands above the noise: most of a frame is background, so the median
        # gradient of a sparse sample is the noise floor
        floor = float(np.median(grad[::4, ::4]))
        _, edges = cv2.threshold(grad, max(self.min_edge, self.noise_factor * floor), 255, cv2.THRESH_BINARY)
        # share of edge pixels around each pixel: a code is nearly all edges, a straight edge or the
        # noise far fewer
        density = cv2.blur(edges, (_WINDOW, _WINDOW))
        level = int(self.min_density * 255)
        if cv2.minMaxLoc(density)[1] <= level:
            return []
        _, mask = cv2.threshold(density, level, 255, cv2.THRESH_BINARY)
        # wide bars and spaces thin the edges out: close the gaps they leave in one symbol
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _CLOSE)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        order = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
        found = []
        for i in order[: self.max_regions]:
            if stats[i, cv2.CC_STAT_AREA] < _MIN_AREA:
                break
            x, y, w, h = (int(v) for v in stats[i, :4])
            box = (2 * x, 2 * y, 2 * w, 2 * h)
            angle, coherence = _orientation(gray, box)
            pts = cv2.findNonZero((labels[y:y + h, x:x + w] == i).astype(np.uint8)).reshape(-1, 2).astype(np.float32)
            pts = (pts + (x + 0.5, y + 0.5)) * 2.0
            u = np.array([math.cos(angle), math.sin(angle)], np.float32)
            v = np.array([-math.sin(angle), math.cos(angle)], np.float32)
            pu, pv = pts @ u, pts @ v
            cu, cv_ = (pu.min() + pu.max()) / 2, (pv.min() + pv.max()) / 2
            center = cu * u + cv_ * v
            found.append(Region(center=(float(center[0]), float(center[1])), length=float(pu.max() - pu.min() + 2),
                                width=float(pv.max() - pv.min() + 2), angle=angle, coherence=coherence, box=box))
        return found

    # passes --------------------------------------------------------------------------------------

    def _zxing(self, gray: np.ndarray, formats: tuple, found_by: str, offset: Any = None,
               **options: Any) -> list[Decoded]:
        if not formats:
            return []
        out = []
        for r in zxingcpp.read_barcodes(gray, formats=formats, **options):
            corners = tuple((float(p.x), float(p.y)) for p in (r.position.top_left, r.position.top_right,
                                                                 r.position.bottom_right, r.position.bottom_left))
            if offset is not None:
                corners = tuple(offset(p) for p in corners)
            out.append(Decoded(r.text, r.format.name, r.symbology_identifier or None, found_by, corners))
        return out

    def _pass_pyzbar(self, gray: np.ndarray, regions: list[Region]) -> list[Decoded]:
        if not self._zbar_symbols:
            return []
        from pyzbar import pyzbar

        symbols = [getattr(pyzbar.ZBarSymbol, s) for s in self._zbar_symbols]
        out = []
        for region in regions:
            x0, y0, crop = _box_crop(gray, region)
            for d in pyzbar.decode(crop, symbols=symbols):
                fmt, aim = _FROM_ZBAR.get(d.type, (d.type, None))
                try:
                    text, error = d.data.decode("utf-8"), None
                except UnicodeDecodeError:
                    text, error = d.data.decode("utf-8", "backslashreplace"), "undecodable"
                corners = tuple((float(px + x0), float(py + y0)) for px, py in d.polygon)
                out.append(Decoded(text, fmt, aim, "pyzbar", corners, error))
        return out

    def _pass_rotated(self, gray: np.ndarray, regions: list[Region]) -> list[Decoded]:
        out: list[Decoded] = []
        if not self._zx_linear:
            return out
        for region in regions:
            if region.coherence < BAR_COHERENCE:
                continue
            # 1:1 first; then twice the size with Lanczos, which keeps modules under 2 pixels apart
            for scale in (1.0, 2.0):
                crop, back = _upright(gray, region, scale)
                # upright bars can be smoothed along their length: the noise goes, the edges stay
                along = int(min(15 * scale, max(3, region.width * scale / 8))) | 1
                found = self._zxing(cv2.blur(crop, (1, along)), self._zx_linear, "rotated", back, try_rotate=False)
                if found:
                    out += found
                    break
        return out

    def _pass_enhanced(self, gray: np.ndarray, regions: list[Region]) -> list[Decoded]:
        out: list[Decoded] = []
        if not self._zx_matrix:
            return out
        for region in regions:
            if region.coherence >= BAR_COHERENCE:
                continue
            x0, y0, crop = _box_crop(gray, region)
            # noise: a light blur (cheap, first)
            found = self._zxing(cv2.GaussianBlur(crop, (0, 0), 0.8), self._zx_matrix, "enhanced",
                                lambda p: (p[0] + x0, p[1] + y0))
            if not found:
                # small modules: the module grid turned square to the pixels and enlarged with
                # Lanczos, which gives the binarizer sub-pixel edges to work with
                big, back = _grid_aligned(crop)
                found = self._zxing(big, self._zx_matrix, "enhanced", lambda p: _shift(back(p), x0, y0))
            out += found
        return out


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A grey ``uint8`` view of a BGR, BGRA or grey frame."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (
            frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise ValueError("a frame is a uint8 array: rows x columns, grey, BGR or BGRA")
    if frame.size == 0:
        return frame.reshape(frame.shape[:2])
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 1:
        return frame[:, :, 0]
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def _orientation(gray: np.ndarray, box: tuple[int, int, int, int]) -> tuple[float, float]:
    """Dominant gradient direction (radians) in a box of the full-resolution frame, and how much the
    gradients agree on it (coherence 0..1): the structure tensor summed over the box, with Scharr
    derivatives (nearly isotropic; a half-size Sobel pulls fine bars' angles towards the axes)."""
    x, y, w, h = box
    patch = gray[y:y + h, x:x + w]
    gx = cv2.Scharr(patch, cv2.CV_32F, 1, 0)
    gy = cv2.Scharr(patch, cv2.CV_32F, 0, 1)
    sxx, syy, sxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    return 0.5 * math.atan2(2 * sxy, sxx - syy), math.hypot(sxx - syy, 2 * sxy) / max(sxx + syy, 1e-9)


def _box_crop(gray: np.ndarray, region: Region, margin: float = 0.15) -> tuple[int, int, np.ndarray]:
    x, y, w, h = region.box
    m = int(max(w, h) * margin) + 8
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(gray.shape[1], x + w + m), min(gray.shape[0], y + h + m)
    return x0, y0, gray[y0:y1, x0:x1]


def _upright(gray: np.ndarray, region: Region, scale: float = 1.0) -> tuple[np.ndarray, Any]:
    """The region cut out with its gradient direction turned to the x axis (bars upright) and
    enlarged ``scale`` times (bilinear at 1, else Lanczos), with a function mapping crop pixels back
    to frame pixels."""
    scale = min(scale, _ENLARGED_MAX * 2 / (region.length * 1.3 + 24))
    scale = max(scale, 1.0)
    c, s = math.cos(region.angle) * scale, math.sin(region.angle) * scale
    cx, cy = region.center
    w = int((region.length * 1.3 + 24) * scale)
    h = int(max(region.width * 1.1, 16) * scale)
    # dst = scale R (src - center) + (w/2, h/2), R's rows being the gradient axis and the bar axis
    matrix = np.array([[c, s, -(c * cx + s * cy) + w / 2], [-s, c, -(-s * cx + c * cy) + h / 2]], np.float32)
    interpolation = cv2.INTER_LINEAR if scale == 1.0 else cv2.INTER_LANCZOS4
    crop = cv2.warpAffine(gray, matrix, (w, h), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
    k = 1.0 / (scale * scale)

    def back(p: tuple[float, float]) -> tuple[float, float]:
        du, dv = p[0] - w / 2, p[1] - h / 2
        return (cx + k * (c * du - s * dv), cy + k * (s * du + c * dv))

    return crop, back


def _grid_aligned(crop: np.ndarray) -> tuple[np.ndarray, Any]:
    """The crop turned so a square module grid in it runs along the pixel axes (the grid's angle is
    that of the gradients' fourth-power mean: squares' edges point four ways, 90 degrees apart) and
    enlarged up to ``_ENLARGE`` times (Lanczos); with a function mapping its pixels back to the crop."""
    gx = cv2.Scharr(crop, cv2.CV_32F, 1, 0)
    gy = cv2.Scharr(crop, cv2.CV_32F, 0, 1)
    z = gx + 1j * gy
    angle = float(np.angle((z ** 4 / (np.abs(z) ** 2 + 1e-6)).sum())) / 4
    h, w = crop.shape
    f = max(1.0, min(_ENLARGE, _ENLARGED_MAX / max(h, w)))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), math.degrees(angle), f)
    matrix[0, 2] += (w * f - w) / 2
    matrix[1, 2] += (h * f - h) / 2
    big = cv2.warpAffine(crop, matrix, (int(w * f), int(h * f)), flags=cv2.INTER_LANCZOS4,
                         borderMode=cv2.BORDER_REPLICATE)
    inverse = cv2.invertAffineTransform(matrix)

    def back(p: tuple[float, float]) -> tuple[float, float]:
        return (float(inverse[0, 0] * p[0] + inverse[0, 1] * p[1] + inverse[0, 2]),
                float(inverse[1, 0] * p[0] + inverse[1, 1] * p[1] + inverse[1, 2]))

    return big, back


def _shift(p: tuple[float, float], dx: float, dy: float) -> tuple[float, float]:
    return (p[0] + dx, p[1] + dy)


def _unique(found: list[Decoded]) -> list[Decoded]:
    seen: dict[tuple[str, str], Decoded] = {}
    for d in found:
        seen.setdefault((d.format, d.text), d)
    return list(seen.values())
