"""Bill payment: quote against the prepaid balance, pay by code, credit at the biller, refund on refusal."""

from __future__ import annotations

import json

import pytest

from lockers import accounts
from lockers.bills import BillDesk, LogBiller, SimulatedBiller
from lockers.errors import FlowConflict, InvalidInput
from lockers.keys import DeviceKeys
from lockers.station_ledger import DailyClose, InsufficientPrepaidBalance, StationLedger
from tests.lockers.test_payments import Rig, Scenario

PHONE = "13812345678"
WATER = "3301-0099-8877"
DAY = "2026-11-30"


def code(n: int) -> str:
    return f"1345678901234{n:05d}"


class Desk:
    def __init__(self, rig: Rig, keys: DeviceKeys) -> None:
        self.rig = rig
        self.biller = SimulatedBiller()
        self.ledger = StationLedger(rig.db, clock=rig.time)
        self.bills = BillDesk(rig.db, keys, rig.desk, self.ledger, self.biller, clock=rig.time)

    async def top_up(self, fen: int) -> None:
        if not await self.rig.db.read(lambda c: c.execute("SELECT 1 FROM accounts WHERE login = 'li.wei'").fetchone()):
            await self.rig.db.write(lambda c: accounts.create_account(
                c, role="staff", login="li.wei", name="李伟", secret="correct horse 1", now=0.0))
        await self.ledger.top_up(fen, "li.wei", "SLIP1")

    async def bill(self, bill_id: int):
        return await self.rig.db.read(lambda c: c.execute("SELECT * FROM bill_payments WHERE id = ?",
                                                          (bill_id,)).fetchone())

    async def event_kinds(self) -> list[str]:
        rows = await self.rig.db.read(lambda c: c.execute("SELECT kind FROM events ORDER BY id").fetchall())
        return [r["kind"] for r in rows]


@pytest.fixture
async def desk(tmp_path):
    rig = Rig(tmp_path)
    await rig.start()
    yield Desk(rig, DeviceKeys.load_or_create(tmp_path / "device.key"))
    await rig.stop()


async def test_a_phone_bill_is_paid_credited_debited_and_commissioned(desk):
    await desk.top_up(10_000)
    quote = await desk.bills.quote("phone_bill", "+86 138-1234-5678", 5_000)
    assert quote.account_masked == "138****5678" and quote.commission_fen == 50
    assert PHONE not in repr(quote)
    result = await desk.bills.pay(quote, code(1))
    assert result.state == "credited" and result.receipt_no == "B000001"
    assert desk.biller.balance_of("phone_bill", PHONE) == 5_000
    assert await desk.ledger.balance() == 5_000
    row = await desk.bill(quote.bill_id)
    assert (row["state"], row["order_no"], row["account_masked"]) == ("credited", result.order_no, "138****5678")
    assert "bill_credited" in await desk.event_kinds()
    assert (await DailyClose(desk.ledger, desk.rig.acquirers).run(DAY)).ok


async def test_the_number_is_stored_only_masked_and_keyed(desk):
    await desk.top_up(10_000)
    quote = await desk.bills.quote("water_bill", WATER, 2_000)
    await desk.bills.pay(quote, code(1))
    assert quote.account_masked == "********8877"
    row = await desk.bill(quote.bill_id)
    assert row["account_hmac"] == desk.bills.keys.mac("bill_account", "water_bill:330100998877")
    await desk.rig.stop()
    blob = b"".join(p.read_bytes() for p in desk.rig.tmp.iterdir() if p.name.startswith("custody.sqlite3"))
    assert b"330100998877" not in blob and b"3301-0099" not in blob


async def test_no_balance_refuses_at_the_quote_and_nothing_is_charged(desk):
    with pytest.raises(InsufficientPrepaidBalance) as info:
        await desk.bills.quote("phone_bill", PHONE, 5_000)
    assert info.value.code == "prepaid_balance_low"
    assert await desk.rig.rows() == [] and not desk.rig.wechat.calls
    assert await desk.rig.db.read(lambda c: c.execute("SELECT COUNT(*) FROM bill_payments").fetchone()[0]) == 0


async def test_a_balance_spent_between_quote_and_pay_is_refused_before_the_charge(desk):
    await desk.top_up(6_000)
    first = await desk.bills.quote("phone_bill", PHONE, 5_000)
    second = await desk.bills.quote("phone_bill", "13912345678", 5_000)
    assert (await desk.bills.pay(first, code(1))).state == "credited"
    with pytest.raises(InsufficientPrepaidBalance):
        await desk.bills.pay(second, code(2))
    assert len(desk.rig.wechat.times("pay")) == 1
    assert (await desk.bill(second.bill_id))["state"] == "quoted"


