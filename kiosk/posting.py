"""The posting pages and API: a resident posts a parcel; couriers collect outbound mail.

The flow's state lives in ``lockers.posting.PostingDesk``; these routes show it and pass on what
the resident tapped or typed. Responses carry no ID number and no full phone number, except the
recipient fields the resident is typing (``/api/posting/parse`` echoes them back for editing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from kiosk.errors import TerminalBusy
from kiosk.sessions import RequireRole, Session
from lockers.catalogue import ITEM_CATEGORIES, load_catalogue
from lockers.custody import INSPECTION_REASONS, SIZES
from lockers.errors import FlowConflict

if TYPE_CHECKING:
    from kiosk.app import Kiosk

CourierSession = Annotated[Session, Depends(RequireRole("courier"))]


class AgreeIn(BaseModel):
    agreed: bool = Field(description="the resident read the notice on why the ID card is read, and agreed")


class LineIn(BaseModel):
    text: str = Field(max_length=400, description="one pasted or dictated line: name, phone, address")


class RecipientIn(BaseModel):
    name: str = Field("", max_length=40)
    phone: str = Field("", max_length=32)
    province: str = Field("", max_length=20)
    city: str = Field("", max_length=30)
    district: str = Field("", max_length=30)
    street: str = Field("", max_length=120)
    sender_phone: str | None = Field(None, max_length=32, description="the sender's phone; empty keeps the "
                                     "one remembered from the resident's last posting")
    from_posting: int | None = Field(None, description="reuse a recent recipient (GET /api/posting/recipients)")


class ItemIn(BaseModel):
    category: str = Field(max_length=32)
    quantity: int = Field(1, ge=1, le=99)
    declared: bool = Field(description="the resident declares the item holds nothing from the prohibited list")
    size: str | None = Field(None, description="compartment size for the drop-off: " + ", ".join(SIZES))


class InspectionIn(BaseModel):
    passed: bool
    reason: str | None = Field(None, description="when refused: " + ", ".join(INSPECTION_REASONS))


def add_posting_routes(app: FastAPI, page: Callable[..., HTMLResponse], kiosk: Kiosk) -> None:
    """Pages ``/post`` and ``/post/catalogue``; API under ``/api/posting`` (resident) and
    ``/api/collections`` (couriers)."""

    def desk() -> Any:
        if kiosk.posting is None:
            raise FlowConflict("posting is not set up at this station")
        return kiosk.posting

    @app.get("/post", response_class=HTMLResponse, include_in_schema=False)
    async def post_page(request: Request) -> Response:
        if kiosk.terminal.busy:
            return RedirectResponse("/", status_code=303)
        if kiosk.posting is None:
            return RedirectResponse("/", status_code=303)
        view = await kiosk.posting.view()
        available, reason = (True, None)
        if view["step"] == "notice":
            available, reason = await kiosk.posting.availability()
        recent = await kiosk.posting.recent_recipients() if view["step"] == "recipient" else []
        return page(request, "post.html", view=view, available=available, unavailable=reason, recent=recent,
                    categories=ITEM_CATEGORIES, retention_days=round(kiosk.posting.settings.id_retention_days),
                    large_print=bool(view.get("elderly")))

    @app.get("/post/catalogue", response_class=HTMLResponse, include_in_schema=False)
    async def catalogue_page(request: Request) -> HTMLResponse:
        return page(request, "catalogue.html", catalogue=load_catalogue())

    @app.get("/api/posting", tags=["resident"])
    async def posting_state() -> dict[str, Any]:
        """The posting on the kiosk now (masked), or ``step: notice`` when none is under way."""
        view = await desk().view()
        view.pop("receipt", None)
        return view

    @app.post("/api/posting", tags=["resident"])
    async def begin_posting(body: AgreeIn) -> dict[str, Any]:
        """Start a posting after the resident agreed to the notice; only now is the card reader
        asked for a card (T-E4). Refused (503) while the surveillance camera is down (R4)."""
        if kiosk.terminal.busy:
            raise TerminalBusy()
        return await desk().begin(agreed=body.agreed)

    @app.post("/api/posting/parse", tags=["resident"])
    async def parse_line(body: LineIn) -> dict[str, Any]:
        """Name, phone and address fields from one pasted or dictated line (nothing is stored)."""
        return await desk().parse(body.text)

    @app.get("/api/posting/recipients", tags=["resident"])
    async def recent_recipients() -> list[dict[str, Any]]:
        """The resident's recent recipients, masked."""
        return await desk().recent_recipients()

    @app.post("/api/posting/recipient", tags=["resident"])
    async def set_recipient(body: RecipientIn) -> dict[str, Any]:
        return await desk().set_recipient(**body.model_dump())

    @app.post("/api/posting/item", tags=["resident"])
    async def set_item(body: ItemIn) -> dict[str, Any]:
        """Category, quantity and the self-declaration (R15). A prohibited category ends the posting."""
        return await desk().set_item(**body.model_dump())

    @app.post("/api/posting/weigh", tags=["resident"])
    async def weigh_again() -> dict[str, Any]:
        return await desk().weigh_again()

    @app.post("/api/posting/confirm", tags=["resident"])
    async def confirm() -> dict[str, Any]:
        """Accept the price shown: pay, draw the waybill number, print the label, open a door."""
        return await desk().confirm()

    @app.post("/api/posting/pay", tags=["resident"])
    async def pay_by_code() -> dict[str, Any]:
        """Pay with a payment code: the screen asks for the code; nothing is charged until one is
        scanned. With no network the answer says so (``message: payments_offline``)."""
        view = await desk().choose_code_payment()
        if view.get("paying") == "scan":
            kiosk.pay.asking = "posting"  # a payment code read now is for this posting
        return view

    @app.post("/api/posting/pay/back", tags=["resident"])
    async def pay_back() -> dict[str, Any]:
        """Back to the price (not while a charge is under way)."""
        return await desk().back_to_price()

    @app.post("/api/posting/dropoff", tags=["resident"])
    async def dropoff_again() -> dict[str, Any]:
        """Open a drop-off door again (after a door that was closed without the parcel)."""
        if kiosk.terminal.busy:
            raise TerminalBusy()
        await desk().dropoff()  # the desk puts the door on screen (PostingDesk.on_door)
        return await desk().view()

    @app.post("/api/posting/cancel", tags=["resident"])
    async def cancel() -> dict[str, Any]:
        """Give up before paying: the posting ends and keeps no personal data."""
        await desk().cancel()
        return await desk().view()

    @app.get("/api/posting/label.png", tags=["resident"], response_class=Response)
    async def label_preview() -> Response:
        """The label of the posting on screen: the same 1-bit image the printer gets."""
        return Response(await desk().label_preview(), media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    # ---------------------------------------------------------------- couriers collect outbound mail

    @app.get("/api/collections", tags=["courier"])
    async def collections(session: CourierSession) -> list[dict[str, Any]]:
        """Outbound parcels waiting for collection (couriers of the carriers that collect here)."""
        return await kiosk.custody.collections(session.courier)

    @app.post("/api/collections/{parcel_id}", tags=["courier"])
    async def collect(parcel_id: int, session: CourierSession) -> dict[str, Any]:
        """Open the compartment of an outbound parcel. Inspect the item at the open door
        (``/inspection``), take it and close the door."""
        if kiosk.terminal.busy:
            raise TerminalBusy()
        ticket = await kiosk.custody.start_collection(session.courier, parcel_id)
        kiosk.terminal.door_flow("collect", ticket)
        return {"parcel_id": parcel_id, "compartment": ticket.compartment, "state": "collecting"}

    @app.post("/api/collections/{parcel_id}/inspection", tags=["courier"])
    async def inspection(parcel_id: int, body: InspectionIn, session: CourierSession) -> dict[str, Any]:
        """Record the inspection of the item at the open door (收寄验视): passed, or refused with
        the reason."""
        label = await kiosk.custody.record_inspection(session.courier, parcel_id, passed=body.passed,
                                                      reason=body.reason)
        return {"parcel_id": parcel_id, "compartment": label, "inspection": "passed" if body.passed else body.reason}
