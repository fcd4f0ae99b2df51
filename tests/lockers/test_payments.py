"""The payment state machine (rules-and-identifiers.md §4.5; T-F1, T-F2) against a scripted gateway
model, with a fake clock: no test waits in real time."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from lockers import payments as pay_mod
from lockers.db import Database
from postkiosk.logs import redact
from lockers.errors import InvalidInput
from lockers.acquirers import AcquirerAnswer, ReverseAnswer
from lockers.payments import (AlreadyPaid, ChannelUnavailable, PaymentDesk, PaymentPending, PaymentSettings,
                              PaymentsOffline, UnknownPaymentCode)

WECHAT = "134567890123456789"
ALIPAY = "289431869362714645"
ECNY = "0112345678901234567"
UNIONPAY = "6212345678901234567"
START = 1_796_000_000.0  # 2026-11-30, Asia/Shanghai


class Crash(BaseException):
    """A simulated kill: not an Exception, so nothing in the desk swallows it."""


class FakeTime:
    """The clock and sleep the desk is given: sleeping moves the clock, nothing really waits."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Scenario:
    """How the gateway and the payer behave for one order.

    ``pay_reply``: paid | user_paying | system_error | timeout | failed (``fail_reason``).
    ``confirm_after``: seconds after the pay call when the payer confirms (None: never); with
    ``declined`` the confirmation fails (insufficient balance). ``query_lag``: how long the gateway's
    query still says "user paying" after the money was taken. ``query_errors``/``reverse_failures``:
    the first N queries raise / reverses answer retry."""

    pay_reply: str = "paid"
    fail_reason: str | None = None
    confirm_after: float | None = None
    declined: bool = False
    query_lag: float = 0.0
    query_errors: int = 0
    reverse_failures: int = 0


@dataclass
class GatewayOrder:
    scenario: Scenario
    sent_at: float
    captured_at: float | None = None
    closed: bool = False
    refunded: bool = False
    reason: str | None = None
    tid: str | None = None


