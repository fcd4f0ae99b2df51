"""The kiosk web app: touchscreen pages and the JSON API they use.

The app opens no device: it talks to ``lockers.Custody`` and shows the ``Terminal``'s screen.
Routes other than the resident flows and ``/healthz`` declare the roles allowed with
:class:`RequireRole`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from kiosk import i18n, problems, scans
from kiosk.errors import SessionRequired, StaffLoginFailed, TerminalBusy, describe
from kiosk.i18n import _
from kiosk.sessions import SESSION_COOKIE, RequireRole, Session, Sessions
from kiosk.close import add_close_routes
from kiosk.payment import PaymentHub, add_payment_routes
from kiosk.posting import add_posting_routes
from kiosk.queue import add_queue_routes
from kiosk.voice import add_voice_routes
from kiosk.technician import add_technician_routes
from kiosk.terminal import Screen, Terminal
from hal.speech import Speech
from lockers.custody import REFUSE_REASONS, SIZES, Custody
from lockers.diagnostics import Diagnostics
from lockers.payments import PaymentDesk
from lockers.posting import PostingDesk
from hal.codes import PaymentCode
from lockers.queue import QueueDesk
from lockers.errors import CustodyError, FeeDue, FlowConflict, StorageError

HERE = Path(__file__).parent
LANG_COOKIE = "pk_lang"
LARGE_COOKIE = "pk_large"  # large print (长辈模式) switched on by hand on this kiosk


@dataclass
class Kiosk:
    """What the app needs from the running service."""

    custody: Custody
    terminal: Terminal
    sessions: Sessions
    station_name: str
    station_phone: str = ""
    maintenance: str | None = None  # why the station refuses to serve (unsafe storage, ...)
    diagnostics: Diagnostics | None = None  # the technician's view (None: no technician page)
    posting: PostingDesk | None = None  # posting a parcel (None: the station does not offer it)
    timezone: str = "Asia/Shanghai"  # the station's clock, for times shown on screen
    opening_hours: str = ""
    idle_seconds: float = 60.0  # doubled in large print (a person who reads slowly is not rushed)
    speech: Speech | None = None  # voice prompts (None: espeak-ng with its defaults)
    queue: QueueDesk | None = None  # the counter queue (None: not offered)
    payments: PaymentDesk | None = None  # payment by scanned code (None: the station takes none)
    receipt_printer: Any = None  # for payment receipts (None: receipts on screen only)
    daily_close: Any = None  # lockers.station_ledger.DailyClose (None: no daily close here)
    bills: Any = None  # lockers.bills.BillDesk (None: bill payment not offered)
    pay: PaymentHub = field(init=False)

    def __post_init__(self) -> None:
        self.pay = PaymentHub(self)

    async def take_payment_code(self, read: PaymentCode) -> None:
        """The scanner router's hand-over of a payment code read on a payment page."""
        await self.pay.take(read)


require_courier = RequireRole("courier")
CourierSession = Annotated[Session, Depends(require_courier)]


class LoginIn(BaseModel):
    login: str = Field(min_length=1, max_length=32)
    pin: str = Field(min_length=1, max_length=32)


class DepositIn(BaseModel):
    tracking: str = Field(max_length=64, description="tracking number, 6 to 32 letters and digits")
    phone: str = Field(max_length=32, description="recipient's mainland mobile number")
    size: str = Field(description="smallest compartment size that fits: " + ", ".join(SIZES))
    consent: bool = Field(description="the recipient agreed to locker delivery (rule R1)")
    locker_is_address: bool = Field(False, description="the sender named this locker as the delivery address")


class PickupIn(BaseModel):
    code: str | None = Field(None, max_length=32, description="8-digit pickup code from the notice")
    token: str | None = Field(None, max_length=64, description="QR pickup token from the notice, as scanned")


class RefuseIn(BaseModel):
    reason: str = Field(description="why the parcel is refused: " + ", ".join(REFUSE_REASONS))


