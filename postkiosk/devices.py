"""The station's devices other than lock banks, built from the configuration, and how a technician's
health check asks each one whether it works.

Each device is wrapped in :class:`Probed`: ``describe()`` for the technician's device list, and an
async ``health()`` that opens the device if it is not open (a reader plugged in after start-up) and
asks it something harmless: the ID-card reader its SAM status, a printer its real-time status (paper,
cover), the scale a current reading, the camera a fresh frame. A device that fails is reported, never
raised: one dead printer must not hide the rest of the station.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hal.errors import HalError

log = logging.getLogger(__name__)

Probe = Callable[[Any], Awaitable[dict[str, Any]]]


class Probed:
    """A device with the probe that tells whether it works."""

    def __init__(self, kind: str, device: Any, probe: Probe, *, timeout: float = 5.0) -> None:
        self.kind = kind
        self.device = device
        self._probe = probe
        self.timeout = timeout

    @property
    def is_open(self) -> bool:
        return bool(self.device.is_open)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.device.describe()}

    async def open(self) -> None:
        """Open the device; a failure is logged, not raised (the health check says it again)."""
        try:
            await self.device.open()
        except HalError as err:
            log.warning("%s not available at start-up: %s", self.kind, err)

    async def close(self) -> None:
        await self.device.close()

    async def health(self) -> dict[str, Any]:
        try:
            if not self.device.is_open:
                await self.device.open()
            return await asyncio.wait_for(self._probe(self.device), self.timeout)
        except (HalError, TimeoutError) as err:
            return {"ok": False, "error": f"{type(err).__name__}: {err}"}


async def probe_idcard(reader: Any) -> dict[str, Any]:
    status = await reader.sam_status()
    return {"ok": status.ok, "detail": f"SAM {status.meaning}", "sam_status": f"0x{status.status:02X}"}


async def probe_printer(printer: Any) -> dict[str, Any]:
    status = await printer.status()
    detail = ", ".join(status.reasons) if not status.ready else ("ready, paper low" if status.paper_low else "ready")
    return {"ok": status.ready, "detail": detail, "paper_out": status.paper_out, "paper_low": status.paper_low,
            "cover_open": status.cover_open}


async def probe_scale(scale: Any) -> dict[str, Any]:
    weight = await scale.read_current(timeout=2.0)
    state = "overload" if weight.overload else ("stable" if weight.stable else "settling")
    return {"ok": not weight.overload, "detail": f"{weight.grams} g, {state}"}


async def probe_camera(camera: Any) -> dict[str, Any]:
    """A fresh frame. A camera that stalled stays failed until it is opened again (hal.camera), so a
    failed one is reopened first: the surveillance gate sees the frames when they come back."""
    before = camera.health()
    if camera.is_open and not before.ok and before.reason != "no frame yet":
        await camera.close()
        await camera.open()
    frame = await camera.frame(timeout=2.0)
    health = camera.health()
    ok = frame is not None and health.ok
    return {"ok": ok, "detail": "frames arriving" if ok else (health.reason or "no frame"), "frames": health.frames}


def build_devices(config: Any, urls: dict[str, str], prebuilt: dict[str, Any]) -> dict[str, Probed]:
    """``name -> Probed`` for every device the configuration has. ``urls`` replace configured URLs
    (the demo's simulators); ``prebuilt`` supplies ready device objects (the demo's camera)."""
    devices: dict[str, Probed] = {}

    def url_of(name: str, section: Any) -> str:
        url = urls.get(name) or section.url
        if not url:
            raise SystemExit(f"{name} is simulated, but no simulator is running for it")
        return url

    if config.idcard is not None:
        from hal.idcard import id_card_reader

        section = config.idcard
        reader = id_card_reader(section.backend, url=url_of("idcard", section), baudrate=section.baudrate or 115200)
        devices["idcard"] = Probed("ID card reader", reader, probe_idcard)
    for name in ("receipt_printer", "label_printer"):
        section = getattr(config, name)
        if section is None:
            continue
        from hal.printer import printer

        device = printer(section.protocol, url_of(name, section), section.profile, baudrate=section.baudrate or 9600)
        devices[name] = Probed(name.replace("_", " "), device, probe_printer)
    if config.scale is not None:
        from hal.scale import scale

        section = config.scale
        devices["scale"] = Probed("scale", scale(section.backend, url=url_of("scale", section),
                                                 baudrate=section.baudrate or 9600), probe_scale)
    if config.camera is not None:
        camera = prebuilt.get("camera")
        if camera is None:
            from hal.camera import camera as make_camera

            camera = make_camera(config.camera.backend, source=config.camera.source)
        devices["camera"] = Probed("surveillance camera", camera, probe_camera)
    return devices
