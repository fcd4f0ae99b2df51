"""Bill payment (代缴): a resident pays a phone, water, electricity or gas bill at the kiosk.

It is an **agency payment**: the resident pays the station by scanned code, the station's prepaid
balance pays the biller. The flow, and why each step is where it is:

1. :meth:`BillDesk.quote` checks the account and the amount and refuses at once when the prepaid
   balance cannot cover it (:class:`~lockers.station_ledger.InsufficientPrepaidBalance`), before the
   resident scans anything;
2. :meth:`BillDesk.pay` charges the resident through :class:`~lockers.payments.PaymentDesk` (purpose
   ``bill``, reference ``bill-<id>``). The prepaid debit, the commission and the bill's ``paid`` state
   are committed in the very transaction that commits the payment (``on_paid``);
3. then the :class:`Biller` credits the resident's account. A definite refusal gives the prepaid
   balance back and refunds the resident (``PaymentDesk.refund_paid``); an unclear answer
   (timeout, error) is **not** refunded, since the biller may have credited: the bill is left
   ``credit_unknown`` for staff to settle with the biller, and the daily close shows the order.

Phone and account numbers are personal data: only a masked form and a keyed HMAC are stored (the
HMAC lets staff find a resident's earlier bills when the resident gives the number again); the
number itself lives only in memory for the biller call, and the quote's repr hides it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from lockers import journal
from lockers.db import Database
from lockers.errors import CustodyError, FlowConflict, InvalidInput
from lockers.keys import DeviceKeys
from lockers.payments import PaymentDesk, PaymentResult
from lockers.personal import mask_phone, normalize_phone
from lockers.station_ledger import StationLedger

log = logging.getLogger(__name__)

PURPOSE = "bill"
#: bill services and the kind of number each is paid to
BILL_SERVICES: Mapping[str, str] = MappingProxyType({
    "phone_bill": "phone",
    "water_bill": "account",
    "electricity_bill": "account",
    "gas_bill": "account",
})
#: a bill above this is refused as a typing slip (fen; 5,000 yuan)
MAX_BILL_FEN = 500_000
BILLER_OUTCOMES = frozenset({"credited", "failed", "unknown"})
_ACCOUNT_RE = re.compile(r"[0-9A-Z]{6,30}")
#: bill states a person must look at: money taken, the credit or the refund not finished
NEEDS_STAFF = ("paid", "credit_unknown", "refund_pending")


class BillError(CustodyError):
    """Root of the bill-payment errors."""

    code = "bill"


@dataclass(frozen=True)
class BillerAnswer:
    """What a biller said about one credit. ``credited`` (definite, ``receipt_no`` is the biller's
    number), ``failed`` (definite: nothing credited, ``reason`` a protocol code), ``unknown``."""

    outcome: str
    reason: str | None = None
    receipt_no: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in BILLER_OUTCOMES:
            raise ValueError(f"unknown biller outcome {self.outcome!r}")


class Biller(Protocol):
    """Credits a resident's account at the phone company or utility (structural interface).

    ``credit`` must be idempotent per ``order_no`` (a repeated call credits once), answer
    ``credited`` only on a definite success and ``unknown`` whenever it cannot tell."""

    async def credit(self, service: str, account: str, amount_fen: int, order_no: str) -> BillerAnswer: ...

    async def status(self, order_no: str) -> BillerAnswer:
        """What became of the credit of ``order_no``: ``credited``, ``failed`` (never credited: the
        biller has no such credit), or ``unknown``. Billers answer this by the payer's order number."""
        ...


class LogBiller:
    """Development and demo backend: logs the credit (account masked) and answers ``credited``.
    Nothing reaches a real biller; never configure it where residents pay real bills."""

    def __init__(self, keep: int = 20) -> None:
        self.recent: list[dict[str, Any]] = []
        self.keep = keep

    async def credit(self, service: str, account: str, amount_fen: int, order_no: str) -> BillerAnswer:
        masked = mask_account(BILL_SERVICES.get(service, "account"), account)
        self.recent = [*self.recent, {"service": service, "account": masked, "amount_fen": amount_fen,
                                      "order_no": order_no}][-self.keep:]
        log.info("bill %s for %s: %d fen credited (log biller, order %s)", service, masked, amount_fen, order_no)
        return BillerAnswer("credited", receipt_no=f"LOG-{order_no}")

    async def status(self, order_no: str) -> BillerAnswer:
        if any(r["order_no"] == order_no for r in self.recent):
            return BillerAnswer("credited", receipt_no=f"LOG-{order_no}")
        return BillerAnswer("unknown", reason="not_in_recent")