def create_app(kiosk: Kiosk, *, on_start: Callable[[], Awaitable[None]] | None = None,
               on_stop: Callable[[], Awaitable[None]] | None = None, api_docs: bool = False) -> FastAPI:
    """The app. ``api_docs`` serves /docs, /redoc and /openapi.json (the demo and development only:
    a production station exposes no debug endpoints, T-H2)."""
    i18n.load_catalogs()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if on_start:
            await on_start()
        try:
            yield
        finally:
            if on_stop:
                await on_stop()

    docs = {} if api_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="postkiosk", version="0.1.0", lifespan=lifespan,
                  description="Touchscreen pages and JSON API of a community postal service point.", **docs)
    app.state.kiosk = kiosk
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             extensions=["jinja2.ext.i18n"])
    env.install_gettext_callables(gettext=lambda m, **kw: i18n._(m, **kw),  # type: ignore[attr-defined]
                                  ngettext=lambda s, p, n, **kw: i18n.ngettext(s, p, n, **kw), newstyle=True)
    env.filters.update(i18n.jinja_filters(kiosk.timezone))  # money, date, time, datetime, local_time
    env.globals["problem"] = problems.problem
    env.globals["payment_problem"] = problems.payment_problem
    templates = Jinja2Templates(env=env)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def maintenance(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if kiosk.maintenance is None or path.startswith(("/static/", "/healthz", "/lang/", "/api/voice")):
            return await call_next(request)
        if path.startswith("/api/"):
            status, body = describe(StorageError(kiosk.maintenance))
            return JSONResponse(body, status_code=status)
        response = page(request, "maintenance.html")
        response.status_code = 503
        return response

    @app.middleware("http")
    async def language(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        token = i18n.set_language(request.cookies.get(LANG_COOKIE, i18n.DEFAULT))
        try:
            return await call_next(request)
        finally:
            i18n._current.reset(token)

    @app.exception_handler(CustodyError)
    @app.exception_handler(SessionRequired)
    @app.exception_handler(StaffLoginFailed)
    @app.exception_handler(TerminalBusy)
    async def domain_error(request: Request, err: Exception) -> JSONResponse:
        status, body = describe(err)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in e.get("loc", ())[1:]) for e in err.errors()]
        return JSONResponse({"error": "invalid_request", "fields": fields,
                             "message": _("Some fields are missing or not right: %(fields)s",
                                          fields=", ".join(fields))}, status_code=422)

    def page(request: Request, template: str, **context: Any) -> HTMLResponse:
        screen = kiosk.terminal.screen if kiosk.terminal else Screen()
        session = kiosk.sessions.get(request.cookies.get(SESSION_COOKIE))
        large = request.cookies.get(LARGE_COOKIE) == "1" or screen.large_print or bool(context.get("large_print"))
        context["large_print"] = large
        return templates.TemplateResponse(request, template, {
            "opening_hours": kiosk.opening_hours, "large_switch": request.cookies.get(LARGE_COOKIE) == "1",
            "idle_seconds": round(kiosk.idle_seconds * (2 if large else 1)),
            "screen": screen, "station": kiosk.station_name, "station_phone": kiosk.station_phone,
            "lang": i18n.language(), "html_lang": i18n.html_lang(), "languages": i18n.LANGUAGES,
            "session": session, "sizes": SIZES, "path": request.url.path, **context})

    add_technician_routes(app, page)
    add_posting_routes(app, page, kiosk)
    add_payment_routes(app, page, kiosk)
    add_close_routes(app, page, kiosk)
    add_voice_routes(app, kiosk)
    add_queue_routes(app, page, kiosk)

    # ---------------------------------------------------------------- pages

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        screen = kiosk.terminal.screen
        template = {"door": "door.html", "result": "result.html"}.get(screen.name, "home.html")
        receipt = None
        if screen.result == "posted" and kiosk.posting is not None and (screen.detail or {}).get("waybill"):
            receipt = await kiosk.posting.receipt_for(str((screen.detail or {})["waybill"]))
        return page(request, template, receipt=receipt, bills_offered=kiosk.bills is not None)

    @app.get("/pickup", response_class=HTMLResponse, include_in_schema=False)
    async def pickup_page(request: Request) -> Response:
        if kiosk.terminal.screen.name != "home":
            return RedirectResponse("/", status_code=303)
        return page(request, "pickup.html", paused=round(await kiosk.custody.keypad_pause_left()))

    @app.get("/courier", response_class=HTMLResponse, include_in_schema=False)
    async def courier_page(request: Request) -> Response:
        if kiosk.terminal.busy:
            return RedirectResponse("/", status_code=303)
        if kiosk.sessions.get(request.cookies.get(SESSION_COOKIE), roles=("courier",)):
            return RedirectResponse("/courier/deposit", status_code=303)
        return page(request, "courier_login.html")

    @app.get("/courier/deposit", response_class=HTMLResponse, include_in_schema=False)
    async def deposit_page(request: Request) -> Response:
        if kiosk.terminal.busy:
            return RedirectResponse("/", status_code=303)
        if not kiosk.sessions.get(request.cookies.get(SESSION_COOKIE), roles=("courier",)):
            return RedirectResponse("/courier", status_code=303)
        return page(request, "deposit.html")

    @app.get("/courier/retrieve", response_class=HTMLResponse, include_in_schema=False)
    async def retrieve_page(request: Request) -> Response:
        if kiosk.terminal.busy:
            return RedirectResponse("/", status_code=303)
        session = kiosk.sessions.get(request.cookies.get(SESSION_COOKIE), roles=("courier",))
        if not session:
            return RedirectResponse("/courier", status_code=303)
        return page(request, "retrieve.html", parcels=await kiosk.custody.retrievals(session.courier),
                    outbound=await kiosk.custody.collections(session.courier))

    @app.get("/problem/{key}", response_class=HTMLResponse, include_in_schema=False)
    async def problem_page(request: Request, key: str) -> HTMLResponse:
        """One problem from the table: what happened, what to do now, the station's phone."""
        found = problems.problem(key)
        if found is None:
            response = page(request, "problem.html", p=problems.problem("network_down"))
            response.status_code = 404
            return response
        return page(request, "problem.html", p=found)

    @app.get("/help", response_class=HTMLResponse, include_in_schema=False)
    async def help_page(request: Request) -> HTMLResponse:
        return page(request, "help.html")

    @app.get("/large/{state}", include_in_schema=False)
    async def switch_large_print(state: str, next: str = "/") -> RedirectResponse:
        """Large print on or off for this kiosk until the next idle reset (长辈模式)."""
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        if state == "on":
            response.set_cookie(LARGE_COOKIE, "1", samesite="strict", httponly=True)
        else:
            response.delete_cookie(LARGE_COOKIE)
        return response

    @app.get("/lang/{locale}", include_in_schema=False)
    async def switch_language(locale: str, next: str = "/") -> RedirectResponse:
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(LANG_COOKIE, i18n.pick(locale), samesite="strict", httponly=True)
        return response

    # ---------------------------------------------------------------- health

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """200 once the database is open and every lock board has answered; 503 before that."""
        custody = kiosk.custody
        if kiosk.maintenance is not None:
            return JSONResponse({"status": "maintenance", "reason": kiosk.maintenance}, status_code=503)
        if custody is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        boards = {f"{name}:{board}": custody.doors.failures.get((name, board), 0) == 0
                  for name, bank in custody.doors.banks.items() for board in bank.profile.boards}
        ok = custody.ready and all(boards.values())
        status = "ok" if ok else ("starting" if not custody.ready else "lock board not answering")
        return JSONResponse({"status": status, "database": custody.ready, "boards": boards},
                            status_code=200 if ok else 503)

    # ---------------------------------------------------------------- courier API

    @app.post("/api/courier/session", tags=["courier"])
    async def courier_login(body: LoginIn) -> JSONResponse:
        """Log a courier in with their courier number and PIN. Sets the session cookie and returns
        the token for API clients (``Authorization: Bearer``). Sessions end after 120 s idle."""
        courier = await kiosk.custody.login(body.login.strip(), body.pin.strip(), roles=("courier",))
        session = kiosk.sessions.create(courier)
        response = JSONResponse({"token": session.token, "courier": {"login": courier.login, "name": courier.name,
                                 "carrier": courier.carrier}, "idle_timeout": kiosk.sessions.idle_seconds})
        response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict")
        return response

    @app.delete("/api/courier/session", tags=["courier"])
    async def courier_logout(request: Request, session: CourierSession) -> JSONResponse:
        kiosk.sessions.end(session.token)
        response = JSONResponse({"ok": True})
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.post("/api/deposits", status_code=201, tags=["courier"])
    async def create_deposit(body: DepositIn, session: CourierSession) -> dict[str, Any]:
        """Reserve the smallest free compartment that fits and open it. The deposit completes when
        the door is seen closed with the parcel inside (see ``GET /api/deposits/{id}`` and the
        ``screen`` events); the pickup notice is sent then."""
        if kiosk.terminal.busy:
            raise TerminalBusy()
        ticket = await kiosk.custody.start_deposit(session.courier, tracking=body.tracking, phone=body.phone,
                                                   size=body.size, consent=body.consent,
                                                   locker_is_address=body.locker_is_address)
        kiosk.terminal.door_flow("deposit", ticket)
        return {"parcel_id": ticket.parcel_id, "compartment": ticket.compartment, "size": ticket.size,
                "state": "depositing"}

    @app.get("/api/deposits/{parcel_id}", tags=["courier"])
    async def deposit_state(parcel_id: int, session: CourierSession) -> dict[str, Any]:
        """Where one of your deposits stands. Other couriers' parcels are not shown (403)."""
        state = await kiosk.custody.parcel_state(parcel_id, courier=session.courier)
        rows = await kiosk.custody.compartments(session.courier)
        for row in rows:
            if row["parcel"] and row["parcel"]["id"] == parcel_id:
                return {"parcel_id": parcel_id, "compartment": row["label"], "state": state, "door": row["door"]}
        return {"parcel_id": parcel_id, "state": state}

    @app.post("/api/deposits/{parcel_id}/cancel", tags=["courier"])
    async def cancel_deposit(parcel_id: int, session: CourierSession) -> dict[str, Any]:
        """Give up a deposit: nothing is stored and the compartment is freed."""
        label = await kiosk.custody.cancel_deposit(session.courier, parcel_id)
        if kiosk.terminal.screen.parcel_id == parcel_id:
            kiosk.terminal.show_result("deposit_cancelled", "warn", flow="deposit", compartment=label,
                                       reason="cancelled_by_courier")
        return {"parcel_id": parcel_id, "state": "cancelled", "compartment": label}

    @app.get("/api/retrievals", tags=["courier"])
    async def retrievals(session: CourierSession) -> list[dict[str, Any]]:
        """Your parcels to take back: refused by the recipient, or past the return deadline."""
        return await kiosk.custody.retrievals(session.courier)

    @app.post("/api/retrievals/{parcel_id}", tags=["courier"])
    async def retrieve(parcel_id: int, session: CourierSession) -> dict[str, Any]:
        """Open the compartment of one of your parcels to take back; it is returned to you when the
        door closes with the compartment empty."""
        if kiosk.terminal.busy:
            raise TerminalBusy()
        ticket = await kiosk.custody.start_retrieval(session.courier, parcel_id)
        kiosk.terminal.door_flow("retrieve", ticket)
        return {"parcel_id": parcel_id, "compartment": ticket.compartment, "state": "retrieving"}

    @app.post("/api/parcels/{parcel_id}/notice", tags=["courier"])
    async def resend_notice(parcel_id: int, session: CourierSession) -> dict[str, Any]:
        """Send the pickup notice of your stored parcel again (with a fresh code)."""
        await kiosk.custody.resend_notice(session.courier, parcel_id)
        return {"parcel_id": parcel_id, "notice": "sending"}

    @app.get("/api/compartments", tags=["courier"])
    async def compartments(session: CourierSession) -> list[dict[str, Any]]:
        """Every compartment with its live door state; parcel details only for your own parcels."""
        return await kiosk.custody.compartments(session.courier)

    # ---------------------------------------------------------------- resident API

    @app.post("/api/pickups", tags=["resident"])
    async def pickup(body: PickupIn) -> dict[str, Any]:
        """Open the door of the parcel this code belongs to. Wrong codes are counted station-wide;
        after 5 in a row the keypad pauses for 30 s (HTTP 429 with ``retry_after``)."""
        if kiosk.terminal.busy:
            raise TerminalBusy()
        try:
            if body.token:
                ticket = await kiosk.custody.pickup(token=body.token)
            else:
                ticket = await kiosk.custody.pickup(body.code or "")
        except FeeDue as err:
            if kiosk.pay.offer_fee(err):
                err.pay_url = "/fee"  # type: ignore[attr-defined]
            raise
        kiosk.terminal.door_flow("pickup", ticket)
        return {"compartment": ticket.compartment, "state": "door_opening"}

    @app.post("/api/screen/refuse", tags=["resident"])
    async def refuse(body: RefuseIn) -> dict[str, Any]:
        """Refuse the parcel whose door is open on screen (inspect and refuse, rule R5). Put it back
        and close the door: it goes back to its courier."""
        screen = kiosk.terminal.screen
        if screen.name != "door" or screen.flow != "pickup" or screen.parcel_id is None:
            raise FlowConflict("no pickup door is open")
        label = await kiosk.custody.refuse(screen.parcel_id, body.reason)
        return {"compartment": label, "state": "refusing"}

    @app.get("/api/screen", tags=["resident"])
    async def screen() -> dict[str, Any]:
        """The screen the kiosk shows now."""
        return kiosk.terminal.screen.public()

    @app.post("/api/screen/dismiss", tags=["resident"])
    async def dismiss() -> dict[str, Any]:
        """Leave a result screen."""
        kiosk.terminal.dismiss()
        return kiosk.terminal.screen.public()

    @app.get("/api/events", response_class=EventSourceResponse, tags=["resident"])
    async def events(request: Request, page: Annotated[str | None, Query(max_length=32)] = None,
                     ) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events: ``screen`` (the screen changed) and ``door`` (a door moved), and
        ``alarm``. The current screen is sent first, so a reconnecting page catches up.

        ``page`` names the page that listens (``kiosk.scans.PAGES``): scanned codes are routed to the
        page on show, which alone gets ``scan`` (a waybill number for the deposit page) and
        ``scan_rejected`` (why a read does not fit the page), with ``message`` in its language."""
        courier = kiosk.sessions.get(request.cookies.get(SESSION_COOKIE), roles=("courier",)) is not None
        locale = i18n.pick(request.cookies.get(LANG_COOKIE))
        queue = kiosk.terminal.subscribe(page=scans.listening_page(page, courier=courier))
        try:
            yield ServerSentEvent(event="screen", data=kiosk.terminal.screen.public())
            while True:
                try:
                    event, data = await asyncio.wait_for(queue.get(), timeout=5.0)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    continue
                yield ServerSentEvent(event=event, data=scans.localise(data, locale))
        finally:
            kiosk.terminal.unsubscribe(queue)

    return app
