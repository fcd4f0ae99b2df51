"""An interface-level camera simulator and the generated frames that tests and benchmarks show it.

:class:`SimulatedCamera` (backend name "simulated") implements ``hal.camera.Camera`` directly: there is
no wire under a camera worth simulating, so it models what a camera sees. It plays a list of frames
(numpy arrays) or image files, once or in a loop, at a frame rate or as fast as they are taken, and
a person in front of it is :meth:`~SimulatedCamera.show` (hold a code in view) and
:meth:`~SimulatedCamera.take_away` (the view is empty again). Faults: :meth:`~SimulatedCamera.stop_frames`
(the USB camera hangs: grabs return nothing, and the camera's stall rule turns that into
``DeviceIOError``) and :meth:`~SimulatedCamera.fail_grabs` (a grab raises).

Frame generators (deterministic: a seed fixes every random choice) build what a kiosk camera looks
at: a counter under uneven light, and on it a label carrying a code. Each frame goes through the same
camera model: the scene, a label pasted at an angle (resized with area averaging, rotated with
bilinear interpolation), a smooth illumination field (``lighting``: the relative light fall-off across
the frame), a Gaussian defocus blur (``blur``: sigma in pixels), then Gaussian sensor noise on every
colour channel (``noise``: sigma in grey levels of 255). Frames are BGR ``uint8`` like
``cv2.VideoCapture.read()``.

* :func:`code128_frame`: a Code 128 waybill number on a label, tilted by ``angle`` degrees;
  ``height_ratio`` is bar height over symbol width (printed waybills: about a fifth).
* :func:`qr_frame`: a QR code (the pickup notice); ``module`` pixels per module.
* :func:`barcode_frame`: any format zxing-cpp can write (EAN-13 for the restricted-format tests).
* :func:`idle_frame`: the empty counter.
* :func:`waybill_number`: SF / YT / JT style numbers and UPU S10 items (``EA123456785CN``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hal.camera import Camera
from hal.codes import make_s10
from hal.errors import DeviceIOError, DeviceOpenError

Frame = np.ndarray


# ----------------------------------------------------------------------------------------------
# frame generators


def waybill_number(seed: int, kind: str | None = None) -> str:
    """A waybill number as printed on Chinese parcels: "SF" + 13 digits (SF Express), "YT" + 13 digits
    (YTO), "JT" + 13 digits (J&T), or a UPU S10 item with a correct check digit (``EA123456785CN``).
    ``kind`` picks one of "SF", "YT", "JT", "S10"; None picks by ``seed``."""
    rng = np.random.default_rng(seed)
    kinds = ("SF", "YT", "JT", "S10")
    kind = kind or kinds[int(rng.integers(len(kinds)))]
    if kind == "S10":
        service = "E" + "ABCDEFGHJLMNPQRSTUVWXYZ"[int(rng.integers(23))]
        return make_s10(service, "".join(str(d) for d in rng.integers(0, 10, 8)))
    if kind not in kinds:
        raise ValueError(f"kind must be one of {', '.join(kinds)}, not {kind!r}")
    return kind + "".join(str(d) for d in rng.integers(0, 10, 13))


def code_image(text: str, fmt: str) -> np.ndarray:
    """The symbol of ``text`` in zxing-cpp format ``fmt`` ("QRCode", "Code128", "EAN13"...), one pixel
    per module, black on white, quiet zones included (grey ``uint8``)."""
    import zxingcpp

    barcode = zxingcpp.create_barcode(text, getattr(zxingcpp.BarcodeFormat, fmt))
    return np.asarray(barcode.to_image(scale=1), dtype=np.uint8).copy()


def _scene(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """The empty counter: a grey surface with a few large low-contrast shapes (a mat, a shelf edge),
    float32 grey levels."""
    width, height = size
    base = float(rng.uniform(110, 170))
    img = np.full((height, width), base, np.float32)
    import cv2

    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(width // 8, width // 2)), y0 + int(rng.integers(height // 8, height // 2))
        cv2.rectangle(img, (x0, y0), (x1, y1), float(base + rng.uniform(-35, 35)), -1)
    # the shapes are out of focus at the counter's distance
    return cv2.GaussianBlur(img, (0, 0), 3.0)


def _label(rng: np.random.Generator, code: np.ndarray, module: float, height_ratio: float | None,
           text: str | None) -> np.ndarray:
    """A white label holding ``code`` (one pixel per module) at ``module`` pixels per module, with
    printed lines of text under it like a waybill; float32 grey levels."""
    import cv2

    symbol = code.astype(np.float32)
    if height_ratio is not None:  # a linear symbol: bars as tall as the ratio says
        rows = max(4, int(round(symbol.shape[1] * height_ratio)))
        symbol = np.repeat(symbol[:1], rows, axis=0)
    width = max(1, int(round(symbol.shape[1] * module)))
    height = max(1, int(round(symbol.shape[0] * module)))
    symbol = cv2.resize(symbol, (width, height), interpolation=cv2.INTER_AREA)
    ink, paper = float(rng.uniform(15, 45)), float(rng.uniform(215, 245))
    symbol = ink + (paper - ink) * symbol / 255.0
    margin = max(4, int(module * 4))
    lines = 2 if text else 0
    line_h = max(8, int(module * 7))
    label = np.full((height + 2 * margin + lines * line_h, width + 2 * margin), paper, np.uint8)
    scale = line_h / 30.0
    for n, line in enumerate((text, "TEL 138****1234")[:lines]):
        y = margin + height + (n + 1) * line_h - max(1, line_h // 6)
        cv2.putText(label, line, (margin, y), cv2.FONT_HERSHEY_SIMPLEX, scale, int(ink), max(1, int(scale * 2)),
                    cv2.LINE_AA)
    label = label.astype(np.float32)
    label[margin:margin + height, margin:margin + width] = symbol
    return label


def _paste(rng: np.random.Generator, img: np.ndarray, label: np.ndarray, angle: float,
           center: tuple[float, float] | None) -> None:
    """Paste ``label`` onto ``img`` rotated by ``angle`` degrees (counter-clockwise), fully in view."""
    import cv2

    height, width = img.shape
    lh, lw = label.shape
    rad = math.radians(angle)
    # the rotated label's bounding box, to keep it inside the frame
    bw = abs(lw * math.cos(rad)) + abs(lh * math.sin(rad))
    bh = abs(lw * math.sin(rad)) + abs(lh * math.cos(rad))
    if bw >= width or bh >= height:
        raise ValueError(f"a label of {lw}x{lh} at {angle} degrees does not fit in {width}x{height}")
    if center is None:
        cx = float(rng.uniform(bw / 2 + 1, width - bw / 2 - 1))
        cy = float(rng.uniform(bh / 2 + 1, height - bh / 2 - 1))
    else:
        cx, cy = center
    matrix = cv2.getRotationMatrix2D((lw / 2, lh / 2), angle, 1.0)
    matrix[0, 2] += cx - lw / 2
    matrix[1, 2] += cy - lh / 2
    warped = cv2.warpAffine(label, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.warpAffine(np.ones_like(label), matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    img *= 1.0 - mask
    img += warped


def _camera(rng: np.random.Generator, img: np.ndarray, noise: float, blur: float, lighting: float) -> np.ndarray:
    """What the sensor makes of the scene: uneven light, defocus, then per-channel noise; BGR uint8."""
    import cv2

    height, width = img.shape
    if lighting:
        # a light gradient in a random direction times a vignette: relative fall-off ``lighting``
        theta = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        xs = xs / width - 0.5
        ys = ys / height - 0.5
        ramp = (xs * math.cos(theta) + ys * math.sin(theta)) + 0.5
        vignette = xs * xs + ys * ys
        field_ = 1.0 - lighting * (0.7 * ramp + 0.6 * vignette)
        img = img * field_
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    bgr = np.repeat(img[:, :, None], 3, axis=2) * np.array([0.95, 1.0, 1.04], np.float32)
    if noise:
        bgr = bgr + rng.normal(0.0, noise, bgr.shape).astype(np.float32)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def _frame(code: np.ndarray | None, *, size: tuple[int, int], module: float, angle: float,
           height_ratio: float | None, text: str | None, noise: float, blur: float, lighting: float,
           seed: int, center: tuple[float, float] | None) -> Frame:
    rng = np.random.default_rng(seed)
    img = _scene(rng, size)
    if code is not None:
        _paste(rng, img, _label(rng, code, module, height_ratio, text), angle, center)
    return _camera(rng, img, noise, blur, lighting)


def code128_frame(text: str, *, angle: float = 0.0, size: tuple[int, int] = (640, 480), module: float = 2.0,
                  height_ratio: float = 0.2, noise: float = 6.0, blur: float = 0.7, lighting: float = 0.35,
                  seed: int = 0, center: tuple[float, float] | None = None) -> Frame:
    """A camera frame (``size`` = width, height) of a waybill label whose Code 128 symbol reads ``text``,
    tilted ``angle`` degrees, ``module`` pixels per narrowest bar, bars ``height_ratio`` times as tall
    as the symbol is wide. ``center`` puts the label's centre there (else a seeded random spot).
    ``ValueError`` when the label does not fit in the frame at that angle."""
    return _frame(code_image(text, "Code128"), size=size, module=module, angle=angle, height_ratio=height_ratio,
                  text=text, noise=noise, blur=blur, lighting=lighting, seed=seed, center=center)


def qr_frame(text: str, *, size: tuple[int, int] = (640, 480), module: float = 4.0, angle: float = 0.0,
             noise: float = 6.0, blur: float = 0.7, lighting: float = 0.35, seed: int = 0,
             center: tuple[float, float] | None = None) -> Frame:
    """A camera frame of a QR code reading ``text`` (UTF-8; Chinese is fine), ``module`` pixels per
    module, turned ``angle`` degrees, on a label without printed text."""
    return _frame(code_image(text, "QRCode"), size=size, module=module, angle=angle, height_ratio=None,
                  text=None, noise=noise, blur=blur, lighting=lighting, seed=seed, center=center)


def barcode_frame(text: str, fmt: str, *, size: tuple[int, int] = (640, 480), module: float = 2.0,
                  angle: float = 0.0, noise: float = 6.0, blur: float = 0.7, lighting: float = 0.35,
                  seed: int = 0, center: tuple[float, float] | None = None) -> Frame:
    """A camera frame of any symbol zxing-cpp writes (``fmt``: "EAN13", "DataMatrix", "Code39"...)."""
    return _frame(code_image(text, fmt), size=size, module=module, angle=angle, height_ratio=None, text=None,
                  noise=noise, blur=blur, lighting=lighting, seed=seed, center=center)


def idle_frame(*, size: tuple[int, int] = (640, 480), noise: float = 6.0, blur: float = 0.7,
               lighting: float = 0.35, seed: int = 0) -> Frame:
    """A camera frame of the empty counter: nothing to read."""
    return _frame(None, size=size, module=1.0, angle=0.0, height_ratio=None, text=None, noise=noise, blur=blur,
                  lighting=lighting, seed=seed, center=None)


# ----------------------------------------------------------------------------------------------
# the simulated camera


@dataclass
class CameraSimState:
    """What the simulated camera is doing. ``frames``: what is in view, played in order;
    ``position``: the next one; ``loop``: start again after the last (else the frames stop, like a
    video file that ended); ``stopped``: the device hangs (grabs give nothing); ``failure``: grabs
    raise ``DeviceIOError`` with this message; ``grabs``: frames delivered since open."""

    frames: list[Frame] = field(default_factory=list)
    position: int = 0
    loop: bool = True
    stopped: bool = False
    failure: str | None = None
    grabs: int = 0


class SimulatedCamera(Camera):
    """A camera that plays frames: numpy arrays, or paths of image files read at :meth:`open`
    (``DeviceOpenError`` when one cannot be read). ``loop``: play them again after the last, else the
    frames stop (and the stall rule ends reading). ``fps``: pace frames in real time; None gives each
    frame the moment it is asked for. ``size``: of the idle frame that :meth:`take_away` shows.
    """

    BACKEND = "simulated"

    def __init__(self, frames: Iterable[Frame | str | Path] = (), *, loop: bool = True, fps: float | None = None,
                 size: tuple[int, int] = (640, 480), stall_timeout: float = 2.0,
                 monotonic: Callable[[], float] | None = None) -> None:
        kwargs: dict[str, Any] = {"stall_timeout": stall_timeout}
        if monotonic is not None:
            kwargs["monotonic"] = monotonic
        super().__init__(**kwargs)
        if fps is not None and fps <= 0:
            raise ValueError("fps must be positive, or None for no pacing")
        self._sources = list(frames)
        self.fps = fps
        self.size = size
        self.state = CameraSimState(loop=loop)
        self._next_at = 0.0
        self._idle: Frame | None = None

    def describe(self) -> dict[str, str]:
        return {"backend": self.BACKEND, "source": "simulator", "fps": str(self.fps or "unpaced")}

    # what a person in front of the camera does

    def show(self, frames: Frame | Sequence[Frame], *, loop: bool = True) -> None:
        """Put ``frames`` in view (one frame or a sequence), from its first, repeating unless not
        ``loop``: a code held under the camera."""
        seq = [frames] if isinstance(frames, np.ndarray) else list(frames)
        if not seq:
            raise ValueError("show at least one frame")
        self.state.frames = seq
        self.state.position = 0
        self.state.loop = loop

    def take_away(self) -> None:
        """Nothing in view any more: the empty counter."""
        if self._idle is None:
            self._idle = idle_frame(size=self.size, seed=1)
        self.show(self._idle)

    # faults

    def stop_frames(self) -> None:
        """The camera hangs: grabs give nothing from now on (until :meth:`resume_frames`)."""
        self.state.stopped = True

    def resume_frames(self) -> None:
        self.state.stopped = False

    def fail_grabs(self, message: str = "USB camera disconnected") -> None:
        """Every grab from now on raises ``DeviceIOError`` (the device went away)."""
        self.state.failure = message

    # the Camera hooks

    async def _open(self) -> None:
        frames = []
        for source in self._sources:
            if isinstance(source, np.ndarray):
                frames.append(source)
                continue
            import cv2

            image = cv2.imread(str(source), cv2.IMREAD_COLOR)
            if image is None:
                raise DeviceOpenError(f"simulated camera: cannot read image {Path(source).name!r}")
            frames.append(image)
        if frames:
            self.state.frames = frames
            self.state.position = 0
        self.state.grabs = 0
        self.state.failure = None
        self._next_at = 0.0

    async def _close(self) -> None:
        pass

    async def _grab(self) -> Frame | None:
        state = self.state
        if state.failure:
            raise DeviceIOError(f"simulated camera: {state.failure}")
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps if self.fps else 0.0
        if state.stopped or not state.frames or (state.position >= len(state.frames) and not state.loop):
            await asyncio.sleep(period or 0.01)
            return None
        if period:
            now = loop.time()
            self._next_at = max(self._next_at + period, now) if self._next_at else now
            await asyncio.sleep(self._next_at - now)
        else:
            await asyncio.sleep(0)  # let the loop breathe between frames
        if state.stopped or state.failure:  # changed while waiting for the frame time
            return None
        if state.position >= len(state.frames):
            state.position = 0
        frame = state.frames[state.position]
        state.position += 1
        state.grabs += 1
        return frame
