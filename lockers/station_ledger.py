"""The station's accounts: the prepaid balance, commissions, and the daily close (日终轧帐).

service-plan.md §5. The station pays billers out of a **prepaid balance** whose credit limit is zero:
an agency payment (a bill paid on a resident's behalf) is refused before any money is taken when the
balance cannot cover it (:class:`InsufficientPrepaidBalance`, code ``prepaid_balance_low``: staff top
up). The balance is checked again, debited, and the commission accrued **inside the transaction that
commits the payment as paid** (:meth:`StationLedger.agency_on_paid`), so a payment and its debit are
committed together or not at all; when that late check fails, the payment desk refunds the payer.

Money is integer fen everywhere. A percentage commission is ``turnover_fen * percent / 100`` computed
exactly (``Decimal``) and **rounded half up to the fen, per transaction**; a per-item commission is
``fen_per_item * quantity``.

The ledger (table ``ledger_entries``) is append-only and each entry carries the balance after it, so
:class:`DailyClose` can re-add a day (opening + top-ups - debits + refunds = closing) and spot any
break. The close compares every payment order of the day with the gateway's own record, the agency
debits and commission accruals with the paid orders, and lists every difference as a flagged line: it
**never adjusts anything**. A close is stored per day; closing the same day again stores a new version
and keeps the earlier ones. Reports carry no personal data: an order shows its channel and the last 4
digits of the payment code only.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from lockers import journal
from lockers.acquirers import Acquirer, AcquirerAnswer
from lockers.db import Database
from lockers.errors import CustodyError, InvalidInput, NotAllowed
from lockers.payments import FINAL_STATES, PaymentResult

log = logging.getLogger(__name__)

_SERVICE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_REFERENCE_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
#: a top-up above this is refused as a typing slip (fen; 1,000,000 yuan)
MAX_TOP_UP_FEN = 100_000_000
#: gateway answer when a close could not ask (no acquirer for the channel, or the call failed)
NOT_ASKED = "not_asked"


# -- errors -------------------------------------------------------------------------------------------


class LedgerError(CustodyError):
    """Root of the station-account errors."""

    code = "ledger"


class InsufficientPrepaidBalance(LedgerError):
    """The prepaid balance (plus the credit limit, 0 by default) cannot cover an agency payment:
    nothing is charged; staff must top up the station's account first."""

    code = "prepaid_balance_low"

    def __init__(self, balance_fen: int, amount_fen: int, credit_limit_fen: int = 0) -> None:
        self.balance_fen = balance_fen
        self.amount_fen = amount_fen
        self.credit_limit_fen = credit_limit_fen
        self.shortfall_fen = amount_fen - balance_fen - credit_limit_fen
        super().__init__(f"prepaid balance {balance_fen} fen cannot cover {amount_fen} fen "
                         f"(short by {self.shortfall_fen} fen): top up the station account")


class CommissionConfigError(LedgerError, ValueError):
    """The commission table in the configuration is malformed; the message names the service and key."""

    code = "commission_config"


# -- commission table -----------------------------------------------------------------------------------


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise CommissionConfigError(f"{where}: a number is expected, not {type(value).__name__}")
    try:
        number = Decimal(str(value).strip())  # str(0.5) == "0.5": a TOML float keeps its written value
    except InvalidOperation:
        raise CommissionConfigError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite():
        raise CommissionConfigError(f"{where}: {value!r} is not a finite number")
    return number


def _whole_fen(value: object, where: str, *, yuan: bool) -> int:
    amount = _decimal(value, where) * (100 if yuan else 1)
    if amount != amount.to_integral_value() or amount < 0:
        raise CommissionConfigError(f"{where}: {value!r} is not a whole, non-negative number of fen")
    return int(amount)


@dataclass(frozen=True)
class CommissionRule:
    """How one service earns the station commission.

    ``basis`` ``"per_item"``: ``fen_per_item`` per item, or per item of a kind (``by_kind``, e.g.
    express parcels: ``goods`` 200, ``documents`` 180); ``"percent"``: ``percent`` of the turnover,
    rounded half up to the fen per transaction.
    """

    service: str
    basis: str
    fen_per_item: int | None = None
    percent: Decimal | None = None
    by_kind: Mapping[str, int] | None = None

    def rate_for(self, kind: str | None) -> str:
        """The rate as stored with an accrual: fen per item, or the percentage."""
        if self.basis == "percent":
            return str(self.percent)
        return str(self._fen_for(kind))

    def _fen_for(self, kind: str | None) -> int:
        if self.by_kind is not None:
            if kind not in self.by_kind:
                raise InvalidInput("kind", f"{self.service} commission is set for {', '.join(self.by_kind)}, "
                                           f"not {kind!r}")
            return self.by_kind[kind]
        if kind is not None:
            raise InvalidInput("kind", f"{self.service} commission does not depend on the kind of item")
        assert self.fen_per_item is not None
        return self.fen_per_item

    def compute(self, turnover_fen: int, quantity: int = 1, kind: str | None = None) -> int:
        """The commission in fen of one transaction."""
        return commission_fen(self.basis, self.rate_for(kind), turnover_fen, quantity)


