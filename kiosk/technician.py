"""The technician's page and API: every door and sensor live, the bus traffic, device health, a door
test, a printer test, the self-test, the journal and a support bundle, behind a technician login.

Every route here declares ``RequireRole("technician")`` except the login itself. Technicians see
personal data only masked (``lockers.diagnostics`` does the masking). "Open all" is a separate
maintenance action that needs a reason and the typed confirmation, and is journaled door by door.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from hal.errors import HalError
from kiosk.sessions import SESSION_COOKIE, RequireRole, Session, log_in, log_out
from lockers import maintenance
from lockers.errors import InvalidInput

require_technician = RequireRole("technician")
TechSession = Annotated[Session, Depends(require_technician)]


class TechLoginIn(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class PulseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200, description="why the door is tested (journaled)")


class PrinterTestIn(BaseModel):
    printer: str | None = Field(None, description="receipt_printer or label_printer (default: the first configured)")


PRINTERS = ("receipt_printer", "label_printer")


class OpenAllIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200, description="why every door is opened (journaled)")
    confirmation: str = Field(description=f"type {maintenance.CONFIRMATION!r}")


def add_technician_routes(router: FastAPI, page: Any) -> None:
    """Add the technician's routes to the app (directly, not as an included router, so the route-table
    test sees every one). ``page`` renders a template with the app's common context."""

    def diagnostics(request: Request) -> Any:
        kiosk = request.app.state.kiosk
        if kiosk.diagnostics is None:
            raise InvalidInput("diagnostics", "diagnostics are not available on this station")
        return kiosk.diagnostics

    @router.get("/technician", response_class=HTMLResponse, include_in_schema=False)
    async def technician_page(request: Request) -> Response:
        kiosk = request.app.state.kiosk
        session = kiosk.sessions.get(request.cookies.get(SESSION_COOKIE), roles=("technician",))
        if session is None:
            return page(request, "technician_login.html")
        return page(request, "technician.html", technician=session.account.name,
                    confirmation=maintenance.CONFIRMATION)

    @router.post("/api/technician/session", tags=["technician"])
    async def technician_login(request: Request, body: TechLoginIn) -> JSONResponse:
        """Log a technician in. Sets the session cookie and returns the token for API clients
        (``Authorization: Bearer``, used by ``postkiosk diag``). Sessions end after 120 s idle;
        10 failed logins lock the account for 30 minutes."""
        return await log_in(request, request.app.state.kiosk, body.login, body.password, "technician")

    @router.delete("/api/technician/session", tags=["technician"])
    async def technician_logout(request: Request, session: TechSession) -> JSONResponse:
        return log_out(request.app.state.kiosk, session)

    @router.get("/api/tech/station", tags=["technician"])
    async def station(request: Request, session: TechSession) -> dict[str, Any]:
        """Every configured device and its health, model or firmware where the device reports one."""
        return await diagnostics(request).station()

    @router.get("/api/tech/doors", tags=["technician"])
    async def doors(request: Request, session: TechSession) -> list[dict[str, Any]]:
        """Every door live: state, item sensor, compartment state, last command (tracking numbers masked)."""
        return await diagnostics(request).doors()

    @router.get("/api/tech/bus", tags=["technician"])
    async def bus(request: Request, session: TechSession) -> list[dict[str, Any]]:
        """Bus statistics per bank, with a reply latency histogram per board."""
        return diagnostics(request).bus()

    @router.post("/api/tech/doors/{label}/pulse", tags=["technician"])
    async def pulse(request: Request, label: str, body: PulseIn, session: TechSession) -> dict[str, Any]:
        """Door test: one unlock pulse of one door (journaled with who and why). Its state follows in
        ``/api/tech/doors``."""
        await diagnostics(request).pulse_door(session.account.login, label, body.reason)
        return {"compartment": label, "pulsed": True}

    @router.post("/api/tech/open-all", tags=["technician"])
    async def open_all(request: Request, body: OpenAllIn, session: TechSession) -> dict[str, Any]:
        """Maintenance: open every door, one at a time, each journaled. Needs a reason and the typed
        confirmation."""
        kiosk = request.app.state.kiosk
        results = await maintenance.open_all(kiosk.custody, technician=session.account.login, reason=body.reason,
                                             confirmation=body.confirmation)
        return {"results": results}

    @router.post("/api/tech/printer/test", tags=["technician"])
    async def printer_test(request: Request, body: PrinterTestIn, session: TechSession) -> JSONResponse:
        """Print the test page (station name, time, a Code 128, a QR, a Chinese line, a ruler) on
        ``printer`` ("receipt_printer" or "label_printer"; default: the first configured)."""
        devices = diagnostics(request).devices
        names = [name for name in PRINTERS if name in devices]
        name = body.printer or (names[0] if names else None)
        if name not in names:
            raise InvalidInput("printer", "no such printer is configured on this station")
        device = getattr(devices[name], "device", devices[name])
        try:
            if not device.is_open:
                await device.open()
            await device.test_page(station=request.app.state.kiosk.station_name)
        except HalError as err:  # out of paper, cover open, unplugged: the technician needs the reason
            return JSONResponse({"error": "printer_failed", "printer": name, "message": f"{name}: {err}"},
                                status_code=503)
        return JSONResponse({"printed": True, "printer": name})

    @router.get("/api/tech/selftest", tags=["technician"])
    async def selftest(request: Request, session: TechSession) -> dict[str, Any]:
        """The full self-test: boards, doors, devices, database integrity, journal chain, disk, clock."""
        return await diagnostics(request).selftest()

    @router.get("/api/tech/logs", tags=["technician"])
    async def logs(request: Request, session: TechSession, limit: int = 100) -> list[dict[str, Any]]:
        """Recent journal events, newest first, personal data masked."""
        return await diagnostics(request).logs(limit)

    @router.get("/api/tech/export", tags=["technician"])
    async def export(request: Request, session: TechSession) -> Response:
        """A support bundle (zip) with no personal data."""
        data = await diagnostics(request).support_bundle()
        name = time.strftime("postkiosk-support-%Y%m%d-%H%M%S.zip")
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
