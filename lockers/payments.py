"""Payments by a scanned WeChat Pay, Alipay or e-CNY payment code: one state machine for every channel.

``rules-and-identifiers.md`` §4.5 and T-F1/T-F2. The money rules that shape this module:

* the order number (``out_trade_no``) is drawn from a monotonic counter, written and **committed**
  before the pay call, and never reused (a reversed WeChat order number cannot be paid again);
* every transition is committed (and journaled) **before** the kiosk acts on it, so a power cut at
  any point leaves a row that :meth:`PaymentDesk.reconcile` can drive to a final state;
* an unclear answer (USERPAYING, SYSTEMERROR, a network timeout, anything unknown) is never taken as
  "failed": the order is queried every 5 s from the pay call for up to 30 s, then reversed (closed if
  unpaid, refunded if paid), never sooner than 15 s after the pay call;
* a service (door, label, fee) is given only on ``paid``; at most one order per purpose and reference
  is paid or unfinished at any time (a partial unique index, so two racing calls cannot both pay);
* the auth code is a one-minute bearer secret: only its channel and last 4 digits are stored, logged
  or journaled;
* with no network, no paid flow starts (:class:`PaymentsOffline`); pickups and deposits do not come
  through here and go on.

States::

    created -> submitted -> paid | failed | user_paying
    user_paying -> paid | failed | timeout            (query every 5 s up to 30 s after the pay call)
    timeout | retry -> reversing -> reversed | refunded | retry   (same order number every time)
    paid -> reversing                                  (the service could not be given: refund)
    created -> failed                                  (start-up only: the pay call was never sent)

Final states: ``paid`` (until a refund is asked), ``failed``, ``reversed``, ``refunded``. ``retry``
is not final: :meth:`PaymentDesk.reconcile` (at start-up, and from a periodic task) keeps reversing it
and raises an alert (journal ``payment_alert``) after ``alert_after_reverse_attempts``.

Backends (WeChat Pay v2 micropay, Alipay trade.pay ``bar_code``, an e-CNY aggregator) implement
:class:`Acquirer`; each maps its protocol's answers onto :class:`AcquirerAnswer` and
:class:`ReverseAnswer`. A backend that cannot tell returns ``unknown`` (or raises): both are handled
as "outcome unknown", never as "failed".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from hal.codes import DEFAULT_PAYMENT_RULES, PaymentCode, PaymentCodeRules, classify
from lockers.acquirers import Acquirer, AcquirerAnswer
from lockers import journal
from lockers.crash import crashpoint
from lockers.db import Database
from lockers.errors import CustodyError, InvalidInput

log = logging.getLogger(__name__)

CHANNELS = ("wechat", "alipay", "unionpay", "ecny")
#: wallet names as receipts print them (the printers' own Chinese text)
WALLET_NAMES_ZH = {"wechat": "微信支付", "alipay": "支付宝", "unionpay": "云闪付", "ecny": "数字人民币"}
#: states an order never leaves on its own (``paid`` leaves only when a refund is asked)
FINAL_STATES = frozenset({"paid", "failed", "reversed", "refunded"})
#: states :meth:`PaymentDesk.reconcile` drives on
OPEN_STATES = ("created", "submitted", "user_paying", "timeout", "reversing", "retry")
#: every transition the machine may make; anything else is a bug and raises
TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"submitted", "failed"}),
    "submitted": frozenset({"paid", "failed", "user_paying"}),
    "user_paying": frozenset({"paid", "failed", "timeout"}),
    "timeout": frozenset({"reversing"}),
    "reversing": frozenset({"reversed", "refunded", "retry"}),
    "retry": frozenset({"reversing"}),
    "paid": frozenset({"reversing"}),
    "failed": frozenset(),
    "reversed": frozenset(),
    "refunded": frozenset(),
}
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_REFERENCE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_STATION_RE = re.compile(r"[A-Za-z0-9]{1,8}")
_SEQUENCE_COUNTER = "payment_order_seq"
#: seconds added to a stored ``submitted_at`` when only the database tells when a pay call went out
RECONCILE_MARGIN = 2.0


# -- errors -------------------------------------------------------------------------------------------


class PaymentError(CustodyError):
    """Root of the payment errors; nothing was charged when one of these is raised by ``pay``."""

    code = "payment"


class UnknownPaymentCode(PaymentError):
    """The scan is not a payment code of a known wallet; ``read_kind`` says what it was read as
    (``resident_id``, ``unknown``...). The text itself is never in the error, nothing is stored."""

    code = "payment_code_unknown"

    def __init__(self, read_kind: str) -> None:
        super().__init__(f"the scan is not a payment code of a known wallet (read as {read_kind})")
        self.read_kind = read_kind


class ChannelUnavailable(PaymentError):
    """A payment code of a wallet the station takes no payments from (no acquirer configured)."""

    code = "payment_channel_unavailable"

    def __init__(self, channel: str) -> None:
        super().__init__(f"payments by {channel} are not accepted here")
        self.channel = channel


class PaymentsOffline(PaymentError):
    """No network (or payments switched off): no paid flow starts. Offer the counter."""

    code = "payments_offline"


class PaymentPending(PaymentError):
    """An earlier order for the same purpose and reference is not final yet: no second pay call."""

    code = "payment_pending"

    def __init__(self, order_no: str, state: str) -> None:
        super().__init__(f"payment order {order_no} is still {state}")
        self.order_no = order_no
        self.state = state


class AlreadyPaid(PaymentError):
    """The purpose and reference are already paid: charging again would be a double charge."""

    code = "payment_already_paid"

    def __init__(self, order_no: str) -> None:
        super().__init__(f"already paid by order {order_no}")
        self.order_no = order_no


# -- settings and results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentSettings:
    """Timings from ``rules-and-identifiers.md`` §4.4; ``station_id`` goes into every order number."""

    station_id: str = "PK01"
    timezone: str = "Asia/Shanghai"
    query_interval: float = 5.0
    give_up_after: float = 30.0
    reverse_not_before: float = 15.0
    reverse_retry_interval: float = 5.0
    #: reverse calls made while the resident waits; the rest is left to reconcile()
    reverse_attempts_inline: int = 3
    alert_after_reverse_attempts: int = 5
    #: a pay/query/reverse call that takes longer than this is an unknown outcome
    call_timeout: float = 15.0
    #: added to a stored ``submitted_at`` when only the database tells when a pay call went out
    reconcile_margin: float = RECONCILE_MARGIN
    offline: bool = False
    code_rules: PaymentCodeRules = field(default=DEFAULT_PAYMENT_RULES)

    def __post_init__(self) -> None:
        if not _STATION_RE.fullmatch(self.station_id):
            raise ValueError("station_id is 1 to 8 letters or digits (it goes into every order number)")
        if not 0 < self.query_interval <= self.give_up_after:
            raise ValueError("query_interval must be positive and not longer than give_up_after")
        if self.reverse_attempts_inline < 1 or self.alert_after_reverse_attempts < 1:
            raise ValueError("reverse attempts must be at least 1")
        ZoneInfo(self.timezone)


@dataclass(frozen=True)
class PaymentResult:
    """Where an order stands. Give the service only when ``paid`` is True."""

    order_no: str
    state: str
    channel: str
    last4: str
    amount_fen: int
    purpose: str
    reference: str
    reason: str | None = None
    transaction_id: str | None = None

    @property
    def paid(self) -> bool:
        return self.state == "paid"

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PaymentResult:
        return cls(order_no=row["out_trade_no"], state=row["state"], channel=row["channel"],
                   last4=row["code_last4"], amount_fen=row["amount_fen"], purpose=row["purpose"],
                   reference=row["reference"], reason=row["reason"], transaction_id=row["transaction_id"])


# -- the desk -------------------------------------------------------------------------------------------


#: a service recorded in the transaction that commits ``paid`` (see :meth:`PaymentDesk.pay`)
OnPaid = Callable[[sqlite3.Connection, "PaymentResult"], None]


async def _real_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class PaymentDesk:
    """Takes payments by scanned code for any service (``purpose``: ``posting``, ``storage_fee``,
    ``bill``...; ``reference``: that service's own id), through one acquirer per channel."""

    def __init__(self, db: Database, acquirers: dict[str, Acquirer], *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = _real_sleep,
                 settings: PaymentSettings | None = None,
                 online: Callable[[], bool] | None = None) -> None:
        for channel, acquirer in acquirers.items():
            if channel not in CHANNELS or getattr(acquirer, "channel", channel) != channel:
                raise ValueError(f"acquirer for {channel!r} is not a known channel or says it is another")
        self.db = db
        self.acquirers = dict(acquirers)
        self.clock = clock
        self.sleep = sleep
        self.settings = settings or PaymentSettings()
        self.online = online
        self._tz = ZoneInfo(self.settings.timezone)

    # -- public API -------------------------------------------------------------------------------

    def is_online(self) -> bool:
        """False when payments are switched off or the network is down: start no paid flow."""
        if self.settings.offline:
            return False
        return bool(self.online()) if self.online is not None else True

    async def pay(self, purpose: str, reference: str, amount_fen: int, auth_code: str,
                  subject: str | None = None, *, on_paid: OnPaid | None = None) -> PaymentResult:
        """Charge ``amount_fen`` to the scanned ``auth_code`` for (``purpose``, ``reference``).

        Returns the order's final (or, if the reverse keeps failing, ``retry``) state; give the
        service only if ``result.paid``. ``on_paid(conn, order)`` runs inside the very transaction
        that commits ``paid``: a service recorded there (a posting accepted, a fee cleared) is
        committed with the payment or not at all, so no crash can leave money taken and the
        service forgotten. It must only write the database (doors and printers act after). Raises before anything is stored for bad input, an unknown
        code, a channel without acquirer, offline, or an order for the same service that is already
        paid (:class:`AlreadyPaid`) or unfinished (:class:`PaymentPending`).
        """
        _check_name("purpose", purpose, _NAME_RE)
        _check_name("reference", reference, _REFERENCE_RE)
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise InvalidInput("amount_fen", "the amount is a positive whole number of fen")
        code = self._payment_code(auth_code)
        acquirer = self.acquirers.get(code.channel)
        if acquirer is None:
            raise ChannelUnavailable(code.channel)
        if not self.is_online():
            raise PaymentsOffline("payments are offline: no paid flow starts")
        order = await self._create(purpose, reference, amount_fen, code)
        order = await self._move(order, "submitted", submitted_at=self.clock())
        crashpoint("payment.pay_sent")
        sent_at = self.clock()  # the timings count from the pay call itself, which follows the commit
        answer = await self._call(acquirer.pay(order.order_no, amount_fen, code.code, subject or purpose))
        del code, auth_code  # the secret is not needed past the pay call
        order = await self._after_pay_answer(order, answer, on_paid)
        if order.state == "user_paying":
            order = await self._poll(order, acquirer, sent_at, on_paid)
        if order.state == "timeout":
            order = await self._reverse(order, acquirer, self.settings.reverse_attempts_inline, sent_at)
        return order

    async def refund_paid(self, purpose: str, reference: str, reason: str) -> PaymentResult:
        """The service of a paid order could not be given (a door jammed, the printer died): reverse it
        (a paid order is refunded). Reverse works within 7 days of the payment."""
        row = await self.db.read(lambda c: _live_row(c, purpose, reference))
        if row is None or row["state"] != "paid":
            raise PaymentError(f"no paid order for {purpose} {reference}")
        order = PaymentResult.from_row(row)
        order = await self._move(order, "reversing", reason=reason[:64])
        sent_at = await self._earliest_pay_call(order)
        return await self._reverse(order, self.acquirers[order.channel], self.settings.reverse_attempts_inline,
                                   sent_at, already_reversing=True)

    async def order_for(self, purpose: str, reference: str) -> PaymentResult | None:
        """The latest order for this service, or None (for a flow resumed after a restart)."""
        row = await self.db.read(lambda c: c.execute(
            "SELECT * FROM payment_orders WHERE purpose = ? AND reference = ? ORDER BY id DESC LIMIT 1",
            (purpose, reference)).fetchone())
        return PaymentResult.from_row(row) if row is not None else None

    async def needing_staff(self) -> list[PaymentResult]:
        """Orders a person must look at: unfinished ones, and those whose reverse keeps failing
        (alerted). Only channel and last 4 digits are in them."""
        rows = await self.db.read(lambda c: c.execute(
            f"SELECT * FROM payment_orders WHERE alerted = 1 AND state NOT IN ('reversed', 'refunded', 'failed')"
            f" OR state IN ({','.join('?' * len(OPEN_STATES))}) ORDER BY id", OPEN_STATES).fetchall())
        return [PaymentResult.from_row(r) for r in rows]

    async def reconcile(self) -> list[PaymentResult]:
        """Drive every unfinished order to a final state (at start-up, and periodically for ``retry``).

        Nobody waits at the kiosk for an order begun before a restart, so its service will not be
        given: an order whose outcome is open is queried (a definite failure ends it) and otherwise
        reversed, which closes it if unpaid and refunds it if the payer paid meanwhile. ``created``
        orders never reached the gateway (``submitted`` is committed before the pay call) and end
        ``failed``. Returns the orders touched, in their new states.
        """
        # ... and paid orders whose service refused them: the refund was asked in the next transaction,
        # which a power cut may have prevented (found by the T-F1 kill -9 harness)
        rows = await self.db.read(lambda c: c.execute(
            f"SELECT * FROM payment_orders WHERE state IN ({','.join('?' * len(OPEN_STATES))})"
            " OR (state = 'paid' AND reason = 'service_refused') ORDER BY id", OPEN_STATES).fetchall())
        results = []
        for row in rows:
            order = PaymentResult.from_row(row)
            acquirer = self.acquirers.get(order.channel)
            if acquirer is None:
                log.error("payment order %s: no acquirer for %s to reconcile it", order.order_no, order.channel)
                continue
            results.append(await self._reconcile_one(order, acquirer))
        return results

    # -- steps ------------------------------------------------------------------------------------

    def _payment_code(self, auth_code: str) -> PaymentCode:
        if not isinstance(auth_code, str):
            raise UnknownPaymentCode("not_text")
        read = classify(auth_code, rules=self.settings.code_rules)
        if not isinstance(read, PaymentCode):
            raise UnknownPaymentCode(read.kind)
        return read

    async def _create(self, purpose: str, reference: str, amount_fen: int, code: PaymentCode) -> PaymentResult:
        now = self.clock()
        day = dt.datetime.fromtimestamp(now, self._tz).strftime("%Y%m%d")

        def tx(conn: sqlite3.Connection) -> PaymentResult:
            live = _live_row(conn, purpose, reference)
            if live is not None:
                if live["state"] == "paid":
                    raise AlreadyPaid(live["out_trade_no"])
                raise PaymentPending(live["out_trade_no"], live["state"])
            seq = _next_sequence(conn)
            # underscores keep every digit run short: a 16+ digit run would be masked in the logs as a
            # payment code, and both WeChat and Alipay allow "_" in out_trade_no
            order_no = f"{self.settings.station_id}_{day}_{seq:08d}"
            conn.execute(
                "INSERT INTO payment_orders (out_trade_no, purpose, reference, channel, code_last4, amount_fen,"
                " state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'created', ?, ?)",
                (order_no, purpose, reference, code.channel, code.last4, amount_fen, now, now))
            order = PaymentResult(order_no, "created", code.channel, code.last4, amount_fen, purpose, reference)
            _journal(conn, now, order)
            return order

        order = await self.db.write(tx)
        log.info("payment order %s created: %s ending %s, %d fen", order.order_no, order.channel,
                 order.last4, amount_fen)
        crashpoint("payment.created")
        return order

    async def _after_pay_answer(self, order: PaymentResult, answer: AcquirerAnswer | None,
                                on_paid: OnPaid | None) -> PaymentResult:
        if answer is not None and answer.outcome == "paid":
            return await self._paid(order, answer.transaction_id, on_paid)
        if answer is not None and answer.outcome == "failed":
            return await self._move(order, "failed", reason=answer.reason)
        reason = "no_answer" if answer is None else (answer.reason or answer.outcome)
        return await self._move(order, "user_paying", reason=reason)

    async def _poll(self, order: PaymentResult, acquirer: Acquirer, sent_at: float,
                    on_paid: OnPaid | None = None) -> PaymentResult:
        """Query every ``query_interval`` counted from the pay call, up to ``give_up_after``."""
        submitted_at = sent_at
        step = 1
        while step * self.settings.query_interval <= self.settings.give_up_after + 1e-9:
            await self._sleep_until(submitted_at + step * self.settings.query_interval)
            step += 1
            answer = await self._call(acquirer.query(order.order_no))
            await self.db.write(lambda c: c.execute(
                "UPDATE payment_orders SET queries = queries + 1 WHERE out_trade_no = ?", (order.order_no,)))
            if answer is not None and answer.outcome == "paid":
                return await self._paid(order, answer.transaction_id, on_paid)
            if answer is not None and answer.outcome == "failed":
                return await self._move(order, "failed", reason=answer.reason)
        return await self._move(order, "timeout", reason="no_success_in_time")

    async def _paid(self, order: PaymentResult, transaction_id: str | None,
                    on_paid: OnPaid | None) -> PaymentResult:
        """Commit ``paid`` with the service; if the service refuses (``on_paid`` raised: the posting
        was cancelled meanwhile, say), commit ``paid`` alone and give the money back at once."""
        try:
            return await self._move(order, "paid", transaction_id=transaction_id, on_paid=on_paid)
        except PaymentError as err:
            if "changed under this task" in str(err):
                raise
            refused: Exception = err
        except Exception as err:  # noqa: BLE001 - whatever the service said, the money goes back
            refused = err
        log.warning("payment order %s: paid but the service refused it (%s): refunding", order.order_no,
                    type(refused).__name__)
        order = await self._move(order, "paid", transaction_id=transaction_id, reason="service_refused")
        order = await self._move(order, "reversing", reason="service_refused")
        sent_at = await self._earliest_pay_call(order)
        return await self._reverse(order, self.acquirers[order.channel], self.settings.reverse_attempts_inline,
                                   sent_at, already_reversing=True)

    async def _reverse(self, order: PaymentResult, acquirer: Acquirer, attempts: int, sent_at: float, *,
                       already_reversing: bool = False) -> PaymentResult:
        """Reverse (cancel) with the same order number until a definite answer or ``attempts`` calls,
        the first never sooner than ``reverse_not_before`` after the pay call (``sent_at``)."""
        await self._sleep_until(sent_at + self.settings.reverse_not_before)
        for attempt in range(attempts):
            if attempt:
                await self.sleep(self.settings.reverse_retry_interval)
            if not already_reversing:
                order = await self._move(order, "reversing")
            already_reversing = False
            answer = await self._call(acquirer.reverse(order.order_no))
            if answer is not None and answer.outcome in ("reversed", "refunded"):
                return await self._move(order, answer.outcome, reason=answer.reason or order.reason)
            order = await self._move(order, "retry", reason="reverse_" + (
                "no_answer" if answer is None else (answer.reason or answer.outcome)), count_reverse=True)
        return order

    async def _reconcile_one(self, order: PaymentResult, acquirer: Acquirer) -> PaymentResult:
        if order.state == "paid":  # its service refused it and the refund was never asked
            order = await self._move(order, "reversing", reason="service_refused")
        if order.state == "created":
            return await self._move(order, "failed", reason="not_sent")
        if order.state in ("submitted", "user_paying"):
            answer = await self._call(acquirer.query(order.order_no))
            if answer is not None and answer.outcome == "failed":
                return await self._move(order, "failed", reason=answer.reason)
            if order.state == "submitted":
                order = await self._move(order, "user_paying", reason="restart")
            order = await self._move(order, "timeout", reason="restart")
        sent_at = await self._earliest_pay_call(order)
        return await self._reverse(order, acquirer, self.settings.reverse_attempts_inline, sent_at,
                                   already_reversing=order.state == "reversing")

    # -- plumbing ---------------------------------------------------------------------------------

    async def _call(self, call: Awaitable[Any]) -> Any:
        """An acquirer call; a timeout or any error is an unknown outcome (None), never a failure."""
        try:
            return await asyncio.wait_for(call, self.settings.call_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - every failure of the call means "outcome unknown"
            log.warning("payment gateway call failed: %s", type(err).__name__)
            return None

    async def _sleep_until(self, at: float) -> None:
        delay = at - self.clock()
        if delay > 0:
            await self.sleep(delay)

    async def _earliest_pay_call(self, order: PaymentResult) -> float:
        """When the pay call of an order found in the database may have gone out, at the latest:
        ``submitted`` is committed just before it, so add a margin (the process may have stalled)."""
        row = await self.db.read(lambda c: c.execute(
            "SELECT submitted_at FROM payment_orders WHERE out_trade_no = ?", (order.order_no,)).fetchone())
        if row is None or row["submitted_at"] is None:
            return self.clock()
        return row["submitted_at"] + self.settings.reconcile_margin

    async def _move(self, order: PaymentResult, state: str, *, reason: str | None = None,
                    transaction_id: str | None = None, submitted_at: float | None = None,
                    count_reverse: bool = False, on_paid: OnPaid | None = None) -> PaymentResult:
        """Commit and journal one transition (checked against :data:`TRANSITIONS`), then pass its
        crashpoint. Raises if the row is no longer in the state this task last saw."""
        if state not in TRANSITIONS[order.state]:
            raise PaymentError(f"payment order {order.order_no}: {order.state} -> {state} is not allowed")
        now = self.clock()
        reason = reason[:64] if reason else None
        new = PaymentResult(order.order_no, state, order.channel, order.last4, order.amount_fen, order.purpose,
                            order.reference, reason if reason is not None else order.reason,
                            transaction_id or order.transaction_id)

        def tx(conn: sqlite3.Connection) -> tuple[int, int]:
            cur = conn.execute(
                "UPDATE payment_orders SET state = ?, reason = ?, transaction_id = ?, updated_at = ?,"
                " submitted_at = COALESCE(?, submitted_at),"
                " ended_at = CASE WHEN ? THEN ? ELSE NULL END,"
                " reverse_attempts = reverse_attempts + ? WHERE out_trade_no = ? AND state = ?",
                (state, new.reason, new.transaction_id, now, submitted_at, state in FINAL_STATES, now,
                 int(count_reverse), order.order_no, order.state))
            if cur.rowcount != 1:
                raise PaymentError(f"payment order {order.order_no} changed under this task")
            _journal(conn, now, new)
            if on_paid is not None and state == "paid":
                on_paid(conn, new)
            row = conn.execute("SELECT reverse_attempts, alerted FROM payment_orders WHERE out_trade_no = ?",
                               (order.order_no,)).fetchone()
            attempts, alerted = row["reverse_attempts"], row["alerted"]
            if state == "retry" and attempts >= self.settings.alert_after_reverse_attempts and not alerted:
                conn.execute("UPDATE payment_orders SET alerted = 1 WHERE out_trade_no = ?", (order.order_no,))
                journal.append(conn, at=now, kind="payment_alert", actor="system", order_no=order.order_no,
                               channel=order.channel, reverse_attempts=attempts, purpose=order.purpose,
                               reference=order.reference)
                alerted = -1  # raised just now
            return attempts, alerted

        attempts, alerted = await self.db.write(tx)
        log.info("payment order %s: %s -> %s%s", order.order_no, order.state, state,
                 f" ({new.reason})" if new.reason else "")
        if alerted == -1:
            log.error("payment order %s: reverse failed %d times, staff must check it with the acquirer",
                      order.order_no, attempts)
        crashpoint(f"payment.{state}")
        return new


def _check_name(what: str, value: object, pattern: re.Pattern[str]) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(what, f"{what} must match {pattern.pattern}")


def _live_row(conn: sqlite3.Connection, purpose: str, reference: str) -> sqlite3.Row | None:
    """The paid or unfinished order of this service (at most one: the partial unique index)."""
    return conn.execute(
        "SELECT * FROM payment_orders WHERE purpose = ? AND reference = ?"
        " AND state NOT IN ('failed', 'reversed', 'refunded')", (purpose, reference)).fetchone()


def _next_sequence(conn: sqlite3.Connection) -> int:
    """The next order sequence number: never reset, so an order number is never drawn twice, even
    when the clock (and with it the date in the number) goes backwards."""
    conn.execute("INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", (_SEQUENCE_COUNTER,))
    conn.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (_SEQUENCE_COUNTER,))
    return int(conn.execute("SELECT value FROM counters WHERE name = ?", (_SEQUENCE_COUNTER,)).fetchone()[0])


def _journal(conn: sqlite3.Connection, now: float, order: PaymentResult) -> None:
    journal.append(conn, at=now, kind=f"payment_{order.state}", actor="system", order_no=order.order_no,
                   channel=order.channel, last4=order.last4, amount_fen=order.amount_fen, purpose=order.purpose,
                   reference=order.reference, reason=order.reason, transaction_id=order.transaction_id)