@dataclass
class SimulatedBiller:
    """An interface-level fake biller for tests and the demo: it keeps each account's credited total
    and answers as scripted (``script``: outcomes for the next calls, ``"error"`` raises a
    ``ConnectionError``; empty: ``credited``). Credits are idempotent per order number."""

    script: list[str] = field(default_factory=list)
    credited: dict[tuple[str, str], int] = field(default_factory=dict)
    orders: dict[str, BillerAnswer] = field(default_factory=dict)
    calls: int = 0

    async def credit(self, service: str, account: str, amount_fen: int, order_no: str) -> BillerAnswer:
        self.calls += 1
        if order_no in self.orders:
            return self.orders[order_no]
        step = self.script.pop(0) if self.script else "credited"
        if step == "error":
            raise ConnectionError("biller unreachable")
        if step == "failed":
            answer = BillerAnswer("failed", reason="ACCOUNT_CLOSED")
        elif step == "unknown":
            answer = BillerAnswer("unknown", reason="TIMEOUT")
        else:
            key = (service, account)
            self.credited[key] = self.credited.get(key, 0) + amount_fen
            answer = BillerAnswer("credited", receipt_no=f"B{len(self.orders) + 1:06d}")
        self.orders[order_no] = answer
        return answer

    async def status(self, order_no: str) -> BillerAnswer:
        self.calls += 1
        return self.orders.get(order_no) or BillerAnswer("failed", reason="NO_SUCH_CREDIT")

    def balance_of(self, service: str, account: str) -> int:
        return self.credited.get((service, account), 0)


def normalize_account(kind: str, raw: str) -> str:
    """A mobile number (``phone``) or a utility account number (``account``: 6 to 30 letters and
    digits, spaces and dashes dropped, capitals)."""
    if kind == "phone":
        return normalize_phone(raw)
    value = re.sub(r"[\s\-]", "", raw or "").upper()
    if not _ACCOUNT_RE.fullmatch(value):
        raise InvalidInput("account", "an account number has 6 to 30 letters and digits")
    return value


def mask_account(kind: str, value: str) -> str:
    """``138****5678`` for a phone, the last 4 characters for an account number."""
    if kind == "phone":
        return mask_phone(value)
    return "*" * max(0, len(value) - 4) + value[-4:]


@dataclass(frozen=True)
class BillQuote:
    """A bill ready to pay. ``account`` is the full number, kept in memory for the biller only."""

    bill_id: int
    service: str
    account_masked: str
    amount_fen: int
    commission_fen: int
    account: str = field(repr=False)

    @property
    def reference(self) -> str:
        return f"bill-{self.bill_id}"


@dataclass(frozen=True)
class BillResult:
    """Where a bill stands after :meth:`BillDesk.pay`. ``state``: ``credited`` (done), ``not_paid``
    (nothing kept: ``reason`` says why), ``refunded`` / ``refund_pending`` (the biller refused; the
    money goes back), ``credit_unknown`` (staff settle it with the biller)."""

    bill_id: int
    state: str
    account_masked: str
    amount_fen: int
    order_no: str | None = None
    reason: str | None = None
    receipt_no: str | None = None
    payment: PaymentResult | None = None


