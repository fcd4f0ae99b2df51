"""Cameras: a source of frames (the code reader at the counter, later the surveillance gate).

Subclasses must override:
    ``_open()``, ``_close()``, ``_grab()``: the next frame as a numpy array (BGR or grey ``uint8``,
    rows x columns [x channels]), or None when the device gave none this time. ``_grab`` may wait for
    the device; a backend whose library blocks runs it in a thread (see :class:`OpenCVCamera`).
Subclasses may override:
    ``describe()`` to report the source and format for diagnostics.

Policy that lives here, not in backends: the open check, the stall rule, and health. A camera that
is asked for a frame for ``stall_timeout`` seconds in all and gives none (``_grab`` keeps returning
None, or blocks) has stopped: :meth:`Camera.frame` raises ``DeviceIOError``, and
:meth:`Camera.health` says frames are not arriving. Only time spent asking counts, so a reader that
pauses (the kiosk busy with the code it just read) does not make a healthy camera look stalled. A
grab that raises ``DeviceIOError`` is the same. Close and open the camera again to recover.

Health is what the frames pulled so far show: it is current only while something reads the camera
(the ``CameraScanner`` reads without pause for as long as the kiosk consumes codes).

Backends live in :data:`BACKENDS` and are imported lazily, so OpenCV is needed only when a camera is
configured. The interface-level simulator (backend name "simulated") is
``simulators.camera.SimulatedCamera``; ``hal`` never imports it.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hal.device import Device
from hal.errors import DeviceIOError, DeviceOpenError, DeviceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraHealth:
    """Whether frames arrive. ``ok``: the camera is open, has given a frame, and has not stalled
    since. ``frames``: frames delivered since open. ``seconds_since_frame``: age of the last frame
    (None before the first): how fresh the evidence is, since health is only as current as the
    reading (a gate that needs live video bounds it too). ``reason``: why not ok ("closed",
    "no frame yet", "no frame for 2.0 s", "grab failed"), None when ok."""

    ok: bool
    frames: int
    seconds_since_frame: float | None
    reason: str | None = None


class Camera(Device):
    """One camera. Open with ``await camera.open()`` or ``async with camera:``.

    ``await camera.frame(timeout)`` returns the next frame, or None when none came within ``timeout``
    seconds (None waits until the stall rule ends the wait). ``stall_timeout``: seconds of asking
    without a frame after which the camera counts as stopped (``DeviceIOError``). ``poll_interval``: seconds to
    wait after a grab that gave nothing, so a dead device is not polled in a busy loop.
    ``monotonic``: the clock of the stall rule (seconds).
    """

    def __init__(self, *, stall_timeout: float = 2.0, poll_interval: float = 0.01,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if stall_timeout <= 0:
            raise ValueError("stall_timeout must be positive (seconds)")
        self.stall_timeout = stall_timeout
        self.poll_interval = poll_interval
        self._monotonic = monotonic
        self._frames = 0
        self._last_frame_at: float | None = None
        self._dry = 0.0  # seconds spent asking for a frame since the last one came
        self._failed: str | None = None

    async def open(self) -> None:
        if not self._is_open:
            self._frames = 0
            self._last_frame_at = None
            self._dry = 0.0
            self._failed = None
            await super().open()

    async def frame(self, timeout: float | None = None) -> Any:
        """The next frame (numpy array) within ``timeout`` seconds (None: no limit but the stall
        rule), else None. Raises ``DeviceIOError`` when the camera has stopped giving frames."""
        if not self._is_open:
            raise RuntimeError("camera is not open")
        if self._failed:
            raise DeviceIOError(f"camera {self.name}: {self._failed}")
        t = self._monotonic()
        deadline = None if timeout is None else t + timeout
        while True:
            # only time spent asking counts towards a stall: a reader busy elsewhere is no
            # evidence against the camera
            wait = self.stall_timeout - self._dry
            if deadline is not None:
                wait = min(wait, deadline - t)
            image = None
            try:
                if wait > 0:
                    async with asyncio.timeout(wait):
                        image = await self._grab()
            except TimeoutError:
                pass
            except DeviceIOError as err:
                self._failed = "grab failed"
                log.warning("%s", err)
                raise
            if not self._is_open:  # closed while grabbing
                raise DeviceIOError(f"camera {self.name}: closed")
            now = self._monotonic()
            if image is not None:
                self._dry = 0.0
                self._frames += 1
                self._last_frame_at = now
                return image
            self._dry += now - t
            t = now
            if self._dry >= self.stall_timeout:
                self._failed = f"no frame for {self._dry:.1f} s"
                log.warning("camera %s: %s", self.name, self._failed)
                raise DeviceIOError(f"camera {self.name}: {self._failed}")
            if deadline is not None and now >= deadline:
                return None
            pause = min(self.poll_interval, self.stall_timeout - self._dry)
            if deadline is not None:
                pause = min(pause, deadline - now)
            await asyncio.sleep(max(0.0, pause))
            now = self._monotonic()
            self._dry += now - t
            t = now

    def health(self) -> CameraHealth:
        """Whether frames arrive (see :class:`CameraHealth`). Never touches the device."""
        if not self._is_open:
            return CameraHealth(False, self._frames, None, "closed")
        age = None if self._last_frame_at is None else self._monotonic() - self._last_frame_at
        if self._failed:
            return CameraHealth(False, self._frames, age, self._failed)
        if age is None:
            return CameraHealth(False, 0, None, "no frame yet")
        return CameraHealth(True, self._frames, age)

    @property
    def name(self) -> str:
        return self.describe().get("source", type(self).__name__)

    def describe(self) -> dict[str, str]:
        """Source and format details for diagnostics."""
        return {"backend": type(self).__name__}

    @abc.abstractmethod
    async def _grab(self) -> Any:
        """The next frame, or None when the device gave none this time. Raise ``DeviceIOError`` when
        the device is gone."""


class OpenCVCamera(Camera):
    """A camera OpenCV opens: ``source`` is a device index (``0`` = ``/dev/video0``, a USB UVC camera),
    a device path, a video file, an image sequence (``frames/%03d.png``) or a stream URL, exactly as
    ``cv2.VideoCapture`` takes it. ``width``/``height``/``fps`` are requested from the device when
    given (a camera may pick the nearest mode it has).

    ``cv2.VideoCapture`` blocks, so opening, grabbing and releasing run in one worker thread of this
    camera's own. The driver's frame queue is asked to hold one frame (``CAP_PROP_BUFFERSIZE``) so a
    slow decoder reads what is in view now, not what was there a second ago; not every driver obeys.
    A file or sequence that ends gives no more frames: the stall rule then raises ``DeviceIOError``.
    """

    def __init__(self, source: int | str = 0, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None, stall_timeout: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stall_timeout=stall_timeout, monotonic=monotonic)
        self.source = source
        self.width, self.height, self.fps = width, height, fps
        self._capture: Any = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def describe(self) -> dict[str, str]:
        return {"backend": "opencv", "source": str(self.source)}

    async def _open(self) -> None:
        try:
            import cv2
        except ImportError as err:
            raise DeviceUnavailable(f"camera backend 'opencv' needs opencv-python-headless: {err}") from err
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="camera")

        def open_capture() -> Any:
            capture = cv2.VideoCapture(self.source)
            if not capture.isOpened():
                capture.release()
                return None
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                                (cv2.CAP_PROP_FPS, self.fps)):
                if value:
                    capture.set(prop, value)
            return capture

        try:
            self._capture = await asyncio.get_running_loop().run_in_executor(self._executor, open_capture)
        except Exception as err:  # OpenCV raises cv2.error for some broken sources
            self._shutdown()
            raise DeviceOpenError(f"camera {self.source}: {err}") from err
        if self._capture is None:
            self._shutdown()
            raise DeviceOpenError(f"camera {self.source}: OpenCV cannot open it")

    async def _close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None and self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, capture.release)
        self._shutdown()

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _grab(self) -> Any:
        capture, executor = self._capture, self._executor
        if capture is None or executor is None:
            raise DeviceIOError(f"camera {self.source}: closed")
        try:
            ok, image = await asyncio.get_running_loop().run_in_executor(executor, capture.read)
        except Exception as err:  # cv2.error: the device went away under the driver
            raise DeviceIOError(f"camera {self.source}: {err}") from err
        return image if ok else None


#: backend name -> "module:Class", imported only when configured (python-can's BACKENDS table).
BACKENDS: dict[str, str] = {
    "opencv": "hal.camera:OpenCVCamera",
}


def camera(backend: str, **options: Any) -> Camera:
    """Build the camera backend named ``backend`` with ``options`` (not opened yet)."""
    try:
        target = BACKENDS[backend]
    except KeyError:
        raise DeviceUnavailable(f"unknown camera backend {backend!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise DeviceUnavailable(f"camera backend {backend!r} cannot be imported: {err}") from err
    return cls(**options)
