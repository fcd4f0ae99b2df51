"""Code scanners: what a resident holds under the kiosk's barcode/QR reader.

``CodeScanner`` is the only way the rest of postkiosk gets a scanned code.

Subclasses must override:
    ``_open()``, ``_close()``, ``_read(timeout)``.
Subclasses may override:
    ``describe()`` to report model or link details for diagnostics;
    ``_trigger(on)`` for scanners the host can trigger (the default says there is no such thing).

Policy that lives here, not in backends: the open check, the clock that stamps each code, logging
(never the content: a code may be a pickup token or personal data), and ending the async iterator
when the scanner is closed. Backends live in :data:`BACKENDS` and are imported lazily, so a vendor
dependency is needed only when its kind of scanner is configured (keyboard wedge, Zebra SSI, GM65
and camera backends are meant to be added there).
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from hal.device import Device
from hal.errors import DeviceIOError, DeviceOpenError, DeviceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScannedCode:
    """One code read. ``text`` is what the code holds; ``symbology`` its AIM identifier ("]Q1" for QR)
    when the scanner reports one, else None; ``at`` the wall-clock time of the read (epoch seconds).

    ``error`` is None for a good read. For bytes that are not UTF-8 it is ``"undecodable"`` and
    ``text`` shows them with backslash escapes: such a code must not be acted on.

    ``raw_length`` is the number of bytes the scanner sent for the code (without AIM identifier and
    suffix) when the backend reads bytes, else None (keyboard wedge, camera). It is not
    ``len(text)``: an undecodable byte is 4 characters of escape in ``text``, and a Chinese character
    3 bytes. It takes no part in equality.
    """

    text: str
    symbology: str | None
    at: float
    error: str | None = None
    raw_length: int | None = field(default=None, compare=False)

    def __repr__(self) -> str:  # a code may be a pickup token: never let a repr put it in a log
        return f"ScannedCode({len(self.text)} chars, symbology={self.symbology!r}, error={self.error!r})"


class CodeScanner(Device):
    """One scanner. Open with ``await scanner.open()`` or ``async with scanner:``.

    ``await scanner.read(timeout)`` returns the next code, or None when nothing was scanned within
    ``timeout`` seconds (None waits forever) or the scanner was closed meanwhile. ``async for code in
    scanner`` yields codes until the scanner is closed. Both raise ``DeviceIOError`` when the scanner
    is gone (unplugged, link lost); close and open it again to recover.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._clock = clock

    async def read(self, timeout: float | None = None) -> ScannedCode | None:
        """The next code scanned within ``timeout`` seconds (None waits forever), else None."""
        if not self._is_open:
            raise RuntimeError("scanner is not open")
        try:
            code = await self._read(timeout)
        except DeviceIOError:
            if not self._is_open:  # closed while waiting: not a failure of the device
                return None
            raise
        if code is not None:
            log.debug("scanned %r", code)
        return code

    def __aiter__(self) -> AsyncIterator[ScannedCode]:
        return self._codes()

    async def _codes(self) -> AsyncIterator[ScannedCode]:
        while self._is_open:
            code = await self.read(timeout=None)
            if code is not None:
                yield code

    def _code(self, text: str, symbology: str | None = None, error: str | None = None,
              raw_length: int | None = None) -> ScannedCode:
        """Stamp a code with the scanner's clock (for backends)."""
        return ScannedCode(text, symbology, self._clock(), error, raw_length)

    def describe(self) -> dict[str, str]:
        """Model and link details for diagnostics."""
        return {"backend": type(self).__name__}

    async def trigger(self, on: bool = True) -> None:
        """Start (``on``) or stop a scan from the host, for scanners in host/serial trigger mode; the
        code then comes through :meth:`read`. Raises ``DeviceUnavailable`` for a scanner without a
        host trigger, ``DeviceIOError`` (``DeviceTimeout``) when the scanner refuses or does not answer."""
        if not self._is_open:
            raise RuntimeError("scanner is not open")
        await self._trigger(on)
        log.debug("trigger %s", "on" if on else "off")

    async def _trigger(self, on: bool) -> None:
        raise DeviceUnavailable(f"{type(self).__name__} cannot be triggered by the host")

    @abc.abstractmethod
    async def _read(self, timeout: float | None) -> ScannedCode | None:
        """The next code within ``timeout`` seconds, or None. Raise ``DeviceIOError`` when the device is gone."""


SUFFIXES = ("cr", "lf", "crlf", "none")


