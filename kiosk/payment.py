"""Paying at the kiosk by showing a payment code: the storage-fee page, and the one hand-over of a
scanned payment code to whatever the screen is asking payment for (a posting, or a storage fee).

A payment code is read only while a page asks for one (``page=payment``: the posting's pay step or
the fee page in its scan state); the scanner router hands it to :meth:`PaymentHub.take`, which gives
it to the flow waiting for it. The code stays in memory for the pay call only: the payment desk keeps
the channel and its last 4 digits.

Storage fee (rule R8): a pickup code (typed or scanned) for a parcel past its free period raises
``FeeDue`` before anything moves. With payments available the fee page shows the amount and the end
of the free period; "Pay with my phone" asks for the payment code; the door opens only when the
payment is confirmed (``Custody.pickup_paid``), and a receipt is printed when the station has a
receipt printer. With no network no paid flow starts: the resident is sent to the counter.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from hal.codes import PaymentCode
from kiosk.errors import TerminalBusy
from lockers.bills import BILL_SERVICES, BillQuote
from lockers.custody import FEE_PURPOSE
from lockers.errors import CustodyError, FeeDue, FlowConflict
from lockers.payments import WALLET_NAMES_ZH, PaymentError, PaymentResult, PaymentsOffline
from lockers.station_ledger import fen_text

if TYPE_CHECKING:
    from kiosk.app import Kiosk

log = logging.getLogger(__name__)

#: how long an unpaid fee page waits before it forgets the fee (the code must be entered again)
FEE_PAGE_SECONDS = 300.0


@dataclass
class BillSession:
    """A bill the resident is paying now (a quote recorded masked; the number in memory only)."""

    quote: BillQuote
    started: float
    state: str = "scan"  # scan | charging | failed | done
    reason: str | None = None
    result: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        q = self.quote
        return {"service": q.service, "account": q.account_masked, "amount_fen": q.amount_fen,
                "state": self.state, "reason": self.reason, "result": self.result}


@dataclass
class FeeSession:
    """A fee the resident is paying now: from a pickup code found right (``ticket``), in memory only."""

    ticket: str
    reference: str
    fee_fen: int
    free_until: float
    started: float
    state: str = "confirm"  # confirm | scan | charging | failed
    reason: str | None = None

    def public(self) -> dict[str, Any]:
        return {"fee_fen": self.fee_fen, "free_until": self.free_until, "state": self.state, "reason": self.reason}


class PaymentHub:
    """The kiosk's payment side: the fee session, and where a scanned payment code goes."""

    def __init__(self, kiosk: Kiosk) -> None:
        self.kiosk = kiosk
        self.fee: FeeSession | None = None
        self.bill: BillSession | None = None
        #: which flow asked for a payment code last ("posting", "fee", "bill"): a code goes there first
        self.asking: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        payments = self.kiosk.payments
        return payments is not None and payments.is_online()

    # ------------------------------------------------------------------ storage fee

    def offer_fee(self, err: FeeDue) -> bool:
        """A pickup ran into a fee: keep it for the fee page (when payments are available and no
        charge is under way). True when the resident can pay here."""
        if err.ticket is None or err.reference is None or not self.available:
            return False
        if self.fee is not None and self.fee.state == "charging":
            return False
        self.fee = FeeSession(err.ticket, err.reference, err.fee_fen, err.free_until, time.monotonic())
        return True

    def current_fee(self) -> FeeSession | None:
        fee = self.fee
        if fee is not None and fee.state != "charging" and time.monotonic() - fee.started > FEE_PAGE_SECONDS:
            self.fee = fee = None
        return fee

    def ask_code(self) -> FeeSession:
        fee = self.current_fee()
        if fee is None:
            raise FlowConflict("no fee to pay (enter the pickup code again)")
        if not self.available:
            raise PaymentsOffline("payments are not available now")
        if fee.state != "charging":
            fee.state, fee.reason = "scan", None
        self.asking = "fee"
        return fee

    def cancel_fee(self) -> None:
        if self.fee is not None and self.fee.state == "charging":
            raise FlowConflict("a payment is under way: wait for its answer")
        self.fee = None

    async def _charge_fee(self, fee: FeeSession, auth_code: str) -> None:
        kiosk = self.kiosk
        assert kiosk.payments is not None
        try:
            result = await kiosk.payments.pay(FEE_PURPOSE, fee.reference, fee.fee_fen, auth_code, subject="保管费",
                                              on_paid=kiosk.custody.fee_paid_recorder(fee.ticket))
        except PaymentError as err:
            fee.state, fee.reason = "failed", err.code
            self._changed()
            return
        if not result.paid:
            fee.state = "failed"
            fee.reason = {"retry": "payment_unsettled", "refunded": "payment_refunded"}.get(
                result.state, result.reason or result.state)
            self._changed()
            return
        self.fee = None
        try:
            door = await kiosk.custody.pickup_paid(fee.ticket)
        except CustodyError as err:  # paid, but the door cannot open now: the code opens it later
            log.warning("fee paid, door not opened: %s", err.code)
            kiosk.terminal.show_result("fee_paid_door_later", "warn", flow="pickup")
        else:
            kiosk.terminal.door_flow("pickup", door)
        self._spawn_receipt(result, "保管费")

    # ------------------------------------------------------------------ bills (agency payments)

    async def quote_bill(self, service: str, account: str, amount_fen: int) -> BillSession:
        """Check the bill and the station's prepaid balance (refused at once when staff must top up),
        then ask for the payment code."""
        bills = self.kiosk.bills
        if bills is None:
            raise FlowConflict("bill payment is not offered at this station")
        if not self.available:
            raise PaymentsOffline("payments are not available now")
        if self.bill is not None and self.bill.state == "charging":
            raise FlowConflict("a payment is under way: wait for its answer")
        quote = await bills.quote(service, account, amount_fen)
        self.bill = BillSession(quote, time.monotonic())
        self.asking = "bill"
        return self.bill

    def current_bill(self) -> BillSession | None:
        bill = self.bill
        if bill is not None and bill.state != "charging" and time.monotonic() - bill.started > FEE_PAGE_SECONDS:
            self.bill = bill = None
        return bill

    def end_bill(self) -> None:
        if self.bill is not None and self.bill.state == "charging":
            raise FlowConflict("a payment is under way: wait for its answer")
        self.bill = None

    async def _charge_bill(self, bill: BillSession, auth_code: str) -> None:
        bills = self.kiosk.bills
        assert bills is not None
        try:
            result = await bills.pay(bill.quote, auth_code)
        except CustodyError as err:  # nothing was charged (an unknown wallet, offline, balance low...)
            bill.state, bill.reason = "failed", err.code
            self._changed_bill()
            return
        if result.state == "not_paid":
            bill.state, bill.reason = "failed", result.reason
        else:
            bill.state, bill.reason = "done", result.reason
            bill.result = {"state": result.state, "order_no": result.order_no, "receipt_no": result.receipt_no}
            if result.state == "credited" and result.payment is not None:
                self._spawn_receipt(result.payment, "代缴费用")
        self._changed_bill()

    def _changed_bill(self) -> None:
        bill = self.bill
        self.kiosk.terminal.publish("payment", bill.public() if bill else {"state": None})

    # ------------------------------------------------------------------ any payment code

    async def take(self, read: PaymentCode) -> None:
        """A payment code read while a page asks for one: to the flow that asked last (the posting's
        pay step, the fee, or the bill), else to whichever is waiting for one."""
        order = ["posting", "bill", "fee"]
        if self.asking in order:
            order.remove(self.asking)
            order.insert(0, self.asking)
        for flow in order:
            if flow == "posting":
                posting = self.kiosk.posting
                if posting is not None and posting.live is not None and posting.live.paying in ("scan", "failed"):
                    await posting.take_payment_code(read.code)
                    return
            elif flow == "bill":
                bill = self.current_bill()
                if bill is not None and bill.state in ("scan", "failed"):
                    bill.state, bill.reason = "charging", None
                    self._changed_bill()
                    self._task = asyncio.create_task(self._charge_bill(bill, read.code), name="bill-charge")
                    return
            else:
                fee = self.current_fee()
                if fee is not None and fee.state in ("scan", "failed"):
                    if self.kiosk.terminal.busy:
                        raise TerminalBusy()
                    fee.state, fee.reason = "charging", None
                    self._changed()
                    self._task = asyncio.create_task(self._charge_fee(fee, read.code), name="fee-charge")
                    return
        raise FlowConflict("nothing is waiting for a payment")

    def _changed(self) -> None:
        fee = self.fee
        self.kiosk.terminal.publish("payment", fee.public() if fee else {"state": None})

    # ------------------------------------------------------------------ receipts

    def _spawn_receipt(self, result: PaymentResult, what: str) -> None:
        printer = self.kiosk.receipt_printer
        if printer is None:
            return
        task = asyncio.create_task(print_payment_receipt(printer, self.kiosk, result, what), name="payment-receipt")
        task.add_done_callback(lambda t: t.cancelled() or t.exception() and log.warning(
            "payment receipt not printed: %s", type(t.exception()).__name__))


