"""The counter queue pages and API: a resident takes a ticket (priority for 60+ by ID card), staff call
tickets from their own screen, the home screen shows the number called and the expected wait.

The queue lives in ``lockers.queue.QueueDesk``; these routes show it and pass on what was tapped.
Resident routes: ``/queue``, ``/queue/ticket/{number}``, ``/api/queue`` (the home screen's board),
``/api/queue/tickets`` (a normal ticket), ``/api/queue/tickets/priority`` (60+ by ID card, after the
notice: T-E4), ``/api/queue/card`` (cancel the card read), ``/queue/staff`` (login form or the staff
screen) and ``POST /api/staff/session``. Every other route declares ``RequireRole("staff")``.
Responses hold ticket numbers only: nothing of the ID card leaves ``QueueDesk``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from kiosk.errors import TerminalBusy
from kiosk.i18n import _
from kiosk.sessions import SESSION_COOKIE, RequireRole, Session, log_in, log_out
from lockers.errors import FlowConflict, InvalidInput
from lockers.queue import AgeCheck, PrintOutcome, QueueDesk, QueueRefused, Ticket, qr_png

if TYPE_CHECKING:
    from kiosk.app import Kiosk

require_staff = RequireRole("staff")
StaffSession = Annotated[Session, Depends(require_staff)]
PRINT_PROBLEMS = ("no_printer", "not_ready", "failed")


class AgreeIn(BaseModel):
    agreed: bool = Field(description="the resident read why the ID card is read (only the age) and agreed")


class StaffLoginIn(BaseModel):
    login: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class CounterIn(BaseModel):
    counter: str = Field(min_length=1, max_length=16, description="the counter calling: '1', '窗口2'")


class StaffTicketIn(BaseModel):
    priority: bool = Field(False, description="a priority ticket (reason 'staff')")


def refusal(err: QueueRefused) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of a queue refusal (the queue's rows of the kiosk's error table)."""
    status, message = {
        "unknown_ticket": (404, _("There is no such ticket today.")),
        "full": (503, _("No more tickets can be issued today. Please ask the staff.")),
        "not_waiting": (409, _("This ticket has already been called.")),
        "not_called": (409, _("This ticket is not being called.")),
        "no_reader": (503, _("The ID card reader is not available. Please ask the staff for a priority ticket.")),
        "card_busy": (409, _("A card is being read. Please wait a moment.")),
    }.get(err.reason, (409, _("This step is already over.")))
    return status, {"error": err.code, "reason": err.reason, "message": message}


def age_message(check: AgeCheck) -> str:
    """What the resident reads after a priority request by card."""
    return {
        "priority": "",
        "not_elderly": _("The card shows you are under 60. You can take a normal ticket."),
        "no_card": _("No card was read. Please try again, or ask the staff."),
        "card_refused": _("This card cannot be used (for example, it has expired). Please ask the staff "
                          "for a priority ticket."),
        "card_rejected": _("This card cannot be read here. Please ask the staff for a priority ticket."),
        "reader_failed": _("The card reader is not working. Please ask the staff for a priority ticket."),
        "cancelled": "",
    }.get(check.outcome, "")


def minutes(seconds: int) -> int:
    """Whole minutes shown on screen: at least 1 while anyone waits ahead."""
    return 0 if seconds <= 0 else max(1, round(seconds / 60))


