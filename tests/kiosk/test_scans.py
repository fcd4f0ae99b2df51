from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from kiosk import i18n
from starlette.requests import Request

from hal.scanner import ScannedCode
from kiosk.scans import ScanRouter, listening_page, localise, mask, pickup_token
from kiosk.terminal import Terminal
from lockers.errors import DoorUnavailable, FeeDue

TOKEN_BODY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
TOKEN = "PK1-" + TOKEN_BODY


def scanned(text, error=None):
    return ScannedCode(text, "]Q1", 0.0, error)


async def source(*codes):
    for code in codes:
        yield code


@pytest.mark.parametrize("text, token", [
    (TOKEN, TOKEN),
    (TOKEN.lower(), TOKEN),
    (f"  {TOKEN}\t", TOKEN),
    (f"https://post.example.cn/p/{TOKEN}", TOKEN),
    (f"https://post.example.cn/p?t={TOKEN}&x=1", TOKEN),
    (f"取件码 12345678，或在柜机扫码：{TOKEN} 。", TOKEN),
    (TOKEN + "A", None),  # too long: not ours
    ("X" + TOKEN, None),
    (TOKEN[:-1], None),
    ("PK1-" + "1" * 26, None),  # not base32
    ("PK2-" + TOKEN_BODY, None),
    (f"{TOKEN} {TOKEN}", None),  # two tokens: ambiguous
    ("6901234567892", None),
    ("12345678", None),
])
def test_pickup_token_in_scanned_text(text, token):
    assert pickup_token(text) == token


def test_mask_keeps_only_the_last_four():
    assert mask(TOKEN) == "PK1-…WXYZ"


async def stored(s, c):
    await s.make_courier(pin="24681357")
    r = await c.post("/api/courier/session", json={"login": "10000001", "pin": "24681357"})
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    r = await c.post("/api/deposits", headers=auth,
                     json={"tracking": "SF1234567890", "phone": "13812345678", "size": "M", "consent": True})
    label = r.json()["compartment"]
    spec = s.spec(label)
    await s.wait_for(lambda: s.custody.door_of(label) == "open")
    s.bank.put_parcel(spec.board, spec.channel)
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: len(s.sms.recent) == 1)
    await s.wait_for(lambda: s.kiosk.terminal.screen.name == "home")
    link = re.search(r"扫码：(\S+)", s.sms.recent[-1]["text"]).group(1)
    return label, spec, link


async def test_a_scanned_token_opens_its_door_and_a_second_scan_is_refused(kiosk_station, caplog):
    s, c = kiosk_station, kiosk_station.client
    label, spec, token = await stored(s, c)
    router = ScanRouter(s.custody, s.kiosk.terminal)
    caplog.set_level(logging.DEBUG)
    await router.run(source(scanned(f"https://post.example.cn/p/{token}")))
    screen = s.kiosk.terminal.screen
    assert (screen.name, screen.flow, screen.compartment) == ("door", "pickup", label)
    # a second scan while the door is on screen is not acted on, the door stays on screen, and the
    # door page is told why
    door_page = s.kiosk.terminal.subscribe(page="door")
    try:
        assert await router.handle(scanned(token)) == "ignored"
        event, data = door_page.get_nowait()
        while event != "scan_rejected":
            event, data = door_page.get_nowait()
        assert data["error"] == "terminal_busy" and data["messages"]["en"].startswith("A door is open right now")
    finally:
        s.kiosk.terminal.unsubscribe(door_page)
    assert s.kiosk.terminal.screen.compartment == label
    await s.wait_for(lambda: s.custody.door_of(label) == "open")
    s.bank.take_parcel(spec.board, spec.channel)
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: s.kiosk.terminal.screen.result == "collected")
    # on the result screen the same token is refused with describe()'s message, in both languages
    assert await router.handle(scanned(token)) == "refused"
    screen = s.kiosk.terminal.screen
    assert (screen.result, screen.detail["error"]) == ("scan_refused", "unknown_token")
    assert screen.detail["messages"]["zh_Hans_CN"] == "这个二维码不是本柜中快递的取件码，或已经用过。"
    assert screen.detail["messages"]["en"].startswith("This QR code is not for a parcel")
    zh = (await c.get("/")).text
    en = (await c.get("/", headers={"Cookie": "pk_lang=en"})).text
    assert 'data-result="scan_refused"' in zh and "这个二维码不是本柜中快递的取件码" in zh
    assert "This QR code is not for a parcel in this locker" in en
    assert token not in caplog.text and token[-4:] in caplog.text  # masked only