def receipt_lines(kiosk: Kiosk, result: PaymentResult, what: str, at: float | None = None) -> list[str]:
    """A payment receipt as text: station, what was paid, amount, wallet and last 4 digits, order
    number, time. Never the full payment code."""
    when = dt.datetime.fromtimestamp(at or time.time(), dt.timezone(dt.timedelta(hours=8)))
    return [kiosk.station_name, f"付款凭证  {when:%Y-%m-%d %H:%M}", f"项目 {what}",
            f"金额 {fen_text(result.amount_fen)} 元", f"{WALLET_NAMES_ZH.get(result.channel, result.channel)} "
            f"尾号{result.last4}", f"单号 {result.order_no}"]


async def print_payment_receipt(printer: Any, kiosk: Kiosk, result: PaymentResult, what: str) -> None:
    from hal.printer import QrCode

    status = await printer.status()
    if not status.ready:
        log.warning("payment receipt not printed: the receipt printer is not ready")
        return
    lines = receipt_lines(kiosk, result, what)
    await asyncio.wait_for(printer.print_job([*lines, QrCode(" ".join(lines[1:])), "请保留本凭证"]), timeout=30)


#: the amounts a resident picks from on the bill page (fen)
BILL_AMOUNTS_FEN = (3000, 5000, 10000, 20000)


