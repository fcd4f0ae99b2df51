"""Storage fees after the free period (R8), paid by a scanned payment code (issue 6).

The fee is shown before anything is charged or opened; the door opens only when the payment is
confirmed; a paid fee is never charged twice; a later day's fee is a new one. The real custody on a
simulated wall, the real PaymentDesk and WeChat Pay v2 client, the gateway simulator on loopback.
"""

from __future__ import annotations

import dataclasses

import pytest

from lockers.acquirers.wechat_v2 import WeChatV2Acquirer
from lockers.custody import FEE_PURPOSE
from lockers.errors import FeeDue, FlowConflict
from lockers.payments import PaymentDesk
from simulators.pay_gateway import Scenario, run_pay_gateway
from tests.payment_fixtures import APPID, KEY, MCH, fast_settings
from tests.lockers.test_custody import store

CODE = "134567890123456789"
FAST = fast_settings()


@pytest.fixture
async def paying(station):
    gateway = await run_pay_gateway(appid=APPID, mch_id=MCH, api_key=KEY)
    acquirer = WeChatV2Acquirer(gateway.url, appid=APPID, mch_id=MCH, api_key=KEY, timeout=0.4)
    desk = PaymentDesk(station.custody.db, {"wechat": acquirer}, settings=FAST, clock=station.clock)
    station.custody.settings = dataclasses.replace(station.settings, fee_per_day_fen=50, fee_cap_fen=300)
    yield gateway, desk
    await acquirer.aclose()
    await gateway.close()


async def fee_due(station, code) -> FeeDue:
    with pytest.raises(FeeDue) as err:
        await station.custody.pickup(code)
    return err.value


async def test_a_paid_fee_opens_the_door_once_and_is_not_charged_again(station, paying):
    gateway, desk = paying
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, code = await store(station, courier, events)
    station.clock.advance(24 * 3600 + 3600)  # one started day after the free period
    due = await fee_due(station, code)
    assert due.fee_fen == 50 and due.reference == f"p{ticket.parcel_id}d1" and due.ticket
    pulses = station.bank.door(spec.board, spec.channel).pulses
    with pytest.raises(FeeDue):
        await station.custody.pickup_paid(due.ticket)  # not paid yet: nothing opens
    result = await desk.pay(FEE_PURPOSE, due.reference, due.fee_fen, CODE,
                            on_paid=station.custody.fee_paid_recorder(due.ticket))
    assert result.paid and gateway.charges(result.order_no) == 1
    assert station.bank.door(spec.board, spec.channel).pulses == pulses  # paying opens nothing by itself
    door = await station.custody.pickup_paid(due.ticket)
    assert door.compartment == spec.label
    await station.wait_for(lambda: station.bank.door(spec.board, spec.channel).pulses == pulses + 1)
    with pytest.raises(FlowConflict):
        await station.custody.pickup_paid(due.ticket)  # used up


async def test_the_code_again_after_paying_opens_without_a_second_charge(station, paying):
    gateway, desk = paying
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, code = await store(station, courier, events)
    station.clock.advance(24 * 3600 + 60)
    due = await fee_due(station, code)
    await desk.pay(FEE_PURPOSE, due.reference, due.fee_fen, CODE,
                   on_paid=station.custody.fee_paid_recorder(due.ticket))
    # the kiosk restarted before the door opened: the resident types the code again
    door = await station.custody.pickup(code)
    assert door.parcel_id == ticket.parcel_id
    assert len(gateway.orders) == 1


async def test_a_refused_payment_opens_nothing_and_a_later_day_is_a_new_fee(station, paying):
    gateway, desk = paying
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, code = await store(station, courier, events)
    station.clock.advance(24 * 3600 + 60)
    due = await fee_due(station, code)
    gateway.script(Scenario("notenough"))
    result = await desk.pay(FEE_PURPOSE, due.reference, due.fee_fen, CODE,
                            on_paid=station.custody.fee_paid_recorder(due.ticket))
    assert result.state == "failed"
    with pytest.raises(FeeDue):
        await station.custody.pickup_paid(due.ticket)
    station.clock.advance(2 * 86400)
    later = await fee_due(station, code)
    assert later.fee_fen == 150 and later.reference == f"p{ticket.parcel_id}d3"


async def test_a_fee_paid_for_a_parcel_that_left_meanwhile_is_refunded(station, paying):
    gateway, desk = paying
    courier = await station.make_courier()
    events = station.custody.subscribe()
    ticket, spec, code = await store(station, courier, events)
    station.clock.advance(24 * 3600 + 60)
    due = await fee_due(station, code)
    now = station.clock()
    await station.custody.db.write(lambda c: c.execute(
        "UPDATE parcels SET state = 'returned', ended_at = ? WHERE id = ?", (now, ticket.parcel_id)))
    result = await desk.pay(FEE_PURPOSE, due.reference, due.fee_fen, CODE,
                            on_paid=station.custody.fee_paid_recorder(due.ticket))
    assert result.state == "refunded" and result.reason == "service_refused"
    gw = gateway.orders[result.order_no]
    assert gw.charges == 1 and gw.refunds == 1
