"""T-F2: with no network no paid flow starts (the fee page, the bill page, the posting's pay step
refuse and send the resident to the counter), while deposits and pickups go on. The payment desk's
network check is a real TCP check of the gateway's endpoint: the gateway simulator is stopped."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from lockers.acquirers.wechat_v2 import WeChatV2Acquirer
from hal.netcheck import Reachability, endpoint
from lockers.payments import PaymentDesk, PaymentSettings
from simulators.pay_gateway import run_pay_gateway
from tests.payment_fixtures import APPID, KEY, MCH
from tests.kiosk.test_api import login, stored_parcel



@pytest.fixture
async def offline(kiosk_station):
    s = kiosk_station
    gateway = await run_pay_gateway(appid=APPID, mch_id=MCH, api_key=KEY)
    url = gateway.url
    net = Reachability([endpoint(url)], interval=60, timeout=0.5, stale_after=0.3)
    acquirer = WeChatV2Acquirer(url, appid=APPID, mch_id=MCH, api_key=KEY, timeout=0.4)
    s.kiosk.payments = PaymentDesk(s.db, {"wechat": acquirer}, settings=PaymentSettings(station_id="T01"),
                                   online=net.online)
    assert await net.check()  # reachable while the gateway runs
    await gateway.close()  # the network goes down
    await asyncio.sleep(0.4)  # the last good check goes stale
    assert not await net.check() and not s.kiosk.payments.is_online()
    s.kiosk.bills = object()  # offered, but no paid flow may start
    yield s
    await acquirer.aclose()


async def test_no_paid_flow_starts_but_deposits_and_pickups_go_on(offline):
    s, c = offline, offline.client
    c.cookies.set("pk_lang", "en")
    s.custody.settings = dataclasses.replace(s.custody.settings, fee_per_day_fen=50)
    auth = await login(s)
    # a deposit and a pickup within the free period: as usual
    _, spec, code, _ = await stored_parcel(s, c, auth)
    r = await c.post("/api/pickups", json={"code": code})
    assert r.status_code == 200, r.text
    label = r.json()["compartment"]
    await s.wait_for(lambda: s.custody.door_of(label) == "open")
    s.bank.take_parcel(spec.board, spec.channel)
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: s.kiosk.terminal.screen.name == "result")
    await c.post("/api/screen/dismiss")
    # a parcel past its free period: the fee is shown, to be paid at the counter; nothing opens
    _, spec2, code2, _ = await stored_parcel(s, c, auth, tracking="ZT7777777778")
    s.clock.advance(26 * 3600)
    pulses = s.bank.door(spec2.board, spec2.channel).pulses
    r = await c.post("/api/pickups", json={"code": code2})
    assert r.status_code == 402 and "pay_url" not in r.json() and "counter" in r.json()["message"]
    assert s.kiosk.pay.fee is None and s.bank.door(spec2.board, spec2.channel).pulses == pulses
    # bills: refused before anything is asked
    r = await c.post("/api/bills", json={"service": "phone_bill", "account": "13912345678", "amount_fen": 3000})
    assert r.status_code == 503 and r.json()["error"] == "payments_offline"
    page = await c.get("/bills")
    assert 'data-testid="bills-offline"' in page.text and 'data-testid="bill-next"' not in page.text