@dataclass
class FakeAcquirer:
    """A gateway model for one channel: it knows the truth (captured or not) and answers as scripted.
    On every pay call it reads the database file through its own connection, to see what was
    committed before the call."""

    channel: str
    time: FakeTime
    db_path: Path
    scenarios: list[Scenario] = field(default_factory=list)
    orders: dict[str, GatewayOrder] = field(default_factory=dict)
    calls: list[tuple[str, str, float]] = field(default_factory=list)
    seen_states: dict[str, str | None] = field(default_factory=dict)
    auth_codes: list[str] = field(default_factory=list)
    block: asyncio.Event | None = None
    crash_on: str | None = None  # "pay" | "query" | "reverse": raise Crash after acting

    def _settle(self, order: GatewayOrder) -> None:
        s = order.scenario
        if order.closed or order.captured_at is not None or s.confirm_after is None:
            return
        if self.time() >= order.sent_at + s.confirm_after:
            if s.declined:
                order.closed, order.reason = True, "NOTENOUGH"
            else:
                order.captured_at = order.sent_at + s.confirm_after
                order.tid = f"T{len(self.orders)}{order.sent_at:.0f}"

    def _maybe_crash(self, what: str) -> None:
        if self.crash_on == what:
            self.crash_on = None
            raise Crash(what)

    async def pay(self, order_no: str, amount_fen: int, auth_code: str, subject: str) -> AcquirerAnswer:
        self.calls.append(("pay", order_no, self.time()))
        self.auth_codes.append(auth_code)
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT state FROM payment_orders WHERE out_trade_no = ?", (order_no,)).fetchone()
        self.seen_states[order_no] = row[0] if row else None
        assert order_no not in self.orders, "an order number was sent twice"
        s = self.scenarios.pop(0) if self.scenarios else Scenario()
        order = self.orders[order_no] = GatewayOrder(s, self.time())
        if self.block is not None:
            await self.block.wait()
        if s.pay_reply == "paid":
            order.captured_at, order.tid = self.time(), f"T{order_no}"
        elif s.pay_reply == "failed":
            order.closed, order.reason = True, s.fail_reason
        self._maybe_crash("pay")
        if s.pay_reply == "paid":
            return AcquirerAnswer("paid", transaction_id=order.tid)
        if s.pay_reply == "failed":
            return AcquirerAnswer("failed", reason=s.fail_reason)
        if s.pay_reply == "timeout":
            raise asyncio.TimeoutError
        if s.pay_reply == "system_error":
            return AcquirerAnswer("unknown", reason="SYSTEMERROR")
        return AcquirerAnswer("user_paying", reason="USERPAYING")

    async def query(self, order_no: str) -> AcquirerAnswer:
        self.calls.append(("query", order_no, self.time()))
        order = self.orders.get(order_no)
        if order is None:
            return AcquirerAnswer("failed", reason="ORDERNOTEXIST")
        self._settle(order)
        self._maybe_crash("query")
        if order.scenario.query_errors > 0:
            order.scenario.query_errors -= 1
            raise ConnectionError("gateway 502")
        if order.refunded or order.closed:
            return AcquirerAnswer("failed", reason=order.reason or "CLOSED")
        if order.captured_at is not None and self.time() >= order.captured_at + order.scenario.query_lag:
            return AcquirerAnswer("paid", transaction_id=order.tid)
        return AcquirerAnswer("user_paying", reason="USERPAYING")

    async def reverse(self, order_no: str) -> ReverseAnswer:
        self.calls.append(("reverse", order_no, self.time()))
        order = self.orders.get(order_no)
        if order is None:
            return ReverseAnswer("reversed", reason="ORDERNOTEXIST")
        self._settle(order)
        if order.scenario.reverse_failures > 0:
            order.scenario.reverse_failures -= 1
            self._maybe_crash("reverse")
            return ReverseAnswer("retry", reason="SYSTEMERROR")
        if order.captured_at is not None:
            order.refunded = True
            self._maybe_crash("reverse")
            return ReverseAnswer("refunded")
        order.closed = True
        self._maybe_crash("reverse")
        return ReverseAnswer("reversed")

    # -- what the test asks ------------------------------------------------------------------------

    def times(self, kind: str, order_no: str | None = None) -> list[float]:
        return [t for k, o, t in self.calls if k == kind and (order_no is None or o == order_no)]

    def kept_money(self, order_no: str) -> bool:
        order = self.orders[order_no]
        return order.captured_at is not None and not order.refunded


class Rig:
    """A desk over a real database file, restartable on the same file and the same gateway."""

    def __init__(self, tmp: Path, settings: PaymentSettings | None = None, online=None) -> None:
        self.tmp = tmp
        self.time = FakeTime()
        self.path = tmp / "custody.sqlite3"
        self.settings = settings or PaymentSettings(station_id="SZ01")
        self.online = online
        self.acquirers = {ch: FakeAcquirer(ch, self.time, self.path) for ch in ("wechat", "alipay", "ecny")}
        self.db: Database | None = None

    @property
    def wechat(self) -> FakeAcquirer:
        return self.acquirers["wechat"]

    async def start(self) -> PaymentDesk:
        self.db = Database(self.path, mounts="")
        await self.db.open()
        self.desk = PaymentDesk(self.db, dict(self.acquirers), clock=self.time, sleep=self.time.sleep,
                                settings=self.settings, online=self.online)
        return self.desk

    async def stop(self) -> None:
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def rows(self) -> list[sqlite3.Row]:
        return await self.db.read(lambda c: c.execute("SELECT * FROM payment_orders ORDER BY id").fetchall())

    async def events(self) -> list[sqlite3.Row]:
        return await self.db.read(lambda c: c.execute(
            "SELECT kind, detail FROM events WHERE kind LIKE 'payment%' ORDER BY id").fetchall())


@pytest.fixture
async def rig(tmp_path):
    r = Rig(tmp_path)
    await r.start()
    yield r
    await r.stop()


def rel(times: list[float], t0: float) -> list[float]:
    return [round(t - t0, 6) for t in times]


