"""Paying for a posting with a scanned payment code (issue 6): the posting is accepted, its waybill
drawn and its label printed only in the transaction that commits ``paid``.

The real PostingDesk and devices (``tests.lockers.posting_fixtures``), the real PaymentDesk and WeChat
Pay v2 client, and the gateway simulator on loopback HTTP; payment timings are scaled down.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from lockers.acquirers.wechat_v2 import WeChatV2Acquirer
from lockers.errors import FlowConflict
from lockers.payments import PaymentDesk
from lockers.posting import receipt_parts
from simulators.pay_gateway import Scenario, run_pay_gateway
from tests.payment_fixtures import APPID, KEY, MCH, fast_settings
from tests.lockers.posting_fixtures import Kiosk, until

CODE = "134567890123456789"
CODE2 = "134567890123450002"
FAST = fast_settings(query_interval=0.1, give_up_after=0.6, reverse_not_before=0.3)


@pytest.fixture
async def rig(tmp_path):
    gateway = await run_pay_gateway(appid=APPID, mch_id=MCH, api_key=KEY)
    acquirer = WeChatV2Acquirer(gateway.url, appid=APPID, mch_id=MCH, api_key=KEY, timeout=0.4)
    k = Kiosk(tmp_path)
    await k.start()
    k.online = True
    k.payments = PaymentDesk(k.station.db, {"wechat": acquirer}, settings=FAST, online=lambda: k.online)
    await k.desk.stop()
    k.desk = await k.new_desk(payments=k.payments)
    k.gateway = gateway
    yield k
    await k.stop()
    await acquirer.aclose()
    await gateway.close()


async def orders(k: Kiosk) -> list:
    return await k.db.read(lambda c: c.execute("SELECT * FROM payment_orders ORDER BY id").fetchall())


async def wait_paying(k: Kiosk, value: str | None, timeout: float = 5.0) -> None:
    await until(lambda: k.desk.live is not None and k.desk.live.paying == value, timeout=timeout,
                what=f"paying={value}")


async def test_a_scanned_code_pays_then_the_waybill_is_drawn_and_the_label_printed(rig):
    desk = rig.desk
    posting_id = await rig.identify()
    await rig.address()
    priced = await rig.priced()
    assert priced["methods"] == {"code": True, "counter": True}
    view = await desk.choose_code_payment()
    assert view["step"] == "paying" and view["paying"] == "scan"
    await desk.take_payment_code(CODE)
    await rig.wait_state(posting_id, "printed")
    row = await rig.row(posting_id)
    assert row["payment_method"] == "wechat" and row["payment_state"] == "paid" and row["waybill"]
    [order] = await orders(rig)
    assert order["state"] == "paid" and order["purpose"] == "posting" and order["reference"] == str(posting_id)
    assert order["amount_fen"] == priced["price_fen"] and rig.gateway.charges(order["out_trade_no"]) == 1
    paid = [json.loads(e["detail"]) for e in await rig.events("posting_paid")]
    assert paid[-1]["order_no"] == order["out_trade_no"] and paid[-1]["tracking"] == row["waybill"]
    assert len(rig.printer_sim.sim.labels) == 1
    data = await desk.label_data(posting_id)
    assert data.payment_text == f"微信支付 尾号6789 单号 {order['out_trade_no']}"
    assert f"支付 {data.payment_text}" in receipt_parts(data)
    assert CODE not in json.dumps([dict(r) for r in await rig.events()], ensure_ascii=False)


async def test_a_refused_code_leaves_the_price_and_a_new_code_may_be_scanned(rig):
    desk = rig.desk
    posting_id = await rig.identify()
    await rig.address()
    await rig.priced()
    await desk.choose_code_payment()
    rig.gateway.script(Scenario("notenough"))
    await desk.take_payment_code(CODE)
    await wait_paying(rig, "failed")
    view = await desk.view()
    assert view["step"] == "paying" and view["pay_reason"] == "NOTENOUGH" and view["waybill"] is None
    assert (await rig.row(posting_id))["state"] == "priced" and rig.printer_sim.sim.labels == []
    await desk.take_payment_code(CODE2)  # the same posting, a fresh code: a new order number
    await rig.wait_state(posting_id, "printed")
    states = [(o["state"], o["code_last4"]) for o in await orders(rig)]
    assert states == [("failed", "6789"), ("paid", "0002")]


async def test_user_paying_then_confirmed_on_the_phone(rig):
    desk = rig.desk
    posting_id = await rig.identify()
    await rig.address()
    await rig.priced()
    await desk.choose_code_payment()
    rig.gateway.script(Scenario("userpaying", then="success", after_queries=2))
    await desk.take_payment_code(CODE)
    assert desk.live.paying == "charging"
    with pytest.raises(FlowConflict):
        await desk.cancel()  # not while the money may be moving
    with pytest.raises(FlowConflict):
        await desk.confirm()  # nor pay at the counter at the same time
    await rig.wait_state(posting_id, "printed")
    [order] = await orders(rig)
    assert order["state"] == "paid" and order["queries"] == 2


async def test_no_confirmation_in_time_is_reversed_and_nothing_printed(rig):
    desk = rig.desk
    posting_id = await rig.identify()
    await rig.address()
    await rig.priced()
    await desk.choose_code_payment()
    rig.gateway.script(Scenario("userpaying", then="never"))
    await desk.take_payment_code(CODE)
    await wait_paying(rig, "failed")
    [order] = await orders(rig)
    assert order["state"] == "reversed" and rig.gateway.charges(order["out_trade_no"]) == 0
    assert (await rig.row(posting_id))["state"] == "priced" and rig.printer_sim.sim.labels == []


async def test_a_posting_cancelled_while_the_payer_confirms_gets_its_money_back(rig):
    desk = rig.desk
    posting_id = await rig.identify()
    await rig.address()
    await rig.priced()
    await desk.choose_code_payment()
    rig.gateway.script(Scenario("userpaying", then="success", after_queries=3))
    await desk.take_payment_code(CODE)
    # the idle clean-up or staff ends the posting behind the flow's back (the flow itself refuses)
    now = rig.station.clock()
    await rig.db.write(lambda c: desk._end(c, posting_id, "cancelled", "staff", now))
    await until(lambda: desk.live is not None and desk.live.paying == "failed", what="refund")
    [order] = await orders(rig)
    assert order["state"] == "refunded" and order["reason"] == "service_refused"
    gw = rig.gateway.orders[order["out_trade_no"]]
    assert gw.charges == 1 and gw.refunds == 1
    assert (await rig.row(posting_id))["waybill"] is None and rig.printer_sim.sim.labels == []


async def test_offline_starts_no_paid_flow(rig):
    desk = rig.desk
    await rig.identify()
    await rig.address()
    await rig.priced()
    rig.online = False
    assert desk.payment_methods()["code"] is False
    view = await desk.choose_code_payment()
    assert view["step"] == "price" and view["message"] == "payments_offline"
    with pytest.raises(FlowConflict):
        await desk.take_payment_code(CODE)
    await asyncio.sleep(0.1)
    assert await orders(rig) == [] and rig.gateway.orders == {}


async def test_counter_payment_can_be_switched_off(rig, tmp_path):
    import dataclasses

    await rig.desk.stop()
    rig.settings = dataclasses.replace(rig.settings, pay_at_counter=False)
    desk = rig.desk = await rig.new_desk(payments=rig.payments, settings=rig.settings)
    await rig.identify(desk=desk)
    await rig.address(desk=desk)
    view = await rig.priced(desk=desk)
    assert view["methods"] == {"code": True, "counter": False}
    with pytest.raises(FlowConflict):
        await desk.confirm()


async def test_the_commission_is_accrued_with_the_paid_posting(rig):
    from lockers.station_ledger import StationLedger, posting_kind

    ledger = StationLedger(rig.db)
    rig.desk.on_paid = lambda conn, row: ledger.accrue_for_posting(
        conn, row["id"], posting_kind(row["category"]), row["price_fen"])
    posting_id = await rig.identify()
    await rig.address()
    await rig.priced()
    await rig.desk.choose_code_payment()
    await rig.desk.take_payment_code(CODE)
    await rig.wait_state(posting_id, "printed")
    rows = await rig.db.read(lambda c: c.execute("SELECT * FROM commission_accruals").fetchall())
    assert [(r["service"], r["commission_fen"]) for r in rows] == [("express_parcel", 200)]  # 2 yuan, goods