async def test_a_biller_refusal_refunds_the_resident_and_the_balance(desk):
    await desk.top_up(10_000)
    desk.biller.script = ["failed"]
    quote = await desk.bills.quote("phone_bill", PHONE, 3_000)
    result = await desk.bills.pay(quote, code(1))
    assert result.state == "refunded" and result.reason == "ACCOUNT_CLOSED"
    assert not desk.rig.wechat.kept_money(result.order_no)
    assert desk.biller.balance_of("phone_bill", PHONE) == 0
    assert await desk.ledger.balance() == 10_000
    assert [e.kind for e in await desk.ledger.entries()] == ["top_up", "agency_debit", "agency_refund"]
    report = await DailyClose(desk.ledger, desk.rig.acquirers).run(DAY)
    assert report.ok and report.commissions == {"phone_bill": 0}


async def test_an_unclear_biller_answer_keeps_the_money_and_alerts_staff(desk):
    await desk.top_up(10_000)
    desk.biller.script = ["error"]
    quote = await desk.bills.quote("phone_bill", PHONE, 3_000)
    result = await desk.bills.pay(quote, code(1))
    assert result.state == "credit_unknown" and result.reason == "ConnectionError"
    assert desk.rig.wechat.kept_money(result.order_no)  # the biller may have credited: no refund
    assert await desk.ledger.balance() == 7_000
    waiting = await desk.bills.needing_staff()
    assert [(w["id"], w["state"], w["account_masked"]) for w in waiting] == [(quote.bill_id, "credit_unknown",
                                                                              "138****5678")]
    assert "bill_alert" in await desk.event_kinds()


async def test_a_failed_payment_leaves_no_debit_and_the_bill_is_not_paid_again(desk):
    await desk.top_up(10_000)
    desk.rig.wechat.scenarios = [Scenario("failed", fail_reason="NOTENOUGH")]
    quote = await desk.bills.quote("gas_bill", "GAS123456", 3_000)
    result = await desk.bills.pay(quote, code(1))
    assert (result.state, result.reason) == ("not_paid", "NOTENOUGH")
    assert await desk.ledger.balance() == 10_000 and desk.biller.calls == 0
    with pytest.raises(FlowConflict):
        await desk.bills.pay(quote, code(2))


@pytest.mark.parametrize("service, account, amount", [
    ("lottery", PHONE, 100), ("phone_bill", "12345", 100), ("water_bill", "12 3", 100),
    ("phone_bill", PHONE, 0), ("phone_bill", PHONE, 500_001), ("phone_bill", PHONE, 10.5)])
async def test_bad_bills_are_refused_without_the_number_in_the_error(desk, service, account, amount):
    await desk.top_up(1_000_000)
    with pytest.raises(InvalidInput) as info:
        await desk.bills.quote(service, account, amount)
    assert account not in str(info.value)


async def test_the_log_biller_logs_only_masked_numbers(caplog):
    caplog.set_level("INFO")
    biller = LogBiller()
    answer = await biller.credit("phone_bill", PHONE, 100, "SZ01_1")
    assert answer.outcome == "credited" and PHONE not in caplog.text and "138****5678" in caplog.text
    assert PHONE not in json.dumps(biller.recent)


@pytest.mark.parametrize("biller_says", ["credited", "never_credited", "unclear"])
async def test_a_bill_left_paid_by_a_power_cut_is_settled_at_start_up(desk, biller_says):
    await desk.top_up(10000)
    quote = await desk.bills.quote("phone_bill", PHONE, 3000)

    class Cut(BaseException):
        """A power cut right after the payment committed, before the biller's answer was recorded."""

    real_credit = desk.biller.credit

    async def credit_then_cut(*args):
        if biller_says == "credited":
            await real_credit(*args)
        raise Cut()

    desk.biller.credit = credit_then_cut
    with pytest.raises(Cut):
        await desk.bills.pay(quote, code(1))
    assert (await desk.bill(quote.bill_id))["state"] == "paid" and await desk.ledger.balance() == 7000
    if biller_says == "unclear":
        async def unclear(order_no):
            raise ConnectionError("biller unreachable")
        desk.biller.status = unclear
    [changed] = await desk.bills.recover()
    row = await desk.bill(quote.bill_id)
    order = await desk.rig.desk.order_for("bill", quote.reference)
    if biller_says == "credited":
        assert changed["state"] == row["state"] == "credited" and order.paid and await desk.ledger.balance() == 7000
    elif biller_says == "never_credited":
        assert changed["state"] == row["state"] == "refunded" and order.state == "refunded"
        assert await desk.ledger.balance() == 10000 and not desk.rig.wechat.kept_money(order.order_no)
    else:
        assert changed["state"] == row["state"] == "credit_unknown" and order.paid
        assert "bill_alert" in await desk.event_kinds()
    assert await desk.bills.recover() == []  # settled once