# -- the scenarios -------------------------------------------------------------------------------------


async def test_success_commits_the_order_before_the_pay_call(rig):
    result = await rig.desk.pay("posting", "42", 1200, WECHAT)
    assert result.paid and result.channel == "wechat" and result.last4 == "6789"
    assert result.transaction_id == f"T{result.order_no}"
    assert rig.wechat.seen_states[result.order_no] == "submitted"  # committed and visible to another reader
    assert [k for k, _, _ in rig.wechat.calls] == ["pay"]
    assert [e["kind"] for e in await rig.events()] == ["payment_created", "payment_submitted", "payment_paid"]
    assert re.fullmatch(r"SZ01_20261130_\d{8}", result.order_no)
    assert redact(f"order {result.order_no}") == f"order {result.order_no}"  # the log filter leaves it


async def test_user_paying_then_success_queries_every_5_s(rig):
    rig.wechat.scenarios = [Scenario("user_paying", confirm_after=12)]
    result = await rig.desk.pay("posting", "1", 500, WECHAT)
    t0 = rig.wechat.times("pay")[0]
    assert result.paid
    assert rel(rig.wechat.times("query"), t0) == [5, 10, 15]
    assert not rig.wechat.times("reverse")


async def test_user_paying_then_failure_ends_failed_without_reverse(rig):
    rig.wechat.scenarios = [Scenario("user_paying", confirm_after=8, declined=True)]
    result = await rig.desk.pay("posting", "1", 500, WECHAT)
    assert result.state == "failed" and result.reason == "NOTENOUGH"
    assert len(rig.wechat.times("query")) == 2 and not rig.wechat.times("reverse")


async def test_system_error_then_success_on_query(rig):
    rig.wechat.scenarios = [Scenario("system_error", confirm_after=0, query_errors=1)]
    result = await rig.desk.pay("storage_fee", "7", 300, WECHAT)
    t0 = rig.wechat.times("pay")[0]
    assert result.paid
    assert rel(rig.wechat.times("query"), t0) == [5, 10]  # the first query failed: unknown, not failed


async def test_no_success_gives_up_at_30_s_and_reverses(rig):
    rig.wechat.scenarios = [Scenario("user_paying")]
    result = await rig.desk.pay("posting", "1", 500, WECHAT)
    t0 = rig.wechat.times("pay")[0]
    assert rel(rig.wechat.times("query"), t0) == [5, 10, 15, 20, 25, 30]
    assert rel(rig.wechat.times("reverse"), t0) == [30]
    assert result.state == "reversed"
    states = [e["kind"] for e in await rig.events()]
    assert states == ["payment_created", "payment_submitted", "payment_user_paying", "payment_timeout",
                      "payment_reversing", "payment_reversed"]


async def test_late_success_after_giving_up_is_refunded(rig):
    rig.wechat.scenarios = [Scenario("timeout", confirm_after=28, query_lag=10)]
    result = await rig.desk.pay("posting", "1", 500, WECHAT)
    assert result.state == "refunded"
    assert not rig.wechat.kept_money(result.order_no)


async def test_reverse_never_sooner_than_15_s_after_the_pay_call(tmp_path):
    r = Rig(tmp_path, PaymentSettings(query_interval=2, give_up_after=6))
    desk = await r.start()
    try:
        r.wechat.scenarios = [Scenario("user_paying")]
        result = await desk.pay("posting", "1", 500, WECHAT)
        t0 = r.wechat.times("pay")[0]
        assert rel(r.wechat.times("query"), t0) == [2, 4, 6]
        assert rel(r.wechat.times("reverse"), t0) == [15]
        assert result.state == "reversed"
    finally:
        await r.stop()


