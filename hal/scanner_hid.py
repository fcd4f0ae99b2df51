"""USB HID keyboard-wedge scanners, read from the kernel's input device instead of a text field (§3.1).

A wedge scanner types each code and presses Enter. Left alone, those keystrokes go to whichever
window has focus: on a kiosk, the browser. :class:`HidKeyboardScanner` opens the scanner's own event
device (``/dev/input/by-id/usb-<vendor>_<product>-event-kbd``) with python-evdev and **grabs** it
(``EVIOCGRAB``), so its keys reach this process only and never the browser or a shell; the grab is
released on close. The key events are turned back into text by ``firmware_bridge.hid_keys``
(US layout, Shift, Caps Lock; Enter or keypad Enter ends a code).

Limits (say so to whoever buys the scanner): the keyboard layout must be US on the scanner side;
non-ASCII content (Chinese in a QR code) cannot come through a keyboard wedge, and keys that give no
character (Alt+keypad codes, function keys) make the code ``error="undecodable"``, never acted on.
Prefer USB-CDC mode when the scanner has it.

``path`` may be a glob (``/dev/input/by-id/*Honeywell*-event-kbd``) that must match exactly one
device when the scanner is opened. Unplugging the scanner makes the next ``read()`` raise
``DeviceIOError`` (the kernel answers ENODEV); close and open to pick it up again.

python-evdev is imported only when the backend opens a device (``BACKENDS`` lazy import), and
``open_device`` lets tests inject an object that behaves like ``evdev.InputDevice``:
``async_read_loop()`` yielding events with ``.type``, ``.code``, ``.value``, plus ``grab()``,
``ungrab()`` and ``close()``.
"""

from __future__ import annotations

import asyncio
import errno
import glob
import logging
import time
from collections.abc import Callable
from typing import Any

from firmware_bridge import scanner_lines
from firmware_bridge.hid_keys import EV_KEY, KeyDecoder, TypedLine
from hal.errors import DeviceIOError, DeviceOpenError, DeviceUnavailable
from hal.scanner import CodeScanner, ScannedCode

log = logging.getLogger(__name__)

HID_SUFFIXES = ("enter", "none")
_GLOB_CHARS = frozenset("*?[")


def _evdev_open(path: str) -> Any:
    try:
        import evdev
    except ImportError as err:
        raise DeviceUnavailable(f"the hid scanner backend needs python-evdev: {err}") from err
    return evdev.InputDevice(path)