def commission_fen(basis: str, rate: str, turnover_fen: int, quantity: int) -> int:
    """One transaction's commission from a stored basis and rate; the daily close recomputes every
    accrual with it, so an accrual whose arithmetic was altered is found."""
    if basis == "percent":
        exact = Decimal(turnover_fen) * Decimal(rate) / Decimal(100)
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if basis == "per_item":
        return int(rate) * quantity
    raise ValueError(f"unknown commission basis {basis!r}")


_RULE_KEYS = {"per_item_fen", "per_item_yuan", "percent", "per_item_fen_by_kind", "per_item_yuan_by_kind"}


class CommissionTable:
    """Commission per service, loaded once from configuration (:meth:`from_config`).

    Config shape (TOML ``[ledger.commissions]``; one key per service, exactly one basis each)::

        phone_bill     = { per_item_yuan = "0.5" }
        newspapers     = { percent = 5 }
        stamps         = { percent = 5 }
        greeting_cards = { percent = 10 }
        express_parcel = { per_item_yuan_by_kind = { goods = "2", documents = "1.8", small_packet = "1" } }

    ``*_fen`` takes whole fen, ``*_yuan`` yuan with at most 2 decimals. Yuan are best written as
    strings; a TOML float is taken as written (``0.5`` is 50 fen).
    """

    def __init__(self, rules: Mapping[str, CommissionRule]) -> None:
        self.rules: Mapping[str, CommissionRule] = MappingProxyType(dict(rules))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CommissionTable:
        """Validate and load; :class:`CommissionConfigError` names what is wrong."""
        if not isinstance(config, Mapping):
            raise CommissionConfigError("the commission table is a mapping of service to rule")
        return cls({service: _rule(service, spec) for service, spec in config.items()})

    def rule(self, service: str) -> CommissionRule:
        """The rule of ``service``; ``InvalidInput`` for a service the table does not know."""
        try:
            return self.rules[service]
        except KeyError:
            raise InvalidInput("service", f"no commission is configured for service {service!r}") from None

    def compute(self, service: str, turnover_fen: int, quantity: int = 1, kind: str | None = None) -> int:
        return self.rule(service).compute(turnover_fen, quantity, kind)

    def __contains__(self, service: object) -> bool:
        return service in self.rules