async def test_reverse_failing_twice_then_working(rig):
    rig.wechat.scenarios = [Scenario("user_paying", reverse_failures=2)]
    result = await rig.desk.pay("posting", "1", 500, WECHAT)
    t0 = rig.wechat.times("pay")[0]
    assert result.state == "reversed"
    assert rel(rig.wechat.times("reverse"), t0) == [30, 35, 40]
    reverse_nos = {o for k, o, _ in rig.wechat.calls if k == "reverse"}
    assert reverse_nos == {result.order_no}  # the same order number every time
    kinds = [e["kind"] for e in await rig.events()]
    assert kinds.count("payment_retry") == 2 and kinds.count("payment_reversing") == 3
    row = (await rig.rows())[0]
    assert row["reverse_attempts"] == 2 and row["alerted"] == 0


async def test_reverse_that_keeps_failing_is_left_to_reconcile_and_alerts(rig):
    rig.wechat.scenarios = [Scenario("user_paying", confirm_after=1, query_lag=99, reverse_failures=6)]
    result = await rig.desk.pay("posting", "1", 500, WECHAT)
    assert result.state == "retry"
    with pytest.raises(PaymentPending):
        await rig.desk.pay("posting", "1", 500, WECHAT)
    touched = await rig.desk.reconcile()
    assert [t.state for t in touched] == ["retry"]
    assert "payment_alert" in [e["kind"] for e in await rig.events()]
    touched = await rig.desk.reconcile()
    assert [t.state for t in touched] == ["refunded"]
    assert not rig.wechat.kept_money(result.order_no)


@pytest.mark.parametrize("reason", ["NOTENOUGH", "AUTH_CODE_INVALID"])  # insufficient balance, code used
async def test_definite_refusal_ends_failed_and_a_new_code_may_be_tried(rig, reason):
    rig.wechat.scenarios = [Scenario("failed", fail_reason=reason), Scenario("paid")]
    first = await rig.desk.pay("posting", "1", 500, WECHAT)
    assert first.state == "failed" and first.reason == reason
    assert [k for k, _, _ in rig.wechat.calls] == ["pay"]
    second = await rig.desk.pay("posting", "1", 500, "134567890123450000")
    assert second.paid and second.order_no != first.order_no


async def test_duplicate_answers_change_nothing(rig):
    rig.wechat.scenarios = [Scenario("user_paying", confirm_after=0)]
    result = await rig.desk.pay("posting", "1", 500, WECHAT)
    assert result.paid
    calls = len(rig.wechat.calls)
    assert await rig.desk.reconcile() == []  # a paid order is final: no query, no reverse
    with pytest.raises(AlreadyPaid):
        await rig.desk.pay("posting", "1", 500, WECHAT)
    assert len(rig.wechat.calls) == calls
    # a late duplicate "paid" for the same order cannot move it: the transition is refused
    with pytest.raises(pay_mod.PaymentError):
        await rig.desk._move(result, "paid")
    assert [r["state"] for r in await rig.rows()] == ["paid"]


async def test_a_paid_order_whose_service_failed_is_refunded(rig):
    result = await rig.desk.pay("posting", "1", 500, WECHAT)
    refunded = await rig.desk.refund_paid("posting", "1", "printer_failed")
    assert refunded.state == "refunded" and not rig.wechat.kept_money(result.order_no)
    assert rig.wechat.times("reverse")[0] - rig.wechat.times("pay")[0] >= 15
    with pytest.raises(pay_mod.PaymentError):
        await rig.desk.refund_paid("posting", "1", "again")
    assert (await rig.desk.order_for("posting", "1")).state == "refunded"


async def test_the_service_is_committed_with_paid_in_one_transaction(rig):
    await rig.db.write(lambda c: c.execute("CREATE TABLE service (ref TEXT PRIMARY KEY, order_no TEXT)"))
    rig.wechat.scenarios = [Scenario("user_paying", confirm_after=6)]

    def give(conn, order):
        assert conn.execute("SELECT state FROM payment_orders WHERE out_trade_no = ?",
                            (order.order_no,)).fetchone()[0] == "paid"  # same transaction, not yet committed
        conn.execute("INSERT INTO service VALUES (?, ?)", (order.reference, order.order_no))

    result = await rig.desk.pay("posting", "9", 800, WECHAT, on_paid=give)
    assert result.paid
    assert [tuple(r) for r in await rig.db.read(lambda c: c.execute("SELECT * FROM service").fetchall())] == [
        ("9", result.order_no)]