class BillDesk:
    """Bill payments at the kiosk, on a :class:`PaymentDesk` and a :class:`StationLedger`."""

    def __init__(self, db: Database, keys: DeviceKeys, payments: PaymentDesk, ledger: StationLedger, biller: Biller,
                 *, clock: Callable[[], float] = time.time, biller_timeout: float = 30.0) -> None:
        self.db = db
        self.keys = keys
        self.payments = payments
        self.ledger = ledger
        self.biller = biller
        self.clock = clock
        self.biller_timeout = biller_timeout

    async def quote(self, service: str, account: str, amount_fen: int) -> BillQuote:
        """Check the bill and the prepaid balance and record the bill (masked). Raises ``InvalidInput``
        for a bad service, number or amount, ``InsufficientPrepaidBalance`` when staff must top up."""
        kind = BILL_SERVICES.get(service)
        if kind is None:
            raise InvalidInput("service", f"bill services are {', '.join(BILL_SERVICES)}")
        number = normalize_account(kind, account)
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= MAX_BILL_FEN:
            raise InvalidInput("amount_fen", f"a bill is between 1 fen and {MAX_BILL_FEN // 100} yuan")
        commission = self.ledger.commissions.compute(service, amount_fen)
        await self.ledger.check_can_cover(amount_fen)
        masked = mask_account(kind, number)
        account_hmac = self.keys.mac("bill_account", f"{service}:{number}")

        def tx(conn: sqlite3.Connection) -> int:
            now = self.clock()
            cur = conn.execute(
                "INSERT INTO bill_payments (service, account_masked, account_hmac, amount_fen, state, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, 'quoted', ?, ?)", (service, masked, account_hmac, amount_fen, now, now))
            journal.append(conn, at=now, kind="bill_quoted", actor="resident", bill_id=cur.lastrowid, service=service,
                           account=masked, amount_fen=amount_fen)
            return int(cur.lastrowid)

        bill_id = await self.db.write(tx)
        return BillQuote(bill_id, service, masked, amount_fen, commission, number)

    async def pay(self, quote: BillQuote, auth_code: str) -> BillResult:
        """Charge the resident and credit the bill (see the module docstring). Payment errors raised
        before any charge (unknown code, offline...) propagate and leave the bill payable."""
        row = await self._row(quote.bill_id)
        if row is None or row["state"] != "quoted":
            raise FlowConflict(f"bill {quote.bill_id} is {row['state'] if row else 'unknown'}, not payable")
        await self.ledger.check_can_cover(quote.amount_fen)
        debit = self.ledger.agency_on_paid(quote.service, quote.amount_fen)

        def on_paid(conn: sqlite3.Connection, order: PaymentResult) -> None:
            debit(conn, order)
            cur = conn.execute("UPDATE bill_payments SET state = 'paid', order_no = ?, updated_at = ?"
                               " WHERE id = ? AND state = 'quoted'", (order.order_no, self.clock(), quote.bill_id))
            if cur.rowcount != 1:
                raise BillError(f"bill {quote.bill_id} changed while it was being paid")

        payment = await self.payments.pay(PURPOSE, quote.reference, quote.amount_fen, auth_code, quote.service,
                                          on_paid=on_paid)
        if not payment.paid:
            reason = payment.reason or payment.state
            await self._set(quote, "not_paid", reason=reason, order_no=payment.order_no)
            return self._result(quote, "not_paid", payment, reason=reason)
        answer = await self._credit(quote, payment.order_no)
        if answer.outcome == "credited":
            await self._set(quote, "credited", receipt=answer.receipt_no)
            return self._result(quote, "credited", payment, receipt_no=answer.receipt_no)
        if answer.outcome == "failed":
            return await self._give_back(quote, payment, answer.reason or "biller_failed")
        await self._set(quote, "credit_unknown", reason=answer.reason or "unknown", alert=True)
        log.error("bill %d: the biller's answer is unclear for order %s; staff must settle it", quote.bill_id,
                  payment.order_no)
        return self._result(quote, "credit_unknown", payment, reason=answer.reason or "unknown")

    async def recover(self) -> list[dict[str, Any]]:
        """At start-up: bills a power cut left ``paid`` (money taken, the credit's answer never
        recorded). The number is not kept, so the credit cannot be sent again; the biller is asked by
        order number instead: credited -> ``credited``; no such credit -> the balance and the payer
        are given their money back; unclear -> ``credit_unknown`` for staff. Returns what changed."""
        rows = await self.db.read(lambda c: c.execute(
            "SELECT * FROM bill_payments WHERE state = 'paid' AND order_no IS NOT NULL ORDER BY id").fetchall())
        changed = []
        for row in rows:
            quote = BillQuote(row["id"], row["service"], row["account_masked"], row["amount_fen"], 0, account="")
            try:
                answer = await asyncio.wait_for(self.biller.status(row["order_no"]), self.biller_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the biller could not tell: staff settle it
                answer = BillerAnswer("unknown", reason=type(err).__name__[:32])
            if answer.outcome == "credited":
                await self._set(quote, "credited", receipt=answer.receipt_no)
                state = "credited"
            elif answer.outcome == "failed":
                payment = await self.payments.order_for(PURPOSE, quote.reference)
                if payment is None or not payment.paid:
                    continue  # the payment desk is still settling it; the next start looks again
                state = (await self._give_back(quote, payment, "interrupted")).state
            else:
                await self._set(quote, "credit_unknown", reason=answer.reason or "unknown", alert=True)
                state = "credit_unknown"
            changed.append({"bill_id": row["id"], "order_no": row["order_no"], "state": state})
        return changed

    async def needing_staff(self) -> list[dict[str, Any]]:
        """Bills whose money was taken and whose credit or refund is not finished (masked)."""
        rows = await self.db.read(lambda c: c.execute(
            f"SELECT id, service, account_masked, amount_fen, state, order_no, reason, updated_at FROM bill_payments"
            f" WHERE state IN ({','.join('?' * len(NEEDS_STAFF))}) ORDER BY id", NEEDS_STAFF).fetchall())
        return [dict(r) for r in rows]

    # -- steps ----------------------------------------------------------------------------------------

    async def _credit(self, quote: BillQuote, order_no: str) -> BillerAnswer:
        try:
            return await asyncio.wait_for(
                self.biller.credit(quote.service, quote.account, quote.amount_fen, order_no), self.biller_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - the biller may have credited: unknown, never failed
            log.warning("bill %d: biller call failed: %s", quote.bill_id, type(err).__name__)
            return BillerAnswer("unknown", reason=type(err).__name__[:32])

    async def _give_back(self, quote: BillQuote, payment: PaymentResult, reason: str) -> BillResult:
        """The biller refused: the prepaid balance first (the biller took nothing), then the resident."""
        await self.ledger.refund_agency(payment.order_no, f"biller_{reason}"[:64])
        refund = await self.payments.refund_paid(PURPOSE, quote.reference, "biller_refused")
        state = "refunded" if refund.state == "refunded" else "refund_pending"
        await self._set(quote, state, reason=reason, alert=state == "refund_pending")
        return self._result(quote, state, refund, reason=reason)

    async def _set(self, quote: BillQuote, state: str, *, reason: str | None = None, receipt: str | None = None,
                   order_no: str | None = None, alert: bool = False) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            now = self.clock()
            conn.execute("UPDATE bill_payments SET state = ?, reason = COALESCE(?, reason), biller_receipt ="
                         " COALESCE(?, biller_receipt), order_no = COALESCE(order_no, ?), updated_at = ? WHERE id = ?",
                         ((state, reason and reason[:64], receipt, order_no, now, quote.bill_id)))
            journal.append(conn, at=now, kind="bill_alert" if alert else f"bill_{state}", actor="system",
                           bill_id=quote.bill_id, state=state, service=quote.service, account=quote.account_masked,
                           amount_fen=quote.amount_fen, reason=reason, receipt_no=receipt)

        await self.db.write(tx)

    async def _row(self, bill_id: int) -> sqlite3.Row | None:
        return await self.db.read(lambda c: c.execute("SELECT * FROM bill_payments WHERE id = ?", (bill_id,)).fetchone())

    @staticmethod
    def _result(quote: BillQuote, state: str, payment: PaymentResult, *, reason: str | None = None,
                receipt_no: str | None = None) -> BillResult:
        return BillResult(quote.bill_id, state, quote.account_masked, quote.amount_fen, payment.order_no, reason,
                          receipt_no, payment)