class HidKeyboardScanner(CodeScanner):
    """A keyboard-wedge scanner on the Linux input device ``path``.

    ``grab``: take the device for this process alone (keep it True on a kiosk). ``suffix``: "enter"
    (the scanner ends each code with Enter; a fragment left without one for ``fragment_timeout``
    seconds is dropped) or "none" (a code ends after ``inter_key_timeout`` seconds without a key).
    ``aim_ids``: the scanner types an AIM identifier first, which is stripped and reported as
    ``symbology``. ``open_device(path)`` builds the input device (default ``evdev.InputDevice``).
    """

    def __init__(
        self,
        path: str,
        *,
        grab: bool = True,
        suffix: str = "enter",
        inter_key_timeout: float = 0.1,
        fragment_timeout: float = 1.0,
        aim_ids: bool = False,
        open_device: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        if suffix not in HID_SUFFIXES:
            raise ValueError(f"suffix must be one of {', '.join(HID_SUFFIXES)}, not {suffix!r}")
        self.path = path
        self.grab = grab
        self.suffix = suffix
        self.inter_key_timeout = inter_key_timeout
        self.fragment_timeout = fragment_timeout
        self.aim_ids = aim_ids
        self._open_device = open_device or _evdev_open
        self._device: Any = None
        self._device_path = path
        self._decoder = KeyDecoder()
        self._events: asyncio.Queue[tuple[float, int, int, int] | None] = asyncio.Queue()
        self._pump_task: asyncio.Task[None] | None = None
        self._failure: DeviceIOError | None = None
        self._last_key = 0.0

    def describe(self) -> dict[str, str]:
        info = {"backend": "hid", "path": self._device_path, "grab": str(self.grab), "suffix": self.suffix,
                "aim_ids": str(self.aim_ids)}
        name = getattr(self._device, "name", None)
        if name:
            info["name"] = str(name)
        return info

    def _resolve(self) -> str:
        if not _GLOB_CHARS & set(self.path):
            return self.path
        matches = sorted(glob.glob(self.path))
        if len(matches) != 1:
            found = ", ".join(matches) if matches else "none"
            raise DeviceOpenError(f"scanner: {self.path} must match exactly one input device (found: {found})")
        return matches[0]

    async def _open(self) -> None:
        path = self._device_path = self._resolve()
        try:
            device = self._open_device(path)
        except OSError as err:
            raise DeviceOpenError(f"scanner {path}: {err.strerror or err}") from err
        if self.grab:
            try:
                device.grab()
            except OSError as err:
                device.close()
                why = "another program holds it (EBUSY)" if err.errno == errno.EBUSY else (err.strerror or str(err))
                raise DeviceOpenError(f"scanner {path} cannot be grabbed: {why}") from err
        self._device = device
        self._decoder = KeyDecoder()
        self._events = asyncio.Queue()
        self._failure = None
        self._pump_task = asyncio.get_running_loop().create_task(self._pump(device), name=f"hid-scanner {path}")
        log.debug("opened %s (grab=%s)", path, self.grab)

    async def _close(self) -> None:
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        device, self._device = self._device, None
        self._events.put_nowait(None)  # wake a read() waiting for keys
        if device is None:
            return
        if self.grab:
            try:
                device.ungrab()
            except OSError as err:  # already gone (unplugged): the kernel released the grab itself
                log.debug("ungrab %s: %s", self._device_path, err)
        try:
            device.close()
        except OSError as err:
            log.debug("close %s: %s", self._device_path, err)

    async def _pump(self, device: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for event in device.async_read_loop():
                if event.type == EV_KEY:
                    self._events.put_nowait((loop.time(), event.type, event.code, event.value))
        except OSError as err:
            why = "unplugged" if err.errno == errno.ENODEV else (err.strerror or str(err))
            self._failure = DeviceIOError(f"scanner {self._device_path}: {why}")
            log.warning("%s", self._failure)
        else:
            self._failure = DeviceIOError(f"scanner {self._device_path}: the event stream ended")
        self._events.put_nowait(None)

    def _quiet_after(self) -> float:
        return self.inter_key_timeout if self.suffix == "none" else self.fragment_timeout

    def _went_quiet(self) -> ScannedCode | None:
        """The keys stopped with a code unfinished: end it (no suffix) or drop it."""
        line = self._decoder.flush()
        if self.suffix == "none":
            return self._to_code(line)
        if line is not None:
            log.warning("scanner %s: dropped %d typed characters without Enter", self._device_path, len(line.text))
        return None

    def _take(self, at: float, type_: int, code: int, value: int) -> ScannedCode | None:
        found = None
        if self._decoder.pending and at - self._last_key >= self._quiet_after():
            found = self._went_quiet()
        self._last_key = at
        line = self._decoder.feed(type_, code, value)
        if found is not None:
            if line is not None:
                log.warning("scanner %s: two codes at once, the second was dropped", self._device_path)
            return found
        return self._to_code(line)

    def _to_code(self, line: TypedLine | None) -> ScannedCode | None:
        if line is None:
            return None
        symbology = None
        text = line.text
        if self.aim_ids:
            _, parsed = scanner_lines.decode(text.encode("utf-8") + b"\r", aim_ids=True)
            if parsed is None:
                return None  # an identifier alone
            symbology, text = parsed.symbology, parsed.data.decode("utf-8")
        if line.skipped_keys:
            log.warning("scanner %s: %d keys that type no character inside a code", self._device_path,
                        line.skipped_keys)
            return self._code(text, symbology, "undecodable")
        return self._code(text, symbology)

    async def _read(self, timeout: float | None) -> ScannedCode | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            while not self._events.empty():
                item = self._events.get_nowait()
                if item is not None and (code := self._take(*item)) is not None:
                    return code
            if self._failure is not None:
                raise self._failure
            if not self._is_open:
                raise DeviceIOError(f"scanner {self._device_path} was closed")
            now = loop.time()
            quiet_at = self._last_key + self._quiet_after() if self._decoder.pending else None
            if quiet_at is not None and now >= quiet_at:
                if (code := self._went_quiet()) is not None:
                    return code
                continue
            if deadline is not None and now >= deadline:
                return None
            waits = [t - now for t in (quiet_at, deadline) if t is not None]
            try:
                async with asyncio.timeout(min(waits) if waits else None):
                    item = await self._events.get()
            except TimeoutError:
                continue
            if item is not None and (code := self._take(*item)) is not None:
                return code