async def test_a_code_that_is_not_a_token_is_explained(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    router = ScanRouter(s.custody, s.kiosk.terminal)
    assert await router.handle(scanned("6901234567892")) == "not_pickup"
    assert s.kiosk.terminal.screen.result == "scan_not_pickup"
    assert "这不是本柜机的取件码。" in (await c.get("/")).text
    assert "This code is not a pickup code of this locker." in (
        await c.get("/", headers={"Cookie": "pk_lang=en"})).text
    # undecodable bytes around a token are never acted on
    assert await router.handle(scanned(f"\\xff{TOKEN}", error="undecodable")) == "not_pickup"


class RefusingCustody:
    def __init__(self, err):
        self.err = err
        self.tokens = []

    async def pickup(self, code=None, *, token=None):
        self.tokens.append(token)
        raise self.err


@pytest.mark.parametrize("err, code, tone, zh", [
    (FeeDue(250, 0.0), "fee_due", "warn", "¥2.50"),
    (DoorUnavailable("bus down"), "door_unavailable", "error", "柜门未能打开"),
    (RuntimeError("bug"), "internal", "error", None),
])
async def test_refusals_show_describes_message_in_every_language(err, code, tone, zh):
    custody = RefusingCustody(err)
    terminal = Terminal(custody, result_seconds=5)
    try:
        router = ScanRouter(custody, terminal)
        await router.run(source(scanned(TOKEN.lower())))
        screen = terminal.screen
        assert custody.tokens == [TOKEN]
        assert (screen.result, screen.tone, screen.detail["error"]) == ("scan_refused", tone, code)
        assert set(screen.detail["messages"]) == set(i18n.LANGUAGES)
        assert screen.detail["message"] == screen.detail["messages"]["zh_Hans_CN"]
        assert screen.detail["messages"]["en"] != screen.detail["messages"]["zh_Hans_CN"]
        if zh:
            assert zh in screen.detail["messages"]["zh_Hans_CN"]
    finally:
        await terminal.stop()


# ---------------------------------------------------------------- typed reads, routed by page

WAYBILL = "SF1385628716739"
WECHAT = "134567890123456789"
ID_NUMBER = "11010519491231002X"


def drain(queue):
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_the_page_on_show_is_the_last_one_listening(kiosk_station):
    terminal = kiosk_station.kiosk.terminal
    assert terminal.page is None
    home = terminal.subscribe(page="home")
    plain = terminal.subscribe()  # a listener that names no page does not count
    deposit = terminal.subscribe(page="courier_deposit")
    assert terminal.page == "courier_deposit"
    assert terminal.publish_to_page("courier_deposit", "scan", {"number": "x"}) == 1
    assert drain(deposit) == [("scan", {"number": "x"})] and drain(home) == [] and drain(plain) == []
    terminal.unsubscribe(deposit)
    assert terminal.page == "home"
    assert terminal.publish_to_page("courier_deposit", "scan", {}) == 0
    terminal.unsubscribe(home)
    terminal.unsubscribe(plain)
    assert terminal.page is None


@pytest.mark.parametrize("page, courier, listening", [
    ("pickup", False, "pickup"), ("courier_deposit", True, "courier_deposit"),
    ("courier_deposit", False, "courier_login"), ("courier_retrieve", False, "courier_login"),
    ("payment", False, "payment"), ("admin", True, None), (None, False, None),
])
def test_pages_a_browser_may_name(page, courier, listening):
    assert listening_page(page, courier=courier) == listening


async def test_a_waybill_scanned_on_the_deposit_page_fills_its_tracking_field(kiosk_station, caplog):
    terminal = kiosk_station.kiosk.terminal
    router = ScanRouter(kiosk_station.custody, terminal)
    home, deposit = terminal.subscribe(page="home"), terminal.subscribe(page="courier_deposit")
    caplog.set_level(logging.DEBUG)
    assert await router.handle(ScannedCode(WAYBILL, "]C0", 0.0)) == "waybill"
    [(event, data)] = drain(deposit)
    assert event == "scan"
    assert {k: data[k] for k in ("kind", "carrier", "number")} == {"kind": "waybill", "carrier": "sf",
                                                                   "number": WAYBILL}
    assert localise(data, "en")["message"] == "Waybill number scanned: SF Express."
    assert localise(data, "zh_Hans_CN")["message"] == "已扫描快递单号：顺丰速运。"
    assert drain(home) == []  # only the deposit page hears of it
    assert terminal.screen.name == "home"
    # an S10 item is China Post's; an all-digit waybill has no carrier named
    await router.handle(scanned("EA123456785CN"))
    await router.handle(scanned("73610555582883"))
    (_, s10), (_, numeric) = drain(deposit)
    assert (s10["kind"], s10["carrier"], s10["number"]) == ("postal_item", "chinapost", "EA123456785CN")
    assert (numeric["carrier"], numeric["number"]) == (None, "73610555582883")
    assert localise(numeric, "en")["message"] == "Waybill number scanned. The carrier was not recognised."
    assert WAYBILL not in caplog.text and "73610555582883" not in caplog.text


@pytest.mark.parametrize("text, en", [
    (WECHAT, "This is a payment code. To pay, first choose what to pay for."),
    (ID_NUMBER, "This is an ID card number. It is not needed here and was not kept."),
    (TOKEN, "This is a pickup code. To collect a parcel, choose “Pick up a parcel” on the home screen."),
    ("12345678", "This is a pickup code. To collect a parcel, choose “Pick up a parcel” on the home screen."),
    ("hello", "This code is not a waybill number. Please scan the waybill's barcode, or type the number."),
])
async def test_reads_that_do_not_fit_the_deposit_page_are_explained_there(kiosk_station, caplog, text, en):
    custody = RefusingCustody(AssertionError("nothing may be picked up from the deposit page"))
    terminal = kiosk_station.kiosk.terminal
    deposit = terminal.subscribe(page="courier_deposit")
    caplog.set_level(logging.DEBUG)
    assert await ScanRouter(custody, terminal).handle(scanned(text)) == "rejected"
    [(event, data)] = drain(deposit)
    assert event == "scan_rejected" and localise(data, "en")["message"] == en
    assert set(data["messages"]) == set(i18n.LANGUAGES) and all(data["messages"].values())
    assert text not in json.dumps(data, ensure_ascii=False) and text not in caplog.text
    assert custody.tokens == [] and terminal.screen.name == "home"


class Payments:
    def __init__(self, fail=None):
        self.codes = []
        self.fail = fail

    async def __call__(self, code):
        if self.fail:
            raise self.fail
        self.codes.append(code)


async def test_payment_codes_go_to_the_payment_flow_only_from_the_payment_page(kiosk_station, caplog):
    terminal = kiosk_station.kiosk.terminal
    payments = Payments()
    router = ScanRouter(kiosk_station.custody, terminal, payments=payments)
    caplog.set_level(logging.DEBUG)
    page = terminal.subscribe(page="payment")
    for code, channel in [(WECHAT, "wechat"), ("28763443825664394", "alipay"), ("6212345678901234567", "unionpay"),
                          ("0112345678901234567", "ecny")]:
        assert await router.handle(scanned(code)) == "payment"
        assert (payments.codes[-1].code, payments.codes[-1].channel) == (code, channel)
    assert drain(page) == []
    # anything else on the payment page is explained, not paid with
    assert await router.handle(scanned(WAYBILL)) == "rejected"
    [(event, data)] = drain(page)
    assert localise(data, "en")["message"] == ("This is not a payment code. Please show the payment code "
                                               "of your wallet app.")
    # the same payment code anywhere else pays nothing
    terminal.unsubscribe(page)
    assert await router.handle(scanned(WECHAT)) == "not_pickup"
    assert len(payments.codes) == 4
    assert terminal.screen.result == "scan_not_pickup"
    assert terminal.screen.detail["messages"]["en"] == "This is a payment code. To pay, first choose what to pay for."
    assert WECHAT not in caplog.text and WECHAT[-4:] in caplog.text


async def test_a_payment_page_without_a_payment_flow_says_so(kiosk_station):
    terminal = kiosk_station.kiosk.terminal
    page = terminal.subscribe(page="payment")
    assert await ScanRouter(kiosk_station.custody, terminal).handle(scanned(WECHAT)) == "rejected"
    [(_, data)] = drain(page)
    assert data["error"] == "payment_unavailable"
    failing = ScanRouter(kiosk_station.custody, terminal, payments=Payments(fail=RuntimeError(WECHAT)))
    assert await failing.handle(scanned(WECHAT)) == "rejected"
    [(_, data)] = drain(page)
    assert data["error"] == "payment_failed" and WECHAT not in json.dumps(data)


async def test_a_pickup_code_scanned_from_a_printed_notice_opens_its_door(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    label, spec, _link = await stored(s, c)
    code = re.search(r"取件码 (\d{8})", s.sms.recent[-1]["text"]).group(1)
    router = ScanRouter(s.custody, s.kiosk.terminal)
    assert await router.handle(ScannedCode(code, "]C0", 0.0)) == "pickup"
    assert (s.kiosk.terminal.screen.name, s.kiosk.terminal.screen.compartment) == ("door", label)


async def test_on_the_pickup_page_refusals_are_told_on_the_page(kiosk_station):
    s = kiosk_station
    terminal = s.kiosk.terminal
    pickup = terminal.subscribe(page="pickup")
    router = ScanRouter(s.custody, terminal)
    assert await router.handle(scanned("00000000")) == "refused"
    [(event, data)] = drain(pickup)
    assert (event, data["error"]) == ("scan_rejected", "wrong_code")
    assert localise(data, "zh_Hans_CN")["message"] != localise(data, "en")["message"]
    for _ in range(6):
        await router.handle(scanned("00000000"))
    *_, (_, paused) = drain(pickup)
    assert paused["error"] == "keypad_paused" and paused["retry_after"] > 0
    assert terminal.screen.name == "home"  # the keypad stays on show
    assert await router.handle(scanned(WAYBILL)) == "not_pickup"
    [(_, data)] = drain(pickup)
    assert localise(data, "en")["message"] == ("This looks like a waybill number. Couriers scan waybills "
                                               "after logging in.")


async def test_home_explains_what_a_read_was_instead(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    router = ScanRouter(s.custody, s.kiosk.terminal)
    assert await router.handle(scanned(ID_NUMBER)) == "not_pickup"
    zh = (await c.get("/")).text
    en = (await c.get("/", headers={"Cookie": "pk_lang=en"})).text
    assert "这不是本柜机的取件码。 这是身份证号码。这里不需要它，也没有保存。" in zh
    assert "It is not needed here and was not kept." in en
    assert ID_NUMBER not in zh and ID_NUMBER not in en


async def test_a_rejection_for_a_page_that_went_away_shows_on_the_result_screen(kiosk_station):
    terminal = kiosk_station.kiosk.terminal
    deposit = terminal.subscribe(page="courier_deposit")
    terminal._pages[deposit] = "courier_retrieve"  # the retrieve page, whose queue is then full
    for _ in range(deposit.maxsize):
        deposit.put_nowait(("screen", {}))
    assert await ScanRouter(kiosk_station.custody, terminal).handle(scanned(WAYBILL)) == "rejected"
    assert terminal.screen.result == "scan_refused"
    assert terminal.screen.detail["messages"]["en"] == ("This looks like a waybill number. To deliver a parcel, "
                                                       "go to the delivery screen first.")
    assert terminal.page is None  # the stalled page was dropped


def events_request(app, page, cookies):
    scope = {"type": "http", "method": "GET", "path": "/api/events", "query_string": f"page={page}".encode(),
             "headers": [(b"cookie", cookies.encode())], "app": app}

    async def receive():
        await asyncio.sleep(3600)

    return Request(scope, receive)


def events_endpoint(app):
    return next(r.endpoint for r in app.routes if getattr(r, "path", None) == "/api/events")


@pytest.mark.parametrize("logged_in, outcome", [(True, "waybill"), (False, "rejected")])
async def test_the_events_stream_registers_its_page_and_speaks_its_language(kiosk_station, logged_in, outcome):
    s, c = kiosk_station, kiosk_station.client
    await s.make_courier(pin="24681357")
    r = await c.post("/api/courier/session", json={"login": "10000001", "pin": "24681357"})
    cookies = "pk_lang=en" + (f"; pk_session={r.json()['token']}" if logged_in else "")
    stream = events_endpoint(s.app)(events_request(s.app, "courier_deposit", cookies), page="courier_deposit")
    try:
        first = await anext(stream)
        assert first.event == "screen"
        assert s.kiosk.terminal.page == ("courier_deposit" if logged_in else "courier_login")
        router = ScanRouter(s.custody, s.kiosk.terminal)
        assert await router.handle(scanned(WAYBILL)) == outcome
        sent = await asyncio.wait_for(anext(stream), 5)
        if logged_in:
            assert sent.event == "scan"
            assert sent.data == {"kind": "waybill", "carrier": "sf", "number": WAYBILL,
                                 "message": "Waybill number scanned: SF Express."}
        else:
            assert sent.event == "scan_rejected"
            assert sent.data["message"] == "This looks like a waybill number. Couriers scan waybills after logging in."
    finally:
        await stream.aclose()
    assert s.kiosk.terminal.page is None
