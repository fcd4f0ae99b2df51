"""Weighing scales: the weight of a parcel on the platter, accepted only once it has settled.

``Scale`` is the only way the rest of postkiosk gets a weight.

Subclasses must override:
    ``_open()``, ``_close()``, ``_next_weight(timeout)`` (the next reading the scale sends, or None
    after ``timeout`` seconds of silence; ``DeviceIOError`` when the scale is gone or sends only
    unreadable bytes), ``_discard()`` (forget readings sent before now).
Subclasses may override:
    ``describe()`` for diagnostics.

Policy that lives here, not in backends (hardware-protocols.md §8: "accept a weight only when it is
stable"):

* :meth:`Scale.read_stable` first throws away whatever the scale sent before it was called (a
  parcel put down now must not be weighed by yesterday's lines). It then accepts a weight when
  ``stable_lines`` consecutive readings carry the scale's stable flag (``ST``) **and** the same
  weight in grams, **and** those readings span at least ``stable_for`` seconds. Any unstable
  reading, or a stable one with another weight, starts the count again. Tare readings (``TR``) are
  ignored. With the defaults (3 lines, 0 s) a scale streaming 10 lines a second settles within
  0.3 s of its own stable flag; raise ``stable_for`` for a scale whose own flag is too eager.
* ``stable_lines`` consecutive overload readings raise :class:`ScaleOverload`.
* No reading for ``silence_timeout`` seconds raises ``DeviceTimeout`` (unplugged from power, wrong
  port); readings that never settle within the call's ``timeout`` raise :class:`ScaleUnstable`
  (someone leaning on the platter).

Backends live in :data:`BACKENDS` and are imported lazily.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hal.device import Device
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout, DeviceUnavailable, HalError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Weight:
    """One reading. ``grams`` is None only on an overload without a value. ``kind`` is "gross",
    "net" or "tare" ("gross" when the scale does not say). ``at``: the scale's monotonic clock when
    the reading arrived (seconds)."""

    grams: int | None
    stable: bool
    overload: bool = False
    kind: str = "gross"
    at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"grams": self.grams, "stable": self.stable, "overload": self.overload, "kind": self.kind}


class ScaleOverload(HalError):
    """The load is over the scale's capacity: the scale answered, there is no weight to give."""


class ScaleUnstable(DeviceTimeout):
    """The scale sent readings, but none settled within the timeout."""


