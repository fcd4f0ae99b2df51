"""Paying a bill at the kiosk (an agency payment, issue 6): the station's prepaid balance must cover
it (credit limit 0) or the resident is refused before anything is charged, with words for staff;
then a scanned payment code pays, the biller credits, the balance is debited and the commission
accrued. The real PaymentDesk and WeChat Pay v2 client against the gateway simulator on loopback."""

from __future__ import annotations

import asyncio

import pytest

from hal.codes import classify
from lockers import accounts
from lockers.acquirers.wechat_v2 import WeChatV2Acquirer
from lockers.bills import BillDesk, SimulatedBiller
from lockers.payments import PaymentDesk
from lockers.station_ledger import StationLedger
from simulators.pay_gateway import Scenario, run_pay_gateway
from tests.payment_fixtures import APPID, KEY, MCH, fast_settings

FAST = fast_settings()
PHONE = "13912345678"


@pytest.fixture
async def billing(kiosk_station):
    s = kiosk_station
    s.gateway = await run_pay_gateway(appid=APPID, mch_id=MCH, api_key=KEY)
    acquirer = WeChatV2Acquirer(s.gateway.url, appid=APPID, mch_id=MCH, api_key=KEY, timeout=0.4)
    s.kiosk.payments = PaymentDesk(s.db, {"wechat": acquirer}, settings=FAST)
    s.ledger = StationLedger(s.db)
    s.biller = SimulatedBiller()
    s.kiosk.bills = BillDesk(s.db, s.custody.keys,
                             s.kiosk.payments, s.ledger, s.biller)
    await s.db.write(lambda c: accounts.create_account(c, role="staff", login="wang.fang", name="王芳",
                                                       secret="counter staff 2026", now=0.0))
    yield s
    await acquirer.aclose()
    await s.gateway.close()


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_bill_is_refused_when_the_prepaid_balance_cannot_cover_it(billing):
    s = billing
    s.client.cookies.set("pk_lang", "en")
    r = await s.client.post("/api/bills", json={"service": "phone_bill", "account": PHONE, "amount_fen": 5000})
    assert r.status_code == 409 and r.json()["error"] == "prepaid_balance_low"
    assert "top up" in r.json()["message"] and PHONE not in r.text
    assert s.gateway.orders == {}


async def test_a_bill_paid_by_code_is_credited_debited_and_earns_its_commission(billing):
    s = billing
    await s.ledger.top_up(20000, "wang.fang", "BANK-1")
    page = await s.client.get("/")
    assert 'data-testid="start-bills"' in page.text
    r = await s.client.post("/api/bills", json={"service": "phone_bill", "account": PHONE, "amount_fen": 5000})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "scan" and r.json()["account"] == "139****5678" and PHONE not in r.text
    form = await s.client.get("/bills")
    assert 'data-scan-page="payment"' in form.text and PHONE not in form.text
    await s.kiosk.take_payment_code(classify("134567890123456789"))
    await until(lambda: s.kiosk.pay.bill is not None and s.kiosk.pay.bill.state == "done")
    bill = (await s.client.get("/api/bills")).json()
    assert bill["result"]["state"] == "credited"
    assert s.biller.balance_of("phone_bill", PHONE) == 5000
    assert await s.ledger.balance() == 15000
    rows = await s.db.read(lambda c: c.execute("SELECT service, commission_fen FROM commission_accruals").fetchall())
    assert [tuple(r) for r in rows] == [("phone_bill", 50)]  # 0.5 yuan per phone bill payment
    [order] = s.gateway.orders.values()
    assert order.charges == 1 and order.total_fee == 5000
    assert (await s.client.post("/api/bills/end")).status_code == 200
    assert (await s.client.get("/api/bills")).status_code == 409


async def test_a_refused_code_charges_nothing_and_debits_nothing(billing):
    s = billing
    await s.ledger.top_up(20000, "wang.fang", "BANK-1")
    await s.client.post("/api/bills", json={"service": "phone_bill", "account": PHONE, "amount_fen": 3000})
    s.gateway.script(Scenario("notenough"))
    await s.kiosk.take_payment_code(classify("134567890123456789"))
    await until(lambda: s.kiosk.pay.bill is not None and s.kiosk.pay.bill.state == "failed")
    assert await s.ledger.balance() == 20000 and s.biller.calls == 0
    page = await s.client.get("/bills")
    assert 'data-testid="bill-message"' in page.text
