from __future__ import annotations

import logging
import re

import pytest

from hal.scanner import ScannedCode
from kiosk.scans import ScanRouter, mask, pickup_token
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
    # a second scan while the door is on screen is ignored, the door stays on screen
    assert await router.handle(scanned(token)) == "ignored"
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
        assert set(screen.detail["messages"]) == {"zh_Hans_CN", "en"}
        assert screen.detail["message"] == screen.detail["messages"]["zh_Hans_CN"]
        assert screen.detail["messages"]["en"] != screen.detail["messages"]["zh_Hans_CN"]
        if zh:
            assert zh in screen.detail["messages"]["zh_Hans_CN"]
    finally:
        await terminal.stop()