class SerialLineScanner(CodeScanner):
    """A scanner in serial or USB-CDC mode on ``url`` (anything ``serial.serial_for_url`` opens:
    ``/dev/serial/by-id/...``, ``/dev/ttyACM0``, ``socket://host:port``), sending one line per code.

    ``suffix`` is what the scanner is set to send after a code: "cr", "lf" or "crlf" (all three are
    accepted whatever is set, §3.1) or "none": a code then ends after ``inter_char_timeout`` seconds
    of silence. With a suffix, a fragment left without one for ``fragment_timeout`` seconds (a
    scanner reset mid-code) is dropped rather than glued onto the next code. ``aim_ids``: the scanner
    sends AIM symbology identifiers, which are stripped and reported as ``symbology``.
    ``baudrate`` is ignored by USB-CDC scanners.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        *,
        suffix: str = "cr",
        inter_char_timeout: float = 0.1,
        fragment_timeout: float = 1.0,
        aim_ids: bool = False,
        exclusive: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        if suffix not in SUFFIXES:
            raise ValueError(f"suffix must be one of {', '.join(SUFFIXES)}, not {suffix!r}")
        from firmware_bridge.link import SerialLink

        self.url = url
        self.suffix = suffix
        self.inter_char_timeout = inter_char_timeout
        self.fragment_timeout = fragment_timeout
        self.aim_ids = aim_ids
        self._link = SerialLink(url, baudrate, exclusive=exclusive)
        self._buf = bytearray()
        self._last_rx = 0.0

    def describe(self) -> dict[str, str]:
        return {"backend": "serial-line", "url": self.url, "suffix": self.suffix, "aim_ids": str(self.aim_ids)}

    async def _open(self) -> None:
        from firmware_bridge.errors import LinkOpenError

        self._buf.clear()
        try:
            await self._link.open()
        except LinkOpenError as err:
            raise DeviceOpenError(f"scanner: {err}") from err

    async def _close(self) -> None:
        await self._link.close()

    async def _read(self, timeout: float | None) -> ScannedCode | None:
        from firmware_bridge import scanner_lines
        from firmware_bridge.errors import LinkError

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        quiet_after = self.inter_char_timeout if self.suffix == "none" else self.fragment_timeout
        while True:
            consumed, line = scanner_lines.decode(self._buf, aim_ids=self.aim_ids)
            if consumed:
                del self._buf[:consumed]
                if line is not None:
                    return self._to_code(line)
                continue
            now = loop.time()
            quiet_at = self._last_rx + quiet_after if self._buf else None
            if quiet_at is not None and now >= quiet_at:
                if self.suffix == "none":
                    consumed, line = scanner_lines.decode(self._buf, aim_ids=self.aim_ids, flush=True)
                    del self._buf[:consumed]
                    if line is not None:
                        return self._to_code(line)
                else:
                    log.warning("scanner %s: dropped %d bytes without a suffix", self.url, len(self._buf))
                    self._buf.clear()
                continue
            if deadline is not None and now >= deadline:
                return None
            waits = [t - now for t in (quiet_at, deadline) if t is not None]
            try:
                chunk = await self._link.read(min(waits) if waits else None)
            except LinkError as err:
                raise DeviceIOError(f"scanner {self.url}: {err}") from err
            if chunk:
                self._buf += chunk
                self._last_rx = loop.time()

    def _to_code(self, line: Any) -> ScannedCode:
        text = line.text
        if text is None:
            log.warning("scanner %s: a code of %d bytes that are not UTF-8", self.url, len(line.data))
            return self._code(line.data.decode("utf-8", "backslashreplace"), line.symbology, "undecodable",
                              len(line.data))
        return self._code(text, line.symbology, raw_length=len(line.data))


#: backend name -> "module:Class", imported only when configured (python-can's BACKENDS table).
BACKENDS: dict[str, str] = {
    "serial-line": "hal.scanner:SerialLineScanner",
    "honeywell": "hal.scanner_triggered:HoneywellScanner",
    "zebra-ssi": "hal.scanner_triggered:SsiScanner",
    "gm65": "hal.scanner_triggered:Gm65Scanner",
    "hid": "hal.scanner_hid:HidKeyboardScanner",
    "camera": "hal.camera_scanner:CameraScanner",
}


def code_scanner(backend: str, **options: Any) -> CodeScanner:
    """Build the scanner backend named ``backend`` with ``options`` (not opened yet)."""
    try:
        target = BACKENDS[backend]
    except KeyError:
        raise DeviceUnavailable(f"unknown scanner backend {backend!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise DeviceUnavailable(f"scanner backend {backend!r} cannot be imported: {err}") from err
    return cls(**options)