async def test_a_service_that_refuses_at_paid_time_gets_the_money_back(rig):
    def refuse(conn, order):
        conn.execute("CREATE TABLE half_written (x)")  # rolled back with the refusal
        raise RuntimeError("the posting was cancelled meanwhile")

    result = await rig.desk.pay("posting", "3", 800, WECHAT, on_paid=refuse)
    assert result.state == "refunded" and result.reason == "service_refused"
    assert not rig.wechat.kept_money(result.order_no)
    assert rig.wechat.times("reverse")[0] - rig.wechat.times("pay")[0] >= 15
    tables = await rig.db.read(lambda c: c.execute(
        "SELECT name FROM sqlite_master WHERE name = 'half_written'").fetchall())
    assert tables == []
    kinds = [e["kind"] for e in await rig.events()]
    assert kinds[-3:] == ["payment_paid", "payment_reversing", "payment_refunded"]


async def test_channels_route_by_code(rig):
    a = await rig.desk.pay("bill", "a", 100, ALIPAY)
    e = await rig.desk.pay("bill", "e", 100, ECNY)
    assert (a.channel, e.channel) == ("alipay", "ecny")
    assert rig.acquirers["alipay"].auth_codes == [ALIPAY] and rig.acquirers["ecny"].auth_codes == [ECNY]


# -- refusals before anything is stored ---------------------------------------------------------------


@pytest.mark.parametrize("code", ["1912345678901234567", "12345678", "SF1385628716739", "", "abc",
                                  "110105194912310003"])  # the last: a valid resident ID number
async def test_unknown_codes_are_refused_and_nothing_is_stored(rig, code):
    with pytest.raises(UnknownPaymentCode) as info:
        await rig.desk.pay("posting", "1", 500, code)
    assert code == "" or code not in str(info.value)
    assert await rig.rows() == [] and not rig.wechat.calls


async def test_a_channel_without_acquirer_is_refused(rig):
    with pytest.raises(ChannelUnavailable):
        await rig.desk.pay("posting", "1", 500, UNIONPAY)
    assert await rig.rows() == []


@pytest.mark.parametrize("bad", [dict(amount_fen=0), dict(amount_fen=-5), dict(amount_fen=1.5),
                                 dict(amount_fen=True), dict(purpose=""), dict(reference="a b")])
async def test_bad_input_is_refused(rig, bad):
    args = dict(purpose="posting", reference="1", amount_fen=500, auth_code=WECHAT) | bad
    with pytest.raises(InvalidInput):
        await rig.desk.pay(**args)
    assert await rig.rows() == []


async def test_offline_starts_no_paid_flow(tmp_path):
    for kwargs in (dict(settings=PaymentSettings(offline=True)), dict(online=lambda: False)):
        r = Rig(tmp_path / str(len(kwargs)), **kwargs)
        desk = await r.start()
        try:
            assert not desk.is_online()
            with pytest.raises(PaymentsOffline):
                await desk.pay("posting", "1", 500, WECHAT)
            assert await r.rows() == [] and not r.wechat.calls
        finally:
            await r.stop()


# -- one order at a time, order numbers -----------------------------------------------------------------