class Scale(Device):
    """One scale. Open with ``await scale.open()`` or ``async with scale:``.

    ``stable_lines``, ``stable_for`` (seconds) and ``silence_timeout`` (seconds): see the module
    docstring. ``clock`` stamps readings (monotonic seconds; a fake one in tests).
    """

    def __init__(self, *, stable_lines: int = 3, stable_for: float = 0.0, silence_timeout: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if stable_lines < 1:
            raise ValueError("stable_lines must be at least 1")
        self.stable_lines = stable_lines
        self.stable_for = stable_for
        self.silence_timeout = silence_timeout
        self._clock = clock
        self._lock = asyncio.Lock()

    async def read_stable(self, timeout: float | None = 5.0) -> Weight:
        """The settled weight, waiting at most ``timeout`` seconds (None waits forever).

        Raises :class:`ScaleUnstable` (readings, none settled), ``DeviceTimeout`` (silence),
        :class:`ScaleOverload`, ``DeviceIOError`` (link lost, unreadable data)."""
        self._require_open()
        async with self._lock:
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            await self._discard()
            run: list[Weight] = []
            overloads = 0
            seen_any = False
            while True:
                reading = await self._reading_before(deadline, seen_any)
                if reading is None:
                    raise ScaleUnstable(f"the weight did not settle within {timeout} s")
                seen_any = True
                if reading.kind == "tare":
                    continue
                if reading.overload:
                    run.clear()
                    overloads += 1
                    if overloads >= self.stable_lines:
                        raise ScaleOverload("the load is over the scale's capacity")
                    continue
                overloads = 0
                if not reading.stable or reading.grams is None:
                    run.clear()
                    continue
                if run and run[-1].grams != reading.grams:
                    run.clear()
                run.append(reading)
                if len(run) >= self.stable_lines and run[-1].at - run[0].at >= self.stable_for:
                    log.debug("stable weight %d g after %d readings", reading.grams, len(run))
                    return reading

    async def read_current(self, timeout: float = 1.0) -> Weight:
        """The next reading the scale sends, stable or not (for diagnostics and live display).
        Tare readings are skipped. Raises ``DeviceTimeout`` when nothing comes within ``timeout``
        seconds."""
        self._require_open()
        async with self._lock:
            deadline = asyncio.get_running_loop().time() + timeout
            await self._discard()
            while True:
                reading = await self._reading_before(deadline, seen_any=False)
                if reading is None:
                    raise DeviceTimeout(f"no reading from the scale within {timeout} s")
                if reading.kind != "tare":
                    return reading

    async def _reading_before(self, deadline: float | None, seen_any: bool) -> Weight | None:
        """The next reading, or None at ``deadline`` when readings had been coming. Raises
        ``DeviceTimeout`` after ``silence_timeout`` seconds without any (or at the deadline when
        none came at all)."""
        loop = asyncio.get_running_loop()
        wait = self.silence_timeout
        if deadline is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if seen_any:
                    return None
                raise DeviceTimeout("no reading from the scale")
            wait = min(wait, remaining)
        reading = await self._next_weight(wait)
        if reading is not None:
            return reading
        if wait >= self.silence_timeout or not seen_any:
            raise DeviceTimeout(f"the scale sent nothing for {wait:.2f} s (power, cable, port or baud rate)")
        return None

    def describe(self) -> dict[str, str]:
        return {"backend": type(self).__name__}

    def _require_open(self) -> None:
        if not self.is_open:
            raise RuntimeError("scale is not open")

    def _stamp(self, grams: int | None, stable: bool, overload: bool, kind: str) -> Weight:
        """A reading stamped with the scale's clock (for backends)."""
        return Weight(grams, stable, overload, kind, self._clock())

    @abc.abstractmethod
    async def _next_weight(self, timeout: float) -> Weight | None:
        """The next reading within ``timeout`` seconds, or None."""

    @abc.abstractmethod
    async def _discard(self) -> None:
        """Forget every reading that has already arrived."""


_KINDS = {"GS": "gross", "NT": "net", "TR": "tare"}


class SerialLineScale(Scale):
    """A scale indicator streaming ``ST,GS,+  1.234kg`` lines on ``url`` (anything
    ``serial.serial_for_url`` opens). Most stream at 9600 8N1; some at 4800/2400 or 7E1: pass
    ``bytesize``/``parity`` in ``serial_options``.

    ``max_bad_lines``: this many lines in a row that are not readings (or a run of bytes with no
    line end at all) raise ``DeviceIOError``: almost always a wrong baud rate or format.
    """

    def __init__(self, url: str, baudrate: int = 9600, *, exclusive: bool = True, max_bad_lines: int = 10,
                 stable_lines: int = 3, stable_for: float = 0.0, silence_timeout: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, **serial_options: Any) -> None:
        super().__init__(stable_lines=stable_lines, stable_for=stable_for, silence_timeout=silence_timeout,
                         clock=clock)
        from firmware_bridge.link import SerialLink

        self.url = url
        self.max_bad_lines = max_bad_lines
        self._link = SerialLink(url, baudrate, exclusive=exclusive, **serial_options)
        self._buf = bytearray()
        self._bad = 0

    def describe(self) -> dict[str, str]:
        return {"backend": "serial-lines", "url": self.url, "baudrate": str(self._link.baudrate),
                "stable_lines": str(self.stable_lines), "stable_for": str(self.stable_for)}

    async def _open(self) -> None:
        from firmware_bridge.errors import LinkOpenError

        self._buf.clear()
        try:
            await self._link.open()
        except LinkOpenError as err:
            raise DeviceOpenError(f"scale: {err}") from err

    async def _close(self) -> None:
        await self._link.close()

    async def _discard(self) -> None:
        from firmware_bridge.errors import LinkError

        self._buf.clear()
        try:
            await self._link.discard_input()
        except LinkError as err:
            raise DeviceIOError(f"scale {self.url}: {err}") from err

    async def _next_weight(self, timeout: float) -> Weight | None:
        from firmware_bridge import scale_lines
        from firmware_bridge.errors import LinkError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self._buf:
                consumed, reading = scale_lines.decode(self._buf)
                if not consumed:
                    break
                line = bytes(self._buf[:consumed])
                del self._buf[:consumed]
                if reading is None:
                    if line.strip():
                        self._count_bad()
                    continue
                self._bad = 0
                return self._stamp(reading.grams, reading.stable, reading.overload,
                                   _KINDS[reading.kind.value] if reading.kind else "gross")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                chunk = await self._link.read(remaining)
            except LinkError as err:
                raise DeviceIOError(f"scale {self.url}: {err}") from err
            self._buf += chunk

    def _count_bad(self) -> None:
        self._bad += 1
        if self._bad >= self.max_bad_lines:
            self._bad = 0
            raise DeviceIOError(f"scale {self.url} sends lines that are not weights (check baud rate and format)")


#: backend name -> "module:Class", imported only when configured (python-can's BACKENDS table)
BACKENDS: dict[str, str] = {
    "serial-lines": "hal.scale:SerialLineScale",
}


def scale(backend: str, **options: Any) -> Scale:
    """Build the scale backend named ``backend`` with ``options`` (not opened yet)."""
    try:
        target = BACKENDS[backend]
    except KeyError:
        raise DeviceUnavailable(f"unknown scale backend {backend!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise DeviceUnavailable(f"scale backend {backend!r} cannot be imported: {err}") from err
    return cls(**options)
