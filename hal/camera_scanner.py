"""The camera as a code scanner (backend "camera"): frames in, ``ScannedCode`` values out.

A camera sees the same code in every frame for as long as it is held up, while a hardware scanner
sends it once. :class:`CameraScanner` turns frames into scans with one rule, kept by
:class:`Presence`:

* a code is reported the first frame it is read in (so a code in view is read once, not once per
  frame, and not delayed);
* it is then *present*, and is not reported again while present, however long it is held still;
* it stops being present only after ``absent_frames`` consecutive frames in which it was not read;
  shown again after that, it is reported again (the resident scans the same notice twice on purpose).

The ``absent_frames`` hysteresis is there because decoders miss: motion blur as the hand moves,
glare on a phone screen, a finger over a corner or a frame where only a different pass would have
read it lose a code for a frame or two while it never left the view. Counting any miss as "left"
would report the code again after each one. With N = 5 at 15 frames per second a code must be gone
for a third of a second before it counts as new; raise N for a shaky hand, lower it for a queue of
residents scanning quickly. Codes are told apart by format and text, so two codes in one frame are
two presences.

Frames are decoded in a worker thread of the scanner's own (zxing-cpp and OpenCV release the GIL), so
the event loop keeps serving the kiosk while a 1280x720 frame is read. ``read(timeout)`` may return
up to one decode time (tens of milliseconds) after ``timeout``.

Known limit: when the first pass reads a code, the fallback passes are skipped for that frame, so a
tilted waybill next to an upright QR code is read only once the QR code is out of view.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from hal.camera import Camera, CameraHealth
from hal.scanner import CodeScanner, ScannedCode


class Presence:
    """Which codes are in view, from what each frame read (see the module docstring).

    :meth:`update` takes the keys read in one frame and returns those newly present, in the order
    given. Pure: no clock, no frames; the scanner calls it once per decoded frame.
    """

    def __init__(self, absent_frames: int = 5) -> None:
        if absent_frames < 1:
            raise ValueError("absent_frames must be at least 1")
        self.absent_frames = absent_frames
        self._misses: dict[Hashable, int] = {}  # present key -> consecutive frames without it

    def update(self, seen: Iterable[Hashable]) -> list[Hashable]:
        seen = list(dict.fromkeys(seen))
        new = [key for key in seen if key not in self._misses]
        for key in list(self._misses):
            if key not in seen:
                self._misses[key] += 1
                if self._misses[key] >= self.absent_frames:
                    del self._misses[key]
        for key in seen:
            self._misses[key] = 0
        return new

    @property
    def present(self) -> frozenset:
        return frozenset(self._misses)

    def clear(self) -> None:
        self._misses.clear()


class CameraScanner(CodeScanner):
    """A camera read as a code scanner. ``camera``: a ``hal.camera.Camera`` (opened and closed with
    the scanner unless it was open already); without one, an OpenCV camera on ``source`` (device
    index, path or URL) at ``width`` x ``height`` is built. ``formats``: what is read, zxing-cpp
    names (QR and Code 128 unless told otherwise); ``extra_formats``: added by the station's
    configuration ("EAN13", "DataMatrix"...). ``absent_frames``: consecutive frames without a code
    before it counts as gone and may be read again (see the module docstring). ``stall_timeout``:
    seconds without a frame before the camera counts as stopped (``DeviceIOError``).
    ``decoder``: a ready ``CodeDecoder`` (tests); it overrides the formats.
    """

    def __init__(self, camera: Camera | None = None, *, source: int | str = 0, width: int | None = None,
                 height: int | None = None, formats: Sequence[str] | None = None,
                 extra_formats: Sequence[str] = (), absent_frames: int = 5, stall_timeout: float = 2.0,
                 decoder: Any = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        if camera is None:
            from hal.camera import OpenCVCamera

            camera = OpenCVCamera(source, width=width, height=height, stall_timeout=stall_timeout)
        if decoder is None:
            from hal.code_decoder import DEFAULT_FORMATS, CodeDecoder

            decoder = CodeDecoder(formats or DEFAULT_FORMATS, extra=extra_formats)
        self.camera = camera
        self.decoder = decoder
        self.presence = Presence(absent_frames)
        self.frames_decoded = 0
        self._pending: collections.deque[ScannedCode] = collections.deque()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._opened_camera = False

    def describe(self) -> dict[str, str]:
        return {"backend": "camera", "camera": self.camera.describe().get("backend", "?"),
                "source": self.camera.name, "formats": ",".join(self.decoder.formats),
                "absent_frames": str(self.presence.absent_frames)}

    def health(self) -> CameraHealth:
        """Whether the camera's frames arrive (the surveillance gate asks this)."""
        return self.camera.health()

    async def _open(self) -> None:
        self._pending.clear()
        self.presence.clear()
        self._opened_camera = not self.camera.is_open
        await self.camera.open()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="code-decoder")

    async def _close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)  # a decode under way finishes; its codes are dropped
        if self._opened_camera:
            await self.camera.close()

    async def _read(self, timeout: float | None) -> ScannedCode | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._pending:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            frame = await self.camera.frame(timeout=remaining)  # DeviceIOError when frames stop
            if frame is None:
                return None
            executor = self._executor
            if executor is None:  # closed meanwhile
                return None
            found = await loop.run_in_executor(executor, self.decoder.decode, frame)
            if not self._is_open:
                return None
            self.frames_decoded += 1
            by_key = {(d.format, d.text): d for d in found}
            for key in self.presence.update(by_key):
                d = by_key[key]
                self._pending.append(self._code(d.text, d.symbology, d.error))
        return self._pending.popleft()