class BillIn(BaseModel):
    service: str = Field(max_length=32, description="phone_bill, water_bill, electricity_bill or gas_bill")
    account: str = Field(max_length=40, description="the mobile number, or the utility account number")
    amount_fen: int = Field(gt=0, le=500_000)


def add_payment_routes(app: FastAPI, page: Any, kiosk: Kiosk) -> None:
    hub = kiosk.pay

    @app.get("/fee", response_class=HTMLResponse, include_in_schema=False)
    async def fee_page(request: Request) -> Response:
        fee = hub.current_fee()
        if fee is None:
            return RedirectResponse("/pickup", status_code=303)
        return page(request, "fee.html", fee=fee.public(), available=hub.available)

    @app.get("/api/fee", tags=["resident"])
    async def fee_state() -> dict[str, Any]:
        """The storage fee being paid now (amount, end of the free period, payment state), or 404."""
        fee = hub.current_fee()
        if fee is None:
            raise FlowConflict("no fee to pay (enter the pickup code again)")
        return fee.public()

    @app.post("/api/fee/pay", tags=["resident"])
    async def fee_pay() -> dict[str, Any]:
        """The resident agreed to pay the fee shown: the page now asks for the payment code."""
        return hub.ask_code().public()

    @app.get("/bills", response_class=HTMLResponse, include_in_schema=False)
    async def bills_page(request: Request) -> Response:
        if kiosk.bills is None or kiosk.terminal.busy:
            return RedirectResponse("/", status_code=303)
        bill = hub.current_bill()
        return page(request, "bills.html", bill=bill.public() if bill else None, available=hub.available,
                    services=list(BILL_SERVICES), amounts=BILL_AMOUNTS_FEN)

    @app.get("/api/bills", tags=["resident"])
    async def bill_state() -> dict[str, Any]:
        """The bill being paid now (service, masked account, amount, payment state), or 409."""
        bill = hub.current_bill()
        if bill is None:
            raise FlowConflict("no bill is being paid")
        return bill.public()

    @app.post("/api/bills", tags=["resident"])
    async def start_bill(body: BillIn) -> dict[str, Any]:
        """Check a bill (service, phone or account number, amount) and the station's prepaid balance;
        then the page asks for the payment code. Refused (409, ``prepaid_balance_low``) when the
        station's balance cannot cover it: staff must top up first."""
        if kiosk.terminal.busy:
            raise TerminalBusy()
        return (await hub.quote_bill(body.service, body.account, body.amount_fen)).public()

    @app.post("/api/bills/end", tags=["resident"])
    async def end_bill() -> dict[str, Any]:
        """Leave the bill (before paying: nothing is charged; after: the screen is done)."""
        hub.end_bill()
        return {"state": None}

    @app.post("/api/fee/cancel", tags=["resident"])
    async def fee_cancel() -> dict[str, Any]:
        """Leave the fee page without paying (nothing was charged; the code stays valid)."""
        hub.cancel_fee()
        return {"state": None}