async def test_one_unfinished_order_per_purpose_and_reference(rig):
    rig.wechat.block = asyncio.Event()
    first = asyncio.create_task(rig.desk.pay("posting", "9", 500, WECHAT))
    while not rig.wechat.calls:
        await asyncio.sleep(0.001)
    with pytest.raises(PaymentPending) as info:
        await rig.desk.pay("posting", "9", 500, "134567890123450000")
    assert info.value.state == "submitted"
    other = asyncio.create_task(rig.desk.pay("posting", "10", 500, "134567890123450001"))
    while len(rig.wechat.calls) < 2:
        await asyncio.sleep(0.001)
    rig.wechat.block.set()
    assert (await first).paid and (await other).paid
    assert len(rig.wechat.times("pay")) == 2
    with pytest.raises(AlreadyPaid):
        await rig.desk.pay("posting", "9", 500, "134567890123450002")
    with sqlite3.connect(rig.path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO payment_orders (out_trade_no, purpose, reference, channel, code_last4, amount_fen,"
                     " state, created_at, updated_at) VALUES ('X', 'posting', '9', 'wechat', '1', 1, 'created', 0, 0)")


async def test_order_numbers_are_never_reused_even_when_the_clock_goes_back(rig):
    rig.wechat.scenarios = [Scenario("failed", fail_reason="NOTENOUGH")] * 3
    seen = []
    for shift in (0, -86400 * 3, 0):
        rig.time.now += shift
        seen.append((await rig.desk.pay("posting", "1", 500, WECHAT)).order_no)
    assert len(set(seen)) == 3
    assert [int(n[-8:]) for n in seen] == [1, 2, 3]


# -- no full auth code anywhere ---------------------------------------------------------------------------


async def test_the_full_auth_code_is_not_stored_journaled_or_logged(rig, caplog):
    caplog.set_level("DEBUG")
    rig.wechat.scenarios = [Scenario("paid"), Scenario("user_paying", reverse_failures=1)]
    await rig.desk.pay("posting", "1", 500, WECHAT)
    await rig.desk.pay("posting", "2", 500, "134567890123450000")
    assert rig.wechat.auth_codes == [WECHAT, "134567890123450000"]  # the gateway got it whole
    events = await rig.events()
    await rig.stop()
    blob = b"".join(p.read_bytes() for p in rig.tmp.iterdir() if p.name.startswith("custody.sqlite3"))
    for code in (WECHAT, "134567890123450000"):
        assert code.encode() not in blob
        assert code[:-4].encode() not in blob
        assert all(code not in e["detail"] for e in events)
        assert code not in caplog.text
    assert "6789" in caplog.text


# -- restarts ----------------------------------------------------------------------------------------------

STEPS = ["payment.created", "payment.submitted", "payment.pay_sent", "payment.user_paying", "payment.timeout",
         "payment.reversing", "payment.retry", "payment.paid"]


@pytest.mark.parametrize("crash_at", STEPS)
@pytest.mark.parametrize("late_paid", [False, True])
async def test_reconcile_after_a_crash_at_every_step(tmp_path, monkeypatch, crash_at, late_paid):
    r = Rig(tmp_path)
    desk = await r.start()

    def crashpoint(name: str) -> None:
        if name == crash_at:
            raise Crash(name)

    monkeypatch.setattr(pay_mod, "crashpoint", crashpoint)
    scenario = Scenario("user_paying", confirm_after=20 if late_paid else None, query_lag=50, reverse_failures=1)
    if crash_at == "payment.paid":
        scenario = Scenario("paid")
    r.wechat.scenarios = [scenario]
    with pytest.raises(Crash):
        await desk.pay("posting", "1", 500, WECHAT)
    await r.stop()
    monkeypatch.setattr(pay_mod, "crashpoint", lambda name: None)
    r.time.now += 1
    desk = await r.start()
    await desk.reconcile()
    await desk.reconcile()  # retry left over from the first pass
    rows = await r.rows()
    assert len(rows) == 1 and rows[0]["state"] in pay_mod.FINAL_STATES
    order_no = rows[0]["out_trade_no"]
    if order_no in r.wechat.orders:
        sent = r.wechat.times("pay", order_no)[0]
        assert all(t - sent >= 15 for t in r.wechat.times("reverse", order_no))
        assert r.wechat.kept_money(order_no) == (rows[0]["state"] == "paid")
    else:
        assert rows[0]["state"] == "failed"  # never reached the gateway
    await r.stop()


async def test_a_crash_between_a_refused_service_and_its_refund_is_refunded_at_start_up(tmp_path, monkeypatch):
    """Found by the T-F1 kill -9 harness: ``paid`` (service refused) and ``reversing`` are two
    transactions; a power cut between them must not leave the payer's money taken."""
    r = Rig(tmp_path)
    desk = await r.start()

    def crashpoint(name: str) -> None:
        if name == "payment.paid":
            raise Crash(name)

    def refuse(conn, order):
        raise RuntimeError("cancelled meanwhile")

    monkeypatch.setattr(pay_mod, "crashpoint", crashpoint)
    with pytest.raises(Crash):
        await desk.pay("posting", "1", 500, WECHAT, on_paid=refuse)
    [row] = await r.rows()
    assert row["state"] == "paid" and row["reason"] == "service_refused"
    assert r.wechat.kept_money(row["out_trade_no"])
    await r.stop()
    monkeypatch.setattr(pay_mod, "crashpoint", lambda name: None)
    desk = await r.start()
    await desk.reconcile()
    [row] = await r.rows()
    assert row["state"] == "refunded" and not r.wechat.kept_money(row["out_trade_no"])
    await desk.reconcile()  # a service that took its money honestly is never touched
    await r.stop()


# -- property: random gateway behaviour, crashes and retries ------------------------------------------------

scenarios = st.builds(
    Scenario,
    pay_reply=st.sampled_from(["paid", "user_paying", "system_error", "timeout", "failed"]),
    fail_reason=st.sampled_from(["NOTENOUGH", "AUTH_CODE_INVALID"]),
    confirm_after=st.one_of(st.none(), st.floats(0, 60)),
    declined=st.booleans(),
    query_lag=st.sampled_from([0.0, 3.0, 40.0]),
    query_errors=st.integers(0, 3),
    reverse_failures=st.integers(0, 4),
)
attempts = st.tuples(st.sampled_from(["r1", "r2"]), scenarios,
                     st.one_of(st.none(), st.sampled_from(STEPS)),
                     st.sampled_from([None, "pay", "query", "reverse"]))


@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(attempts, min_size=1, max_size=6))
def test_no_double_charge_and_no_free_service(plan):
    asyncio.run(_run_plan(plan))