def add_queue_routes(app: FastAPI, page: Callable[..., HTMLResponse], kiosk: Kiosk) -> None:
    """Pages ``/queue``, ``/queue/ticket/{number}``, ``/queue/staff``; API under ``/api/queue`` and
    ``/api/staff/session``. Queue refusals get their own handler (more specific than CustodyError)."""

    async def queue_refused(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, QueueRefused)
        status, body = refusal(err)
        return JSONResponse(body, status_code=status)

    app.add_exception_handler(QueueRefused, queue_refused)

    def desk() -> QueueDesk:
        queue = getattr(kiosk, "queue", None)
        if queue is None:
            raise FlowConflict("the queue is not set up at this station")
        return queue

    async def issued(ticket: Ticket, printed: PrintOutcome) -> dict[str, Any]:
        q = desk()
        wait = await q.estimated_wait(ticket)
        return {"ticket": ticket.public(), "ahead": await q.ahead_of(ticket), "wait_seconds": wait,
                "wait_minutes": minutes(wait), "qr": q.qr_text(ticket),
                "print": {"printed": printed.printed, "problem": printed.problem, "reasons": list(printed.reasons)},
                "url": f"/queue/ticket/{ticket.number}" + ("" if printed.printed else f"?print={printed.problem}")}

    # ---------------------------------------------------------------- resident pages

    @app.get("/queue", response_class=HTMLResponse, include_in_schema=False)
    async def queue_page(request: Request, step: str = "") -> Response:
        queue = getattr(kiosk, "queue", None)
        if queue is None or kiosk.terminal.busy:
            return RedirectResponse("/", status_code=303)
        board = await queue.board()
        return page(request, "queue.html", step="priority" if step == "priority" else "choose",
                    board=board, wait_minutes=minutes(board["wait_seconds"]), reader=queue.reader is not None)

    @app.get("/queue/ticket/{number}", response_class=HTMLResponse, include_in_schema=False)
    async def ticket_page(request: Request, number: str, print: str = "") -> Response:
        queue = getattr(kiosk, "queue", None)
        if queue is None:
            return RedirectResponse("/", status_code=303)
        try:
            ticket = await queue.ticket(number)
        except (QueueRefused, InvalidInput):  # unknown, malformed or yesterday's: start again
            return RedirectResponse("/queue", status_code=303)
        wait = await queue.estimated_wait(ticket)
        qr = base64.b64encode(qr_png(queue.qr_text(ticket))).decode("ascii")
        return page(request, "queue.html", step="ticket", ticket=ticket, ahead=await queue.ahead_of(ticket),
                    wait_minutes=minutes(wait), qr_png=qr,
                    print_problem=print if print in PRINT_PROBLEMS else None)

    # ---------------------------------------------------------------- resident API

    @app.get("/api/queue", tags=["resident"])
    async def board() -> dict[str, Any]:
        """The home screen's board: the number called last (and at which counter), the waiting counts,
        and the expected wait of a ticket taken now (seconds and minutes)."""
        out = await desk().board()
        out["wait_minutes"] = minutes(out["wait_seconds"])
        return out

    @app.post("/api/queue/tickets", status_code=201, tags=["resident"])
    async def take_ticket() -> dict[str, Any]:
        """A normal ticket, printed on the receipt printer when one is ready (shown on screen anyway)."""
        q = desk()
        ticket = await q.take(False)
        return await issued(ticket, await q.print_ticket(ticket))

    @app.post("/api/queue/tickets/priority", tags=["resident"])
    async def take_priority_ticket(body: AgreeIn) -> JSONResponse:
        """A priority ticket for 60+: after the resident agreed to the notice, the ID card on the reader
        is read for the age only (nothing is kept). 201 with the ticket, or 200 with ``outcome`` (why
        not: ``not_elderly``, ``no_card``, ``card_refused``, ...) and ``message``. Waits for the card
        up to the configured time (30 s); ``DELETE /api/queue/card`` stops waiting."""
        q = desk()
        if kiosk.terminal.busy:
            raise TerminalBusy()
        posting = getattr(kiosk, "posting", None)
        if posting is not None and posting.live is not None:  # the posting flow has the card reader
            raise QueueRefused("card_busy")
        check = await q.take_by_age_card(agreed=body.agreed)
        if check.ticket is not None:
            return JSONResponse({"outcome": check.outcome, **await issued(check.ticket, await q.print_ticket(check.ticket))},
                                status_code=201)
        return JSONResponse({"outcome": check.outcome, "refusal": check.refusal, "message": age_message(check)})

    @app.delete("/api/queue/card", tags=["resident"])
    async def cancel_card() -> dict[str, Any]:
        """Stop waiting for an ID card (the resident tapped Cancel)."""
        return {"cancelled": desk().cancel_card()}

    # ---------------------------------------------------------------- staff

    @app.get("/queue/staff", response_class=HTMLResponse, include_in_schema=False)
    async def staff_page(request: Request) -> Response:
        session = kiosk.sessions.get(request.cookies.get(SESSION_COOKIE), roles=("staff",))
        if session is None:
            return page(request, "queue_staff.html", logged_in=False)
        return page(request, "queue_staff.html", logged_in=True, staff=session.account.name,
                    queue_ready=getattr(kiosk, "queue", None) is not None)

    @app.post("/api/staff/session", tags=["staff"])
    async def staff_login(request: Request, body: StaffLoginIn) -> JSONResponse:
        """Log station staff in (named accounts, role ``staff``). Sets the session cookie and returns
        the token (``Authorization: Bearer``). Sessions end after 120 s idle; 10 failed logins lock
        the account for 30 minutes."""
        return await log_in(request, kiosk, body.login, body.password, "staff")

    @app.delete("/api/staff/session", tags=["staff"])
    async def staff_logout(session: StaffSession) -> JSONResponse:
        return log_out(kiosk, session)

    @app.get("/api/queue/staff", tags=["staff"])
    async def staff_view(session: StaffSession) -> dict[str, Any]:
        """Tickets called now (per counter), waiting and skipped tickets in calling order, the counts,
        the average service time and the counters open."""
        q = desk()
        return {"called": [t.public() for t in await q.called()],
                "waiting_tickets": [t.public() for t in await q.waiting_tickets()],
                "waiting": await q.waiting(), "average_seconds": round(await q.average_service_seconds()),
                "counters": await q.open_counters(), "wait_seconds": await q.estimated_wait(None)}

    @app.post("/api/queue/call", tags=["staff"])
    async def call_next(body: CounterIn, session: StaffSession) -> dict[str, Any]:
        """Call the next ticket to ``counter`` (priority first); the ticket called there before is
        served. ``ticket`` is null when nobody waits."""
        ticket = await desk().call_next(body.counter, session.account.login)
        return {"ticket": ticket.public() if ticket else None}

    @app.post("/api/queue/finish", tags=["staff"])
    async def finish(body: CounterIn, session: StaffSession) -> dict[str, Any]:
        """The ticket called at ``counter`` is served; nothing else is called (a break, closing time)."""
        ticket = await desk().finish(body.counter, session.account.login)
        return {"ticket": ticket.public() if ticket else None}

    @app.post("/api/queue/tickets/{number}/recall", tags=["staff"])
    async def recall(number: str, body: CounterIn, session: StaffSession) -> dict[str, Any]:
        """Call a called or skipped ticket again, to ``counter``."""
        return {"ticket": (await desk().recall(number, body.counter, session.account.login)).public()}

    @app.post("/api/queue/tickets/{number}/skip", tags=["staff"])
    async def skip(number: str, session: StaffSession) -> dict[str, Any]:
        """The called resident did not come: set the ticket aside (recall brings it back)."""
        return {"ticket": (await desk().skip(number, session.account.login)).public()}

    @app.post("/api/queue/tickets/{number}/priority", tags=["staff"])
    async def override(number: str, session: StaffSession) -> dict[str, Any]:
        """Raise a waiting ticket to priority (staff override: a resident of 60+ without their card)."""
        return {"ticket": (await desk().override_priority(number, session.account.login)).public()}

    @app.post("/api/queue/staff/tickets", status_code=201, tags=["staff"])
    async def staff_ticket(body: StaffTicketIn, session: StaffSession) -> dict[str, Any]:
        """Issue a ticket from the staff screen (priority with reason ``staff`` when asked), printed on
        the kiosk's receipt printer."""
        q = desk()
        ticket = await q.take(body.priority, "staff" if body.priority else None)
        return await issued(ticket, await q.print_ticket(ticket))
