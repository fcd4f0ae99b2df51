"""The daily close (日终轧帐) for station staff: run it, read it on screen, print it, take the CSV.

Every route declares the ``staff`` role. The report comes from ``lockers.station_ledger.DailyClose``:
every payment order of the day checked with the gateway, the prepaid balance and the commissions; a
mismatch is shown flagged, and nothing is ever adjusted here. Running the close again stores a new
version and keeps the earlier ones.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from kiosk.sessions import SESSION_COOKIE, RequireRole, Session
from lockers.errors import FlowConflict, InvalidInput

if TYPE_CHECKING:
    from kiosk.app import Kiosk

StaffSession = Annotated[Session, Depends(RequireRole("staff"))]
DayQuery = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="local day, YYYY-MM-DD (default today)")]


class CloseIn(BaseModel):
    day: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="local day (default today)")


class TopUpIn(BaseModel):
    amount_fen: int = Field(gt=0, le=100_000_000)
    reference: str = Field(min_length=1, max_length=64, description="the transfer's or receipt's reference")


def add_close_routes(app: FastAPI, page: Any, kiosk: Kiosk) -> None:
    def closer() -> Any:
        if kiosk.daily_close is None:
            raise FlowConflict("the daily close is not set up at this station")
        return kiosk.daily_close

    def day_of(day: str | None) -> str:
        if day is None:
            return dt.datetime.now(ZoneInfo(kiosk.timezone)).date().isoformat()
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            raise InvalidInput("day", "the day is a real date, YYYY-MM-DD") from None
        return day

    async def latest(day: str) -> Any:
        report = await closer().latest(day)
        if report is None:
            raise FlowConflict(f"no close of {day} yet")
        return report

    @app.get("/staff/close", response_class=HTMLResponse, include_in_schema=False)
    async def close_page(request: Request, day: DayQuery = None) -> Response:
        session = kiosk.sessions.get(request.cookies.get(SESSION_COOKIE), roles=("staff",))
        if session is None or kiosk.daily_close is None:
            return page(request, "close.html", logged_in=session is not None, report=None, day=None,
                        balance=None, ready=kiosk.daily_close is not None)
        d = day_of(day)
        report = await kiosk.daily_close.latest(d)
        return page(request, "close.html", logged_in=True, report=report.to_dict() if report else None, day=d,
                    balance=await kiosk.daily_close.ledger.balance(), ready=True, attention=await attention())

    @app.post("/api/staff/close", tags=["staff"])
    async def run_close(body: CloseIn, session: StaffSession) -> dict[str, Any]:
        """Run the close of a day (a new version; earlier ones are kept). ``ok`` is false and
        ``mismatches`` lists what does not agree; nothing is adjusted."""
        return (await closer().run(day_of(body.day), actor=session.account.login)).to_dict()

    @app.get("/api/staff/close", tags=["staff"])
    async def show_close(session: StaffSession, day: DayQuery = None) -> dict[str, Any]:
        """The latest close of a day."""
        return (await latest(day_of(day))).to_dict()

    @app.get("/api/staff/close.csv", tags=["staff"])
    async def close_csv(session: StaffSession, day: DayQuery = None) -> Response:
        """The latest close of a day as CSV (UTF-8 with BOM, for spreadsheet programs)."""
        report = await latest(day_of(day))
        name = f"close-{report.station_id}-{report.day}-v{report.version}.csv"
        return Response(report.to_csv(), media_type="text/csv; charset=utf-8",
                         headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/api/staff/close/print", tags=["staff"])
    async def close_print(session: StaffSession, day: DayQuery = None) -> dict[str, Any]:
        """Print the latest close of a day on the receipt printer."""
        report = await latest(day_of(day))
        printer = kiosk.receipt_printer
        if printer is None:
            raise FlowConflict("this station has no receipt printer")
        status = await printer.status()
        if not status.ready:
            raise FlowConflict("the receipt printer is not ready (paper, cover)")
        await printer.print_job(report.to_receipt_parts())
        return {"printed": True, "day": report.day, "version": report.version}

    async def attention() -> dict[str, Any]:
        orders = await kiosk.payments.needing_staff() if kiosk.payments is not None else []
        bills = await kiosk.bills.needing_staff() if kiosk.bills is not None else []
        return {"orders": [{"order_no": o.order_no, "state": o.state, "channel": o.channel, "last4": o.last4,
                            "amount_fen": o.amount_fen, "purpose": o.purpose, "reason": o.reason} for o in orders],
                "bills": bills}

    @app.get("/api/staff/attention", tags=["staff"])
    async def needing_staff(session: StaffSession) -> dict[str, Any]:
        """Payments a person must look at: orders not settled yet or whose reverse keeps failing, and
        bills whose money was taken but whose credit or refund is not finished (masked)."""
        return await attention()

    @app.get("/api/staff/balance", tags=["staff"])
    async def balance(session: StaffSession) -> dict[str, Any]:
        """The station's prepaid balance (agency payments are refused when it cannot cover them)."""
        return {"balance_fen": await closer().ledger.balance()}

    @app.post("/api/staff/balance/top-ups", status_code=201, tags=["staff"])
    async def top_up(body: TopUpIn, session: StaffSession) -> dict[str, Any]:
        """Record a top-up of the prepaid balance by the staff member logged in."""
        ledger = closer().ledger
        await ledger.top_up(body.amount_fen, session.account.login, body.reference)
        return {"balance_fen": await ledger.balance()}