def _rule(service: object, spec: object) -> CommissionRule:
    if not isinstance(service, str) or not _SERVICE_RE.fullmatch(service):
        raise CommissionConfigError(f"service name {service!r} must match {_SERVICE_RE.pattern}")
    if not isinstance(spec, Mapping):
        raise CommissionConfigError(f"{service}: the rule is a table such as {{ percent = 5 }}")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise CommissionConfigError(f"{service}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                    f"use one of {', '.join(sorted(_RULE_KEYS))}")
    if len(spec) != 1:
        raise CommissionConfigError(f"{service}: give exactly one of {', '.join(sorted(_RULE_KEYS))}")
    (key, value), = spec.items()
    where = f"{service}.{key}"
    if key == "percent":
        percent = _decimal(value, where)
        if not 0 <= percent <= 100:
            raise CommissionConfigError(f"{where}: a percentage is between 0 and 100")
        return CommissionRule(service, "percent", percent=percent.normalize() if percent else Decimal(0))
    if key.endswith("_by_kind"):
        if not isinstance(value, Mapping) or not value:
            raise CommissionConfigError(f"{where}: a table of kind = amount, such as {{ goods = 200 }}")
        kinds = {}
        for kind, amount in value.items():
            if not isinstance(kind, str) or not _SERVICE_RE.fullmatch(kind):
                raise CommissionConfigError(f"{where}: kind {kind!r} must match {_SERVICE_RE.pattern}")
            kinds[kind] = _whole_fen(amount, f"{where}.{kind}", yuan="yuan" in key)
        return CommissionRule(service, "per_item", by_kind=MappingProxyType(kinds))
    return CommissionRule(service, "per_item", fen_per_item=_whole_fen(value, where, yuan="yuan" in key))


#: the operator's table from service-plan.md §5 (commission paid to the station; pilot pay for express items)
DEFAULT_COMMISSIONS: Mapping[str, Any] = MappingProxyType({
    "phone_bill": {"per_item_yuan": "0.5"},
    "newspapers": {"percent": "5"},
    "stamps": {"percent": "5"},
    "greeting_cards": {"percent": "10"},
    "business_mail": {"percent": "10"},
    "air_ticket": {"per_item_yuan": "5"},
    "rail_ticket": {"per_item_yuan": "1"},
    "express_parcel": {"per_item_yuan_by_kind": {"goods": "2", "documents": "1.8", "small_packet": "1"}},
    # utility bills: the plan states no commission; 0 until the operator's table says otherwise
    "water_bill": {"per_item_fen": 0},
    "electricity_bill": {"per_item_fen": 0},
    "gas_bill": {"per_item_fen": 0},
})


def posting_kind(category: str | None) -> str:
    """The commission kind of a posted item: ``documents`` for the documents category, else ``goods``."""
    return "documents" if category == "documents" else "goods"


# -- ledger ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    """One movement of the prepaid balance. ``amount_fen`` is positive; ``kind`` says its direction."""

    id: int
    at: float
    day: str
    kind: str
    amount_fen: int
    balance_after_fen: int
    service: str | None = None
    order_no: str | None = None
    staff_login: str | None = None
    reference: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> LedgerEntry:
        return cls(row["id"], row["at"], row["day"], row["kind"], row["amount_fen"], row["balance_after_fen"],
                   row["service"], row["order_no"], row["staff_login"], row["reference"])

    @property
    def delta_fen(self) -> int:
        return -self.amount_fen if self.kind == "agency_debit" else self.amount_fen


def _positive_fen(what: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(what, "the amount is a positive whole number of fen")
    return value


def yuan_to_fen(text: str) -> int:
    """``"100"``, ``"12.5"``, ``"0.05"`` -> fen, exactly; more than 2 decimals or a non-positive
    amount is ``InvalidInput`` (never rounded: a top-up is money counted by a person)."""
    try:
        amount = Decimal(str(text).strip()) * 100
    except InvalidOperation:
        raise InvalidInput("amount", f"{text!r} is not an amount in yuan") from None
    if not amount.is_finite() or amount != amount.to_integral_value() or amount <= 0:
        raise InvalidInput("amount", "an amount in yuan is positive with at most 2 decimals")
    return int(amount)


def fen_text(fen: int) -> str:
    """``12345`` -> ``"123.45"`` (yuan, for reports; "¥" is not in GBK, so no currency sign)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


class StationLedger:
    """The prepaid balance and commissions of one station.

    ``credit_limit_fen``: how far below zero the balance may go (the operator's rule: 0).
    ``agency_purposes``: payment purposes whose paid orders must each carry an agency debit.
    """

    def __init__(self, db: Database, commissions: CommissionTable | None = None, *,
                 clock: Callable[[], float] = time.time, timezone: str = "Asia/Shanghai",
                 credit_limit_fen: int = 0, agency_purposes: tuple[str, ...] = ("bill",)) -> None:
        if not isinstance(credit_limit_fen, int) or credit_limit_fen < 0:
            raise ValueError("credit_limit_fen is a whole, non-negative number of fen")
        self.db = db
        self.commissions = commissions or CommissionTable.from_config(DEFAULT_COMMISSIONS)
        self.clock = clock
        self.tz = ZoneInfo(timezone)
        self.credit_limit_fen = credit_limit_fen
        self.agency_purposes = tuple(agency_purposes)

    def day_of(self, at: float) -> str:
        """The station's local business day of a timestamp, ``YYYY-MM-DD``."""
        return dt.datetime.fromtimestamp(at, self.tz).date().isoformat()

    # -- reading --------------------------------------------------------------------------------------

    async def balance(self) -> int:
        """The prepaid balance now, in fen."""
        return await self.db.read(_balance)

    async def entries(self, day: str | None = None) -> list[LedgerEntry]:
        """Every ledger entry, or those of one local day, oldest first."""
        sql, args = "SELECT * FROM ledger_entries", ()
        if day is not None:
            sql, args = sql + " WHERE day = ?", (day,)
        rows = await self.db.read(lambda c: c.execute(sql + " ORDER BY id", args).fetchall())
        return [LedgerEntry.from_row(r) for r in rows]

    async def check_can_cover(self, amount_fen: int) -> None:
        """Raise :class:`InsufficientPrepaidBalance` unless an agency payment of ``amount_fen`` fits."""
        _positive_fen("amount_fen", amount_fen)
        await self.db.read(lambda c: self._check(c, amount_fen))

    def _check(self, conn: sqlite3.Connection, amount_fen: int) -> int:
        balance = _balance(conn)
        if balance - amount_fen < -self.credit_limit_fen:
            raise InsufficientPrepaidBalance(balance, amount_fen, self.credit_limit_fen)
        return balance

    # -- writing --------------------------------------------------------------------------------------

    async def top_up(self, amount_fen: int, staff_login: str, reference: str) -> LedgerEntry:
        """Credit the prepaid balance with money paid in at a post office or from the linked card.
        ``staff_login`` must be a staff account (the named person who did it); ``reference`` is the
        slip or transfer number (letters, digits, ``_.:/-``)."""
        _positive_fen("amount_fen", amount_fen)
        if amount_fen > MAX_TOP_UP_FEN:
            raise InvalidInput("amount_fen", f"a top-up above {fen_text(MAX_TOP_UP_FEN)} yuan is refused as a slip")
        if not isinstance(reference, str) or not _REFERENCE_RE.fullmatch(reference):
            raise InvalidInput("reference", f"the top-up reference must match {_REFERENCE_RE.pattern}")

        def tx(conn: sqlite3.Connection) -> LedgerEntry:
            row = conn.execute("SELECT role FROM accounts WHERE login = ?", (staff_login,)).fetchone()
            if row is None or row["role"] != "staff":
                raise NotAllowed("a top-up is recorded by a named staff account")
            now = self.clock()
            entry = self._append(conn, now, "top_up", amount_fen, staff_login=staff_login, reference=reference)
            journal.append(conn, at=now, kind="ledger_top_up", actor=f"staff:{staff_login}", amount_fen=amount_fen,
                           balance_after_fen=entry.balance_after_fen, reference=reference)
            return entry

        entry = await self.db.write(tx)
        log.info("prepaid balance topped up by %d fen (now %d fen)", amount_fen, entry.balance_after_fen)
        return entry

    def agency_on_paid(self, service: str, amount_fen: int, *, quantity: int = 1,
                       kind: str | None = None) -> Callable[[sqlite3.Connection, PaymentResult], None]:
        """The ``on_paid`` of an agency payment: in the transaction that commits ``paid`` it checks the
        balance again, debits it and accrues the commission. If the balance no longer covers it, it
        raises :class:`InsufficientPrepaidBalance`; the payment desk then commits ``paid`` alone and
        refunds the payer at once (the designed answer to two payments racing for the last yuan)."""
        _positive_fen("amount_fen", amount_fen)
        rule = self.commissions.rule(service)
        rule.rate_for(kind)  # a wrong kind is refused now, not inside the payment

        def on_paid(conn: sqlite3.Connection, order: PaymentResult) -> None:
            if order.amount_fen != amount_fen:
                raise LedgerError(f"order {order.order_no} is for {order.amount_fen} fen, the debit for {amount_fen}")
            self._check(conn, amount_fen)
            now = self.clock()
            entry = self._append(conn, now, "agency_debit", amount_fen, service=service, order_no=order.order_no,
                                 reference=order.reference)
            commission = self._accrue(conn, now, rule, amount_fen, quantity, kind, order_no=order.order_no)
            journal.append(conn, at=now, kind="ledger_agency_debit", actor="system", order_no=order.order_no,
                           service=service, amount_fen=amount_fen, balance_after_fen=entry.balance_after_fen,
                           commission_fen=commission)

        return on_paid

    async def refund_agency(self, order_no: str, reason: str) -> LedgerEntry:
        """Give the balance back for an agency payment the biller did not take (and reverse its
        commission). Idempotent: a second call returns the refund already made."""

        def tx(conn: sqlite3.Connection) -> LedgerEntry:
            done = conn.execute("SELECT * FROM ledger_entries WHERE order_no = ? AND kind = 'agency_refund'",
                                (order_no,)).fetchone()
            if done is not None:
                return LedgerEntry.from_row(done)
            debit = conn.execute("SELECT * FROM ledger_entries WHERE order_no = ? AND kind = 'agency_debit'",
                                 (order_no,)).fetchone()
            if debit is None:
                raise LedgerError(f"no agency debit for order {order_no}")
            now = self.clock()
            entry = self._append(conn, now, "agency_refund", debit["amount_fen"], service=debit["service"],
                                 order_no=order_no, reference=reason[:64])
            reversed_fen = 0
            for accrual in conn.execute(
                    "SELECT * FROM commission_accruals a WHERE order_no = ? AND reverses_id IS NULL AND NOT EXISTS"
                    " (SELECT 1 FROM commission_accruals r WHERE r.reverses_id = a.id)", (order_no,)).fetchall():
                reversed_fen += accrual["commission_fen"]
                self._insert_accrual(conn, now, accrual["service"], accrual["kind"], accrual["basis"], accrual["rate"],
                                     -accrual["turnover_fen"], accrual["quantity"], -accrual["commission_fen"],
                                     order_no=order_no, posting_id=accrual["posting_id"], reverses_id=accrual["id"])
            journal.append(conn, at=now, kind="ledger_agency_refund", actor="system", order_no=order_no,
                           amount_fen=entry.amount_fen, balance_after_fen=entry.balance_after_fen,
                           commission_reversed_fen=reversed_fen, reason=reason[:64])
            return entry

        return await self.db.write(tx)

    def accrue_for_posting(self, conn: sqlite3.Connection, posting_id: int, kind: str, price_fen: int, *,
                           service: str = "express_parcel", quantity: int = 1) -> int:
        """Accrue the pilot pay for one express item posted here (``kind``: ``goods``, ``documents``;
        see :func:`posting_kind`), inside the caller's transaction (the one that marks the posting
        paid). Once per posting: a second call returns the first accrual's amount. Returns fen."""
        rule = self.commissions.rule(service)
        existing = conn.execute("SELECT commission_fen FROM commission_accruals WHERE posting_id = ?"
                                " AND reverses_id IS NULL", (posting_id,)).fetchone()
        if existing is not None:
            return int(existing[0])
        if not isinstance(price_fen, int) or isinstance(price_fen, bool) or price_fen < 0:
            raise InvalidInput("price_fen", "the price is a whole, non-negative number of fen")
        return self._accrue(conn, self.clock(), rule, price_fen, quantity, kind, posting_id=posting_id)

    # -- plumbing -------------------------------------------------------------------------------------

    def _append(self, conn: sqlite3.Connection, now: float, kind: str, amount_fen: int, **cols: Any) -> LedgerEntry:
        after = _balance(conn) + (-amount_fen if kind == "agency_debit" else amount_fen)
        values = dict(at=now, day=self.day_of(now), kind=kind, amount_fen=amount_fen, balance_after_fen=after, **cols)
        cur = conn.execute(f"INSERT INTO ledger_entries ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                           tuple(values.values()))
        return LedgerEntry(id=int(cur.lastrowid), **values)

    def _accrue(self, conn: sqlite3.Connection, now: float, rule: CommissionRule, turnover_fen: int, quantity: int,
                kind: str | None, *, order_no: str | None = None, posting_id: int | None = None) -> int:
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise InvalidInput("quantity", "the quantity is a whole number of at least 1")
        rate = rule.rate_for(kind)
        fen = commission_fen(rule.basis, rate, turnover_fen, quantity)
        self._insert_accrual(conn, now, rule.service, kind, rule.basis, rate, turnover_fen, quantity, fen,
                             order_no=order_no, posting_id=posting_id)
        return fen

    def _insert_accrual(self, conn: sqlite3.Connection, now: float, service: str, kind: str | None, basis: str,
                        rate: str, turnover_fen: int, quantity: int, fen: int, **refs: Any) -> None:
        conn.execute(
            "INSERT INTO commission_accruals (at, day, service, kind, basis, rate, turnover_fen, quantity,"
            " commission_fen, order_no, posting_id, reverses_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, self.day_of(now), service, kind, basis, rate, turnover_fen, quantity, fen, refs.get("order_no"),
             refs.get("posting_id"), refs.get("reverses_id")))


def _balance(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT balance_after_fen FROM ledger_entries ORDER BY id DESC LIMIT 1").fetchone()
    return int(row[0]) if row is not None else 0


# -- daily close ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """One flagged difference. ``code`` is a stable key (see :data:`MISMATCH_CODES`)."""

    code: str
    detail: str
    order_no: str | None = None


#: every flag a close can raise, with what it means for staff
MISMATCH_CODES: Mapping[str, str] = MappingProxyType({
    "local_paid_gateway_not": "paid here, the gateway says not paid",
    "gateway_paid_local_not": "the gateway says paid, not paid here (money held without a service)",
    "gateway_pending": "the gateway has not settled the order",
    "gateway_unknown": "the gateway could not be asked or gave no clear answer",
    "transaction_id_differs": "the gateway's transaction id differs from the one stored",
    "order_open": "the order is not final: run payment reconciliation first",
    "agency_debit_missing": "a paid agency order has no debit of the prepaid balance",
    "agency_debit_amount": "an agency debit differs from its order's amount",
    "agency_debit_unrefunded": "the order's money went back, the prepaid balance debit did not",
    "agency_refund_but_paid": "the prepaid balance was credited back, the order is still paid",
    "agency_debit_without_order": "a debit of the day matches no paid order",
    "commission_missing": "a paid agency order has no commission accrual",
    "commission_arithmetic": "an accrual does not match its own basis and rate",
    "ledger_chain_broken": "a ledger entry's balance is not the previous balance plus its amount",
    "ledger_unbalanced": "opening + top-ups - debits + refunds differs from the closing balance",
    "balance_below_limit": "the balance went below the credit limit",
})


@dataclass(frozen=True)
class OrderLine:
    """One payment order in a close: no personal data, the payment code only by channel and last 4."""

    order_no: str
    channel: str
    last4: str
    purpose: str
    amount_fen: int
    local_state: str
    gateway: str
    flag: str | None = None


@dataclass(frozen=True)
class CloseReport:
    """One stored daily close. Show it with :meth:`to_dict` (screen, JSON), :meth:`to_csv` (Excel) or
    :meth:`to_receipt_parts` (thermal printer)."""

    station_id: str
    day: str
    version: int
    closed_at: float
    actor: str
    orders: tuple[OrderLine, ...]
    paid_by_channel: Mapping[str, tuple[int, int]]  # channel -> (count, fen) of orders paid here
    paid_by_purpose: Mapping[str, tuple[int, int]]
    ledger: Mapping[str, int]  # opening, top_ups, debits, refunds, closing (fen)
    commissions: Mapping[str, int]  # service -> net commission fen of the day
    mismatches: tuple[Mismatch, ...]
    timezone: str = "Asia/Shanghai"

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id, "day": self.day, "version": self.version, "closed_at": self.closed_at,
            "actor": self.actor, "ok": self.ok,
            "orders": [asdict(o) for o in self.orders],
            "paid_by_channel": {k: {"count": c, "amount_fen": f} for k, (c, f) in self.paid_by_channel.items()},
            "paid_by_purpose": {k: {"count": c, "amount_fen": f} for k, (c, f) in self.paid_by_purpose.items()},
            "ledger": dict(self.ledger), "commissions": dict(self.commissions),
            "mismatches": [asdict(m) for m in self.mismatches], "timezone": self.timezone,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CloseReport:
        return cls(
            station_id=d["station_id"], day=d["day"], version=d["version"], closed_at=d["closed_at"], actor=d["actor"],
            orders=tuple(OrderLine(**o) for o in d["orders"]),
            paid_by_channel={k: (v["count"], v["amount_fen"]) for k, v in d["paid_by_channel"].items()},
            paid_by_purpose={k: (v["count"], v["amount_fen"]) for k, v in d["paid_by_purpose"].items()},
            ledger=dict(d["ledger"]), commissions=dict(d["commissions"]),
            mismatches=tuple(Mismatch(**m) for m in d["mismatches"]), timezone=d.get("timezone", "Asia/Shanghai"))

    CSV_HEADER = ("section", "key", "order_no", "channel", "last4", "purpose", "count", "amount_fen", "amount_yuan",
                  "local_state", "gateway", "flag", "detail")

    def to_csv(self) -> bytes:
        """The report as CSV in UTF-8 **with BOM** (so Excel opens Chinese text correctly): a header
        row, one ``order`` row per order, then ``channel``, ``purpose``, ``ledger``, ``commission``,
        ``mismatch`` and a final ``close`` summary row. Amounts in fen and in yuan."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(self.CSV_HEADER)

        def row(section: str, key: str = "", *, order_no: str = "", channel: str = "", last4: str = "",
                purpose: str = "", count: int | str = "", fen: int | None = None, local: str = "", gateway: str = "",
                flag: str = "", detail: str = "") -> None:
            w.writerow((section, key, order_no, channel, last4, purpose, count, "" if fen is None else fen,
                        "" if fen is None else fen_text(fen), local, gateway, flag, detail))

        for o in self.orders:
            row("order", order_no=o.order_no, channel=o.channel, last4=o.last4, purpose=o.purpose, fen=o.amount_fen,
                local=o.local_state, gateway=o.gateway, flag=o.flag or "")
        for channel, (count, fen) in self.paid_by_channel.items():
            row("channel", channel, channel=channel, count=count, fen=fen)
        for purpose, (count, fen) in self.paid_by_purpose.items():
            row("purpose", purpose, purpose=purpose, count=count, fen=fen)
        for key in ("opening", "top_ups", "debits", "refunds", "closing"):
            row("ledger", key, fen=self.ledger[key])
        for service, fen in self.commissions.items():
            row("commission", service, fen=fen)
        for m in self.mismatches:
            row("mismatch", m.code, order_no=m.order_no or "", flag=m.code, detail=m.detail)
        row("close", self.day, count=len(self.orders), flag="ok" if self.ok else "MISMATCH",
            detail=f"{self.station_id} v{self.version} {len(self.mismatches)} mismatch(es) by {self.actor}")
        return ("\ufeff" + out.getvalue()).encode("utf-8")

    def to_receipt_parts(self) -> list[Any]:
        """The close as a printed slip for the receipt printer (text lines, short enough for 58 mm)."""
        from hal.printer import Code128

        closed = dt.datetime.fromtimestamp(self.closed_at, ZoneInfo(self.timezone))
        lines = [f"日终轧帐 {self.day}", f"站点 {self.station_id}  第{self.version}版",
                 f"轧帐时间 {closed:%Y-%m-%d %H:%M}", f"操作员 {self.actor}", "-" * 24, "收款(已付)"]
        for channel, (count, fen) in self.paid_by_channel.items():
            lines.append(f"  {channel} {count}笔 {fen_text(fen)}元")
        lines.append("按业务")
        for purpose, (count, fen) in self.paid_by_purpose.items():
            lines.append(f"  {purpose} {count}笔 {fen_text(fen)}元")
        lg = self.ledger
        lines += ["预存款", f"  期初 {fen_text(lg['opening'])}", f"  充值 +{fen_text(lg['top_ups'])}",
                  f"  代收扣款 -{fen_text(lg['debits'])}", f"  退回 +{fen_text(lg['refunds'])}",
                  f"  期末 {fen_text(lg['closing'])}", "佣金"]
        for service, fen in self.commissions.items():
            lines.append(f"  {service} {fen_text(fen)}元")
        lines.append("-" * 24)
        if self.ok:
            lines.append("核对一致")
        else:
            lines.append(f"!! 不符 {len(self.mismatches)} 项，请核查")
            for m in self.mismatches:
                lines.append(f"!! {m.code} {m.order_no or ''}".rstrip())
        return [*lines, Code128(f"{self.day.replace('-', '')}V{self.version}", height=48), "签字:"]


class DailyClose:
    """Reconciles one local business day; see the module docstring. Reads everything, writes only
    the close itself (and its journal event)."""

    def __init__(self, ledger: StationLedger, acquirers: Mapping[str, Acquirer], *, station_id: str = "PK01",
                 call_timeout: float = 15.0) -> None:
        self.ledger = ledger
        self.db = ledger.db
        self.acquirers = dict(acquirers)
        self.station_id = station_id
        self.call_timeout = call_timeout

    async def run(self, day: str | dt.date, actor: str = "system") -> CloseReport:
        """Close ``day`` (``YYYY-MM-DD``, the station's local date): query the gateway, compare, store a
        new version, journal it. Returns the report; ``report.ok`` is False when anything is flagged."""
        day = _day(day)
        start, end = self._bounds(day)

        def snapshot(c: sqlite3.Connection) -> tuple[list[sqlite3.Row], dict[str, Any]]:
            # orders and ledger in one read transaction: a payment finishing meanwhile cannot show as
            # half in one and half in the other
            found = c.execute("SELECT * FROM payment_orders WHERE created_at >= ? AND created_at < ? ORDER BY id",
                              (start, end)).fetchall()
            return found, _ledger_snapshot(c, day, [r["out_trade_no"] for r in found])

        rows, data = await self.db.read(snapshot)
        answers = [await self._ask(row) for row in rows]
        mismatches: list[Mismatch] = []
        orders = [self._compare(row, answer, mismatches) for row, answer in zip(rows, answers)]
        self._check_agency(rows, data, mismatches)
        ledger = self._check_chain(data, mismatches)
        commissions = _commissions(data["accruals"], mismatches)
        report = CloseReport(self.station_id, day, 0, self.ledger.clock(), actor, tuple(orders),
                             _sums(rows, "channel"), _sums(rows, "purpose"), ledger, commissions, tuple(mismatches),
                             timezone=self.ledger.tz.key)
        return await self.db.write(lambda c: self._store(c, report))

    async def versions(self, day: str | dt.date) -> list[CloseReport]:
        """Every stored close of ``day``, first version first."""
        day = _day(day)
        rows = await self.db.read(lambda c: c.execute(
            "SELECT report FROM daily_closes WHERE day = ? ORDER BY version", (day,)).fetchall())
        return [CloseReport.from_dict(json.loads(r["report"])) for r in rows]

    async def latest(self, day: str | dt.date) -> CloseReport | None:
        found = await self.versions(day)
        return found[-1] if found else None

    # -- steps ----------------------------------------------------------------------------------------

    def _bounds(self, day: str) -> tuple[float, float]:
        first = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), self.ledger.tz)
        return first.timestamp(), (first + dt.timedelta(days=1)).timestamp()

    async def _ask(self, row: sqlite3.Row) -> AcquirerAnswer | None:
        acquirer = self.acquirers.get(row["channel"])
        if acquirer is None:
            return None
        try:
            return await asyncio.wait_for(acquirer.query(row["out_trade_no"]), self.call_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure is "the gateway could not be asked"
            log.warning("daily close: query of %s failed: %s", row["out_trade_no"], type(err).__name__)
            return None

    def _compare(self, row: sqlite3.Row, answer: AcquirerAnswer | None, out: list[Mismatch]) -> OrderLine:
        order_no, local = row["out_trade_no"], row["state"]
        gateway = NOT_ASKED if answer is None else answer.outcome
        flag: str | None = None
        if local not in FINAL_STATES:
            flag = "order_open"
        elif gateway in (NOT_ASKED, "unknown"):
            flag = "gateway_unknown"
        elif gateway == "user_paying":
            flag = "gateway_pending"
        elif local == "paid" and gateway != "paid":
            flag = "local_paid_gateway_not"
        elif local != "paid" and gateway == "paid":
            flag = "gateway_paid_local_not"
        elif (local == "paid" and answer is not None and answer.transaction_id and row["transaction_id"]
              and answer.transaction_id != row["transaction_id"]):
            flag = "transaction_id_differs"
        if flag is not None:
            out.append(Mismatch(flag, f"{MISMATCH_CODES[flag]} (here {local}, gateway {gateway})", order_no))
        return OrderLine(order_no, row["channel"], row["code_last4"], row["purpose"], row["amount_fen"], local,
                         gateway, flag)

    def _check_agency(self, rows: list[sqlite3.Row], data: dict[str, Any], out: list[Mismatch]) -> None:
        debits, refunds = data["debits_by_order"], data["refunds_by_order"]
        accrued = data["accrued_orders"]
        for row in rows:
            order_no = row["out_trade_no"]
            debit = debits.get(order_no)
            if row["purpose"] not in self.ledger.agency_purposes and debit is None:
                continue
            if row["state"] == "paid":
                if debit is None:
                    out.append(Mismatch("agency_debit_missing", MISMATCH_CODES["agency_debit_missing"], order_no))
                    continue
                if debit != row["amount_fen"]:
                    out.append(Mismatch("agency_debit_amount", f"debit {debit} fen, order {row['amount_fen']} fen",
                                        order_no))
                if order_no in refunds:
                    out.append(Mismatch("agency_refund_but_paid", MISMATCH_CODES["agency_refund_but_paid"], order_no))
                elif order_no not in accrued:
                    out.append(Mismatch("commission_missing", MISMATCH_CODES["commission_missing"], order_no))
            elif row["state"] in ("refunded", "reversed", "failed") and debit is not None and order_no not in refunds:
                out.append(Mismatch("agency_debit_unrefunded", MISMATCH_CODES["agency_debit_unrefunded"], order_no))
        day_orders = {r["out_trade_no"] for r in rows}
        for entry in data["day_entries"]:
            order_no = entry["order_no"]
            if entry["kind"] != "agency_debit" or order_no in day_orders:
                continue  # today's orders were checked above
            state = data["order_states"].get(order_no)  # an order begun the day before, paid after midnight
            if state is None:
                out.append(Mismatch("agency_debit_without_order", f"debit #{entry['id']} of {entry['amount_fen']} fen",
                                    order_no))
            elif state != "paid" and order_no not in refunds:
                out.append(Mismatch("agency_debit_unrefunded", MISMATCH_CODES["agency_debit_unrefunded"], order_no))

    def _check_chain(self, data: dict[str, Any], out: list[Mismatch]) -> dict[str, int]:
        opening = data["opening"]
        running, sums = opening, {"top_up": 0, "agency_debit": 0, "agency_refund": 0}
        for entry in data["day_entries"]:
            delta = -entry["amount_fen"] if entry["kind"] == "agency_debit" else entry["amount_fen"]
            sums[entry["kind"]] += entry["amount_fen"]
            if entry["balance_after_fen"] != running + delta:
                out.append(Mismatch("ledger_chain_broken", f"entry #{entry['id']} says {entry['balance_after_fen']} "
                                    f"fen, {running} {'+' if delta >= 0 else '-'} {abs(delta)} = {running + delta}"))
            running = entry["balance_after_fen"]
            if running < -self.ledger.credit_limit_fen:
                out.append(Mismatch("balance_below_limit", f"entry #{entry['id']} leaves {running} fen"))
        closing = running
        ledger = {"opening": opening, "top_ups": sums["top_up"], "debits": sums["agency_debit"],
                  "refunds": sums["agency_refund"], "closing": closing}
        if opening + ledger["top_ups"] - ledger["debits"] + ledger["refunds"] != closing:
            out.append(Mismatch("ledger_unbalanced", f"{opening} + {ledger['top_ups']} - {ledger['debits']} + "
                                f"{ledger['refunds']} != {closing} fen"))
        return ledger

    def _store(self, conn: sqlite3.Connection, report: CloseReport) -> CloseReport:
        version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM daily_closes WHERE day = ?",
                               (report.day,)).fetchone()[0]
        stored = CloseReport(**{**report.__dict__, "version": int(version)})
        conn.execute(
            "INSERT INTO daily_closes (day, version, closed_at, actor, ok, mismatches, opening_fen, closing_fen, report)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (stored.day, stored.version, stored.closed_at, stored.actor, int(stored.ok), len(stored.mismatches),
             stored.ledger["opening"], stored.ledger["closing"],
             json.dumps(stored.to_dict(), ensure_ascii=False, sort_keys=True)))
        journal.append(conn, at=stored.closed_at, kind="daily_close", actor=stored.actor, day=stored.day,
                       version=stored.version, ok=stored.ok, orders=len(stored.orders),
                       mismatches=sorted({m.code for m in stored.mismatches}), ledger=dict(stored.ledger),
                       commission_fen=sum(stored.commissions.values()))
        if not stored.ok:
            log.warning("daily close %s v%d: %d mismatch(es) flagged", stored.day, stored.version,
                        len(stored.mismatches))
        return stored


def _day(day: str | dt.date) -> str:
    if isinstance(day, dt.date):
        return day.isoformat()
    try:
        return dt.date.fromisoformat(day).isoformat()
    except (TypeError, ValueError):
        raise InvalidInput("day", "the day is a date written YYYY-MM-DD") from None


def _ledger_snapshot(conn: sqlite3.Connection, day: str, order_nos: list[str]) -> dict[str, Any]:
    """Everything a close compares, read in one go (one consistent view)."""
    before = conn.execute("SELECT balance_after_fen FROM ledger_entries WHERE day < ? ORDER BY id DESC LIMIT 1",
                          (day,)).fetchone()
    day_entries = conn.execute("SELECT * FROM ledger_entries WHERE day = ? ORDER BY id", (day,)).fetchall()
    entries = conn.execute("SELECT order_no, kind, amount_fen FROM ledger_entries WHERE order_no IS NOT NULL").fetchall()
    debit_orders = [e["order_no"] for e in day_entries if e["order_no"]]
    wanted = sorted(set(order_nos) | set(debit_orders))
    states = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        states.update(conn.execute(
            f"SELECT out_trade_no, state FROM payment_orders WHERE out_trade_no IN ({','.join('?' * len(chunk))})",
            chunk).fetchall())
    accrued_orders = {r[0] for r in conn.execute(
        "SELECT DISTINCT order_no FROM commission_accruals WHERE order_no IS NOT NULL AND reverses_id IS NULL")}
    return {
        "opening": int(before[0]) if before else 0,
        "day_entries": day_entries,
        "debits_by_order": {e["order_no"]: e["amount_fen"] for e in entries if e["kind"] == "agency_debit"},
        "refunds_by_order": {e["order_no"]: e["amount_fen"] for e in entries if e["kind"] == "agency_refund"},
        "order_states": states,
        "accrued_orders": accrued_orders,
        "accruals": conn.execute("SELECT * FROM commission_accruals WHERE day = ? ORDER BY id", (day,)).fetchall(),
    }


def _commissions(accruals: list[sqlite3.Row], out: list[Mismatch]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for a in accruals:
        expected = commission_fen(a["basis"], a["rate"], abs(a["turnover_fen"]), a["quantity"])
        if a["reverses_id"] is not None:
            expected = -expected
        if a["commission_fen"] != expected:
            out.append(Mismatch("commission_arithmetic", f"accrual #{a['id']} says {a['commission_fen']} fen, "
                                f"{a['basis']} {a['rate']} gives {expected}", a["order_no"]))
        key = a["service"] + (f":{a['kind']}" if a["kind"] else "")
        totals[key] = totals.get(key, 0) + a["commission_fen"]
    return dict(sorted(totals.items()))


def _sums(rows: list[sqlite3.Row], column: str) -> dict[str, tuple[int, int]]:
    sums: dict[str, tuple[int, int]] = {}
    for row in rows:
        if row["state"] == "paid":
            count, fen = sums.get(row[column], (0, 0))
            sums[row[column]] = (count + 1, fen + row["amount_fen"])
    return dict(sorted(sums.items()))


__all__ = ["CommissionConfigError", "CommissionRule", "CommissionTable", "CloseReport", "DEFAULT_COMMISSIONS",
           "DailyClose", "InsufficientPrepaidBalance", "LedgerEntry", "LedgerError", "MISMATCH_CODES", "Mismatch",
           "OrderLine", "StationLedger", "commission_fen", "fen_text", "posting_kind", "yuan_to_fen"]