async def _run_plan(plan) -> None:
    with tempfile.TemporaryDirectory() as folder:
        r = Rig(Path(folder))
        desk = await r.start()
        served: dict[str, str] = {}  # reference -> order number the service was given on
        try:
            for n, (reference, scenario, crash_at, gateway_crash) in enumerate(plan):
                r.wechat.scenarios = [Scenario(**vars(scenario))]
                r.wechat.crash_on = gateway_crash
                crashed = False
                original = pay_mod.crashpoint

                def crashpoint(name: str, crash_at=crash_at) -> None:
                    if name == crash_at:
                        raise Crash(name)

                pay_mod.crashpoint = crashpoint
                try:
                    result = await desk.pay("posting", reference, 500, f"1345678901234{n:05d}")
                    if result.paid:
                        assert reference not in served
                        served[reference] = result.order_no
                except Crash:
                    crashed = True
                except (PaymentPending, AlreadyPaid):
                    pass
                finally:
                    pay_mod.crashpoint = original
                    r.wechat.crash_on = None
                if crashed:  # restart: the flow that waited is gone
                    await r.stop()
                    r.time.now += 3
                    desk = await r.start()
                    await desk.reconcile()
                    for ref in ("r1", "r2"):
                        order = await desk.order_for("posting", ref)
                        if order is not None and order.paid and served.get(ref) != order.order_no:
                            await desk.refund_paid("posting", ref, "service_not_given")
                r.time.now += 61
            for _ in range(3):
                await desk.reconcile()
            rows = await r.rows()
            for row in rows:
                assert row["state"] in pay_mod.FINAL_STATES, dict(row)
            for ref in ("r1", "r2"):
                kept = [row["out_trade_no"] for row in rows if row["reference"] == ref
                        and row["out_trade_no"] in r.wechat.orders and r.wechat.kept_money(row["out_trade_no"])]
                assert len(kept) <= 1, "double charge"
                if ref in served:  # a service only on money the gateway kept
                    assert kept == [served[ref]]
                else:  # money kept without a service
                    assert kept == []
                for row in rows:
                    if row["reference"] == ref and row["state"] == "paid":
                        assert served.get(ref) == row["out_trade_no"]
        finally:
            await r.stop()
