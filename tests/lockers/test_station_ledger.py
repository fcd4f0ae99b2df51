"""The station's accounts: commission table, prepaid balance at credit limit 0, atomic agency debits,
and the daily close against a scripted gateway (tests/lockers/test_payments.py's fake acquirer)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from decimal import Decimal

import pytest

from hal.printer import PrinterProfile, printer_protocol
from lockers import accounts, journal
from lockers.errors import InvalidInput, NotAllowed
from lockers.station_ledger import (DEFAULT_COMMISSIONS, CloseReport, CommissionConfigError, CommissionTable,
                                    DailyClose, InsufficientPrepaidBalance, StationLedger, commission_fen,
                                    posting_kind, yuan_to_fen)
from tests.lockers.test_payments import Rig, Scenario

DAY = "2026-11-30"  # the rig's clock starts at 2026-11-30 08:53:20 Asia/Shanghai


def code(n: int) -> str:
    return f"1345678901234{n:05d}"


class Station:
    """A payment rig with a ledger and a daily close on the same database and clock."""

    def __init__(self, rig: Rig, **ledger_kw) -> None:
        self.rig = rig
        self.ledger = StationLedger(rig.db, clock=rig.time, **ledger_kw)
        self.close = DailyClose(self.ledger, rig.acquirers, station_id="SZ01")
        self.n = 0

    async def staff(self, login: str = "li.wei") -> str:
        await self.rig.db.write(lambda c: accounts.create_account(
            c, role="staff", login=login, name="李伟", secret="correct horse 1", now=0.0))
        return login

    async def agency(self, amount_fen: int, service: str = "phone_bill", on_paid=None):
        self.n += 1
        hook = on_paid or self.ledger.agency_on_paid(service, amount_fen)
        return await self.rig.desk.pay("bill", f"bill-{self.n}", amount_fen, code(self.n), on_paid=hook)

    async def posting(self, amount_fen: int):
        self.n += 1
        return await self.rig.desk.pay("posting", str(self.n), amount_fen, code(self.n))

    async def rows(self, table: str) -> list[sqlite3.Row]:
        return await self.rig.db.read(lambda c: c.execute(f"SELECT * FROM {table} ORDER BY id").fetchall())


@pytest.fixture
async def st(tmp_path):
    rig = Rig(tmp_path)
    await rig.start()
    yield Station(rig)
    await rig.stop()


# -- commission table ------------------------------------------------------------------------------------


def test_the_operators_commission_examples():
    table = CommissionTable.from_config(DEFAULT_COMMISSIONS)
    assert table.compute("phone_bill", 10_000) == 50  # 0.5 yuan per payment, whatever the amount
    assert table.compute("phone_bill", 3_000, quantity=2) == 100
    assert table.compute("newspapers", 24_000) == 1_200  # 5% of turnover
    assert table.compute("stamps", 1_000) == 50
    assert table.compute("greeting_cards", 1_500) == 150  # 10%
    assert table.compute("express_parcel", 1_200, kind="goods") == 200  # 2 yuan per item
    assert table.compute("express_parcel", 1_200, kind="documents") == 180  # 1.8 yuan
    assert table.compute("express_parcel", 2_400, quantity=3, kind="goods") == 600
    assert posting_kind("documents") == "documents" and posting_kind("clothing") == "goods"


@pytest.mark.parametrize("turnover, expected", [(1230, 62), (1229, 61), (1210, 61), (10, 1), (9, 0), (0, 0)])
def test_percent_is_rounded_half_up_to_the_fen_per_transaction(turnover, expected):
    # 5% of 1210 = 60.5: half up gives 61 where banker's rounding would give 60
    assert commission_fen("percent", "5", turnover, 1) == expected


def test_toml_floats_and_strings_are_taken_as_written():
    table = CommissionTable.from_config({"phone_bill": {"per_item_yuan": 0.5}, "mail": {"percent": 2.5},
                                         "x": {"per_item_fen_by_kind": {"goods": 200}}})
    assert table.rule("phone_bill").fen_per_item == 50
    assert table.rule("mail").percent == Decimal("2.5")
    assert table.compute("mail", 1_000) == 25


@pytest.mark.parametrize("config, words", [
    ({"phone_bill": {"per_item_yuan": "0.505"}}, "whole"),
    ({"phone_bill": {"per_item_fen": -1}}, "non-negative"),
    ({"phone_bill": {"per_item_fen": True}}, "number"),
    ({"newspapers": {"percent": 101}}, "between 0 and 100"),
    ({"newspapers": {"percent": "abc"}}, "not a number"),
    ({"newspapers": {"percent": "NaN"}}, "finite"),
    ({"newspapers": {"percent": 5, "per_item_fen": 1}}, "exactly one"),
    ({"newspapers": {}}, "exactly one"),
    ({"newspapers": {"pct": 5}}, "unknown key"),
    ({"Phone Bill": {"percent": 5}}, "must match"),
    ({"express_parcel": {"per_item_yuan_by_kind": {}}}, "table of kind"),
    ({"express_parcel": {"per_item_yuan_by_kind": {"Goods!": 2}}}, "kind"),
    ({"newspapers": 5}, "rule is a table"),
])
def test_a_bad_commission_table_is_refused_with_what_is_wrong(config, words):
    with pytest.raises(CommissionConfigError) as info:
        CommissionTable.from_config(config)
    assert words in str(info.value)
    assert next(iter(config)) in str(info.value) or "service name" in str(info.value)


def test_unknown_services_and_kinds_are_refused():
    table = CommissionTable.from_config(DEFAULT_COMMISSIONS)
    with pytest.raises(InvalidInput):
        table.compute("lottery", 100)
    with pytest.raises(InvalidInput):
        table.compute("express_parcel", 100, kind="furniture")
    with pytest.raises(InvalidInput):
        table.compute("express_parcel", 100)  # the kind is required where the rate depends on it
    with pytest.raises(InvalidInput):
        table.compute("phone_bill", 100, kind="goods")


@pytest.mark.parametrize("text, fen", [("100", 10_000), ("12.5", 1_250), ("0.05", 5), (" 3.10 ", 310)])
def test_yuan_to_fen_is_exact(text, fen):
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", ["0", "-5", "1.005", "abc", "", "inf"])
def test_yuan_to_fen_refuses_what_is_not_counted_money(text):
    with pytest.raises(InvalidInput):
        yuan_to_fen(text)


# -- prepaid balance -------------------------------------------------------------------------------------


async def test_zero_credit_refuses_an_agency_payment_with_a_message_code(st):
    assert await st.ledger.balance() == 0
    with pytest.raises(InsufficientPrepaidBalance) as info:
        await st.ledger.check_can_cover(1)
    assert info.value.code == "prepaid_balance_low" and info.value.shortfall_fen == 1
    assert "top up" in str(info.value)
    login = await st.staff()
    entry = await st.ledger.top_up(10_000, login, "POST-20261130-01")
    assert entry.balance_after_fen == 10_000 and await st.ledger.balance() == 10_000
    await st.ledger.check_can_cover(10_000)
    with pytest.raises(InsufficientPrepaidBalance) as info:
        await st.ledger.check_can_cover(10_001)
    assert (info.value.balance_fen, info.value.shortfall_fen) == (10_000, 1)
    kinds = [r["kind"] for r in await st.rig.db.read(lambda c: c.execute("SELECT kind FROM events").fetchall())]
    assert "ledger_top_up" in kinds


async def test_a_configured_credit_limit_lets_the_balance_go_that_far_below_zero(st):
    ledger = StationLedger(st.rig.db, clock=st.rig.time, credit_limit_fen=500)
    await ledger.check_can_cover(500)
    with pytest.raises(InsufficientPrepaidBalance):
        await ledger.check_can_cover(501)
    with pytest.raises(ValueError):
        StationLedger(st.rig.db, credit_limit_fen=-1)


async def test_top_ups_are_by_a_named_staff_account(st):
    await st.rig.db.write(lambda c: accounts.create_courier(c, login="20001234", name="张三", carrier="SF",
                                                           pin="24681357", now=0.0))
    login = await st.staff()
    for who in ("nobody", "20001234"):
        with pytest.raises(NotAllowed):
            await st.ledger.top_up(1_000, who, "SLIP1")
    for amount in (0, -100, 1.5, True, 100_000_001):
        with pytest.raises(InvalidInput):
            await st.ledger.top_up(amount, login, "SLIP1")
    with pytest.raises(InvalidInput):
        await st.ledger.top_up(100, login, "slip with spaces")
    assert await st.rig.db.read(lambda c: c.execute("SELECT COUNT(*) FROM ledger_entries").fetchone()[0]) == 0


async def test_an_agency_payment_debits_and_accrues_in_the_payment_transaction(st):
    await st.ledger.top_up(10_000, await st.staff(), "SLIP1")
    result = await st.agency(3_000)
    assert result.paid
    assert await st.ledger.balance() == 7_000
    entries = await st.ledger.entries(DAY)
    assert [(e.kind, e.amount_fen, e.balance_after_fen, e.order_no) for e in entries][-1] == (
        "agency_debit", 3_000, 7_000, result.order_no)
    accrual = (await st.rows("commission_accruals"))[-1]
    assert (accrual["service"], accrual["commission_fen"], accrual["order_no"]) == ("phone_bill", 50, result.order_no)


async def test_a_balance_that_runs_out_before_paid_refunds_the_payer_and_debits_nothing(st):
    await st.ledger.top_up(1_000, await st.staff(), "SLIP1")
    await st.ledger.check_can_cover(800)  # passes at quote time...
    await st.agency(500)  # ...but another payment takes the balance meanwhile
    result = await st.agency(800)
    assert result.state == "refunded" and result.reason == "service_refused"
    assert not st.rig.wechat.kept_money(result.order_no)
    assert await st.ledger.balance() == 500
    assert result.order_no not in [e.order_no for e in await st.ledger.entries()]
    assert all(a["order_no"] != result.order_no for a in await st.rows("commission_accruals"))


async def test_a_failure_after_the_debit_rolls_the_debit_back(st):
    await st.ledger.top_up(10_000, await st.staff(), "SLIP1")
    debit = st.ledger.agency_on_paid("phone_bill", 2_000)

    def debit_then_fail(conn, order):
        debit(conn, order)
        raise RuntimeError("the bill record could not be written")

    result = await st.agency(2_000, on_paid=debit_then_fail)
    assert result.state == "refunded"
    assert await st.ledger.balance() == 10_000
    assert [e.kind for e in await st.ledger.entries()] == ["top_up"]
    assert await st.rows("commission_accruals") == []


async def test_a_wrong_amount_or_service_is_refused_before_the_payment(st):
    with pytest.raises(InvalidInput):
        st.ledger.agency_on_paid("lottery", 100)
    with pytest.raises(InvalidInput):
        st.ledger.agency_on_paid("phone_bill", 0)
    await st.ledger.top_up(10_000, await st.staff(), "SLIP1")
    result = await st.agency(700, on_paid=st.ledger.agency_on_paid("phone_bill", 600))
    assert result.state == "refunded" and await st.ledger.balance() == 10_000


async def test_refund_agency_credits_back_and_reverses_the_commission_once(st):
    await st.ledger.top_up(10_000, await st.staff(), "SLIP1")
    paid = await st.agency(3_000)
    first = await st.ledger.refund_agency(paid.order_no, "biller_failed")
    again = await st.ledger.refund_agency(paid.order_no, "biller_failed")
    assert first == again and first.balance_after_fen == 10_000 and await st.ledger.balance() == 10_000
    accruals = await st.rows("commission_accruals")
    assert [a["commission_fen"] for a in accruals] == [50, -50] and accruals[1]["reverses_id"] == accruals[0]["id"]


async def test_express_parcel_pilot_pay_is_accrued_once_per_posting(st):
    def postings(conn):
        for _ in range(2):
            conn.execute("INSERT INTO postings (state, notice_version, created_at) VALUES ('paid', 'v1', 0)")

    await st.rig.db.write(postings)
    goods = await st.rig.db.write(lambda c: st.ledger.accrue_for_posting(c, 1, posting_kind("clothing"), 1_200))
    docs = await st.rig.db.write(lambda c: st.ledger.accrue_for_posting(c, 2, posting_kind("documents"), 1_000))
    again = await st.rig.db.write(lambda c: st.ledger.accrue_for_posting(c, 1, "goods", 1_200))
    assert (goods, docs, again) == (200, 180, 200)
    rows = await st.rows("commission_accruals")
    assert [(r["posting_id"], r["kind"], r["commission_fen"]) for r in rows] == [(1, "goods", 200), (2, "documents", 180)]
    assert await st.ledger.balance() == 0  # pilot pay is income, not a prepaid debit


async def test_the_ledger_and_accruals_are_append_only(st):
    await st.ledger.top_up(100, await st.staff(), "SLIP1")
    with sqlite3.connect(st.rig.path) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE ledger_entries SET amount_fen = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM ledger_entries")


# -- daily close -------------------------------------------------------------------------------------------


async def seed_matched_day(st: Station) -> dict[str, str]:
    await st.ledger.top_up(50_000, await st.staff(), "SLIP1")
    a = await st.agency(3_000)
    b = await st.agency(10_000)
    c = await st.posting(1_200)
    st.rig.wechat.scenarios = [Scenario("failed", fail_reason="NOTENOUGH")]
    d = await st.posting(800)
    assert (a.paid, b.paid, c.paid, d.state) == (True, True, True, "failed")
    return {"a": a.order_no, "b": b.order_no, "c": c.order_no, "d": d.order_no}


async def test_a_matched_day_closes_clean(st):
    orders = await seed_matched_day(st)
    report = await st.close.run(DAY, actor="staff:li.wei")
    assert report.ok, report.mismatches
    assert report.version == 1
    assert [o.order_no for o in report.orders] == list(orders.values())
    assert [o.gateway for o in report.orders] == ["paid", "paid", "paid", "failed"]
    assert report.paid_by_channel == {"wechat": (3, 14_200)}
    assert report.paid_by_purpose == {"bill": (2, 13_000), "posting": (1, 1_200)}
    assert report.ledger == {"opening": 0, "top_ups": 50_000, "debits": 13_000, "refunds": 0, "closing": 37_000}
    assert report.commissions == {"phone_bill": 100}
    assert (await st.close.latest(DAY)) == report
    events = await st.rig.db.read(lambda c: c.execute(
        "SELECT detail FROM events WHERE kind = 'daily_close'").fetchall())
    assert json.loads(events[0]["detail"])["ok"] is True


async def test_the_day_is_the_local_day(st):
    await seed_matched_day(st)
    st.rig.time.now += 86_400
    await st.posting(500)
    today = await st.close.run(DAY)
    tomorrow = await st.close.run("2026-12-01")
    assert len(today.orders) == 4 and len(tomorrow.orders) == 1
    assert tomorrow.ledger["opening"] == tomorrow.ledger["closing"] == 37_000
    assert tomorrow.ok


async def test_gateway_and_local_disagreements_are_flagged_never_adjusted(st):
    orders = await seed_matched_day(st)
    # the gateway no longer holds paid order c (refunded at the gateway's back office)...
    st.rig.wechat.orders[orders["c"]].refunded = True
    # ...and did take the money of order d, which failed here
    gw = st.rig.wechat.orders[orders["d"]]
    gw.closed, gw.captured_at, gw.tid = False, st.rig.time(), "TLATE"
    before = [dict(r) for r in await st.rig.rows()]
    report = await st.close.run(DAY)
    flags = {m.order_no: m.code for m in report.mismatches}
    assert flags == {orders["c"]: "local_paid_gateway_not", orders["d"]: "gateway_paid_local_not"}
    assert not report.ok
    assert [dict(r) for r in await st.rig.rows()] == before  # nothing adjusted
    assert not any(k == "reverse" for k, _, _ in st.rig.wechat.calls)


async def test_a_gateway_that_cannot_be_asked_is_flagged(st):
    orders = await seed_matched_day(st)
    st.rig.wechat.orders[orders["a"]].scenario.query_errors = 1
    close = DailyClose(st.ledger, {"wechat": st.rig.wechat}, station_id="SZ01")
    report = await close.run(DAY)
    assert [(m.code, m.order_no) for m in report.mismatches] == [("gateway_unknown", orders["a"])]
    no_acquirer = await DailyClose(st.ledger, {}, station_id="SZ01").run(DAY)
    assert {m.code for m in no_acquirer.mismatches} == {"gateway_unknown"} and len(no_acquirer.mismatches) == 4


async def test_an_unbalanced_ledger_is_flagged(st):
    await seed_matched_day(st)
    with sqlite3.connect(st.rig.path) as conn:  # a row written around the ledger, with a wrong balance
        conn.execute("INSERT INTO ledger_entries (at, day, kind, amount_fen, balance_after_fen, staff_login, reference)"
                     " VALUES (?, ?, 'top_up', 1000, 99999, 'li.wei', 'FORGED')", (st.rig.time(), DAY))
    report = await st.close.run(DAY)
    codes = [m.code for m in report.mismatches]
    assert "ledger_chain_broken" in codes
    assert report.ledger["closing"] == 99_999 and report.ledger["top_ups"] == 51_000


async def test_missing_debits_commissions_and_bad_arithmetic_are_flagged(st):
    orders = await seed_matched_day(st)
    st.n += 1
    undebited = await st.rig.desk.pay("bill", "bill-x", 400, code(99))  # an agency order without the hook
    with sqlite3.connect(st.rig.path) as conn:
        conn.execute("INSERT INTO commission_accruals (at, day, service, basis, rate, turnover_fen, quantity,"
                     " commission_fen, order_no) VALUES (?, ?, 'newspapers', 'percent', '5', 1230, 1, 99, NULL)",
                     (st.rig.time(), DAY))
    st.rig.wechat.orders[orders["a"]].refunded = True
    report = await st.close.run(DAY)
    codes = {(m.code, m.order_no) for m in report.mismatches}
    assert ("agency_debit_missing", undebited.order_no) in codes
    assert ("commission_arithmetic", None) in codes
    assert ("local_paid_gateway_not", orders["a"]) in codes


async def test_an_agency_refund_balances_and_a_missing_one_is_flagged(st):
    await st.ledger.top_up(10_000, await st.staff(), "SLIP1")
    kept = await st.agency(2_000)
    back = await st.agency(3_000)
    await st.ledger.refund_agency(back.order_no, "biller_failed")
    await st.rig.desk.refund_paid("bill", back.reference, "biller_failed")
    forgotten = await st.agency(1_000)
    await st.rig.desk.refund_paid("bill", forgotten.reference, "biller_failed")  # the balance was not given back
    report = await st.close.run(DAY)
    assert [(m.code, m.order_no) for m in report.mismatches] == [("agency_debit_unrefunded", forgotten.order_no)]
    assert report.ledger == {"opening": 0, "top_ups": 10_000, "debits": 6_000, "refunds": 3_000, "closing": 7_000}
    assert report.commissions == {"phone_bill": 100}  # 3 x 50 accrued, 50 reversed
    assert kept.paid


async def test_a_second_close_is_a_new_version_and_keeps_the_first(st):
    orders = await seed_matched_day(st)
    first = await st.close.run(DAY)
    st.rig.wechat.orders[orders["c"]].refunded = True
    second = await st.close.run(DAY)
    assert (first.version, second.version) == (1, 2)
    assert first.ok and not second.ok
    versions = await st.close.versions(DAY)
    assert versions == [first, second] and await st.close.latest(DAY) == second
    with sqlite3.connect(st.rig.path) as conn, pytest.raises(sqlite3.IntegrityError, match="new version"):
        conn.execute("UPDATE daily_closes SET ok = 1")
    assert await st.rig.db.read(journal.verify)
    assert await st.close.latest("2026-01-01") is None
    with pytest.raises(InvalidInput):
        await st.close.run("30/11/2026")


async def test_csv_round_trip_with_bom_and_no_personal_data(st):
    orders = await seed_matched_day(st)
    st.rig.wechat.orders[orders["c"]].refunded = True
    report = await st.close.run(DAY, actor="staff:li.wei")
    raw = report.to_csv()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(rows[0]) == list(CloseReport.CSV_HEADER)
    order_rows = [r for r in rows if r["section"] == "order"]
    assert [r["order_no"] for r in order_rows] == list(orders.values())
    assert order_rows[0]["amount_fen"] == "3000" and order_rows[0]["amount_yuan"] == "30.00"
    assert order_rows[0]["last4"] == code(1)[-4:] and order_rows[2]["flag"] == "local_paid_gateway_not"
    ledger = {r["key"]: int(r["amount_fen"]) for r in rows if r["section"] == "ledger"}
    assert ledger == report.ledger
    assert [r["key"] for r in rows if r["section"] == "mismatch"] == ["local_paid_gateway_not"]
    assert rows[-1]["section"] == "close" and rows[-1]["flag"] == "MISMATCH"
    blob = raw.decode("utf-8-sig") + json.dumps(report.to_dict(), ensure_ascii=False)
    for n in range(1, 5):
        assert code(n) not in blob and code(n)[:-4] not in blob
    assert CloseReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


async def test_the_slip_prints_on_a_receipt_printer(st):
    orders = await seed_matched_day(st)
    st.rig.wechat.orders[orders["c"]].refunded = True
    report = await st.close.run(DAY)
    parts = report.to_receipt_parts()
    text = [p for p in parts if isinstance(p, str)]
    assert text[0] == f"日终轧帐 {DAY}" and "  期末 370.00" in text
    assert f"!! local_paid_gateway_not {orders['c']}" in text
    for width in (576, 384):  # 80 mm and 58 mm paper
        job = printer_protocol("escpos").job(parts, PrinterProfile(width_dots=width))
        assert "日终轧帐".encode("gbk") in job
