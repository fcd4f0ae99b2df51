"""A resident posts a parcel at the kiosk, by tapping the touchscreen like people do (issue 5).

The demo's device panel (/sim/api/devices) plays the resident's hands on the devices: the ID card on
the reader, the parcel on the scale, the camera cable pulled. The wall API (/sim/api/...) puts the
parcel into the open compartment and closes the door. The printed label is fetched from the
simulated printer and its Code 128 and QR codes are decoded.

What the first posting measures (``test-output/e2e/posting-metrics.json``, printed too):

* taps: clicks the test makes on kiosk controls (one ``tap()`` = one tap), focusing a field included;
* text entries: fields filled by typing or pasting (the sender's phone, the recipient line), counted
  apart from taps, with their length;
* device actions: card on the reader, parcel on the scale, parcel in and door closed;
* screens: page loads of the kiosk and the distinct screens (page + posting step) among them;
* software time: for each step, from the resident's action (the tap as the page saw it, the paste
  as the page saw it, or the moment the device panel's HTTP call returned) to the next screen's
  ``load`` event (or the fields filled), all read from the browser's clock. The device panel's own
  HTTP latency is measured apart and not counted. The test has no think time of its own; the
  ``elapsed`` figure is the wall-clock time of the whole run, driving overhead included.
"""

from __future__ import annotations

import io
import json
import random
import re
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from simulators.idcard import make_card

RECIPIENT_LINE = "张三 138 1234 5678 浙江省杭州市西湖区文三路 100 号"
RECIPIENT_PHONE = "13812345678"
SENDER_PHONE = "13900001111"  # synthetic
TAP_BUDGET = 10  # issue 5: at most 10 taps from "Post a parcel" to the label in hand
GOAL_SECONDS = 120  # the plan's goal for a whole posting
MIN_TARGET = 64  # px: every control on the touchscreen
LARGE_TARGET = 80  # px: every button in large print
S10 = re.compile(r"^[A-Z]{2}\d{9}[A-Z]{2}$")

#: Runs in every kiosk page before its own scripts: logs taps, text input and page loads with the
#: browser's clock into sessionStorage, which outlives the page's navigations within the tab.
METER_SCRIPT = """
(() => {
  const KEY = "postkioskMeter";
  const log = (kind, data) => {
    try {
      const all = JSON.parse(sessionStorage.getItem(KEY) || "[]");
      all.push(Object.assign({ kind, t: Date.now() }, data));
      sessionStorage.setItem(KEY, JSON.stringify(all));
    } catch (e) { /* about:blank has no storage */ }
  };
  const name = (el) => (el && el.closest && el.closest("[data-testid]")) ? el.closest("[data-testid]").dataset.testid
                       : (el && el.tagName) || "";
  addEventListener("click", (e) => log("tap", { what: name(e.target) }), true);
  addEventListener("paste", (e) => log("paste", { what: name(e.target) }), true);
  addEventListener("load", () => {
    const root = document.getElementById("posting");
    const result = document.querySelector("[data-result]");
    log("screen", { path: location.pathname, page: document.body.dataset.page,
                    step: root ? root.dataset.step : null, result: result ? result.dataset.result : null });
  });
})();
"""


# ------------------------------------------------------------------------------ the simulators

def sim_post(base_url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(base_url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def sim_get(base_url: str, path: str) -> bytes:
    with urllib.request.urlopen(base_url + path, timeout=10) as response:
        return response.read()


def wall_path(base_url: str, label: str) -> str:
    """The wall API path of compartment ``label`` (``/sim/api/{bank}/{board}/{channel}``)."""
    state = json.loads(sim_get(base_url, "/sim/api/state"))
    for bank in state["banks"]:
        for board in bank["boards"]:
            for door in board["doors"]:
                if door["label"] == label:
                    return f"/sim/api/{bank['bank']}/{board['address']}/{door['channel']}"
    raise AssertionError(f"no compartment {label} on the simulated wall")


def decode_label(png: bytes) -> dict[str, set[str]]:
    """Every code on a label image, by format name."""
    found: dict[str, set[str]] = {}
    for result in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L")):
        found.setdefault(result.format.name, set()).add(result.text)
    return found


# ------------------------------------------------------------------------------ checks

def check_touch_targets(page: Page, screen: str, minimum: int = MIN_TARGET) -> list[dict[str, Any]]:
    """Every visible control (button, link styled as a button, key, field, summary) is at least
    ``minimum`` px in both directions. Returns the boxes checked."""
    boxes = page.locator(
        "button, a.btn, .key, input:not([type=hidden]), textarea, select, summary, main a"
    ).filter(visible=True).evaluate_all(
        """els => els.map(el => {
             const r = el.getBoundingClientRect();
             return {what: el.dataset.testid || el.dataset.key || el.dataset.lang || el.id
                           || el.textContent.trim().slice(0, 20), w: r.width, h: r.height};
           })""")
    assert boxes, f"{screen}: no visible controls found"
    small = [b for b in boxes if b["w"] < minimum - 0.01 or b["h"] < minimum - 0.01]
    assert not small, f"{screen}: controls smaller than {minimum}x{minimum} px: {small}"
    return boxes


@dataclass
class Privacy:
    """Every kiosk page's HTML as it was shown: no ID number ever; no full recipient phone once the
    recipient step is done."""

    id_numbers: list[str]
    recipient_done: bool = False
    pages: int = 0

    def check(self, page: Page, screen: str) -> None:
        html = page.content()
        self.pages += 1
        for number in self.id_numbers:
            assert number not in html, f"{screen}: the ID number is in the page"
        if self.recipient_done:
            for form in (RECIPIENT_PHONE, "138 1234 5678", "138-1234-5678"):
                assert form not in html, f"{screen}: the recipient's full phone is in the page"


class Story:
    """Numbered screenshots so a person can follow what happened."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder, self.prefix, self.n = folder, prefix, 0
        for old in folder.glob(f"{prefix}-[0-9][0-9]-*.png"):
            old.unlink()

    def shot(self, page: Page, name: str) -> None:
        self.n += 1
        page.screenshot(path=str(self.folder / f"{self.prefix}-{self.n:02d}-{name}.png"))


@dataclass
class Step:
    name: str
    action: str  # tap | paste | device
    software_ms: float
    device_call_ms: float | None = None


@dataclass
class Meter:
    """The resident's actions on the kiosk and how long the software took to answer each."""

    page: Page
    base_url: str
    taps: list[str] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    started_wall: float = 0.0

    def tap(self, locator: Locator, what: str) -> float:
        """One tap; returns the browser's time of the click (ms)."""
        before = self._now_ms()
        locator.tap()
        self.taps.append(what)
        return self._event_after("tap", before) or before

    def type_in(self, locator: Locator, text: str, what: str) -> None:
        """Tap a field and type ``text`` (an on-screen or system keyboard): one tap, one text entry."""
        self.tap(locator, f"focus {what}")
        self.page.keyboard.type(text)
        self.entries.append({"field": what, "how": "typed", "chars": len(text)})

    def paste_in(self, locator: Locator, text: str, what: str) -> float:
        """Tap a field and paste ``text`` from the clipboard; returns the browser's time of the paste."""
        self.tap(locator, f"focus {what}")
        self.page.evaluate("text => navigator.clipboard.writeText(text)", text)
        before = self._now_ms()
        self.page.keyboard.press("Control+V")
        self.entries.append({"field": what, "how": "pasted", "chars": len(text)})
        return self._event_after("paste", before) or before

    def device(self, what: str, path: str, body: dict[str, Any] | None = None) -> float:
        """The device panel does what a hand does; returns when its call returned (ms, epoch)."""
        t0 = time.time()
        sim_post(self.base_url, path, body)
        t1 = time.time()
        self.devices.append({"action": what, "call_ms": round((t1 - t0) * 1000, 1)})
        return t1 * 1000

    def screen_loaded(self, since_ms: float, *, page: str, step: str | None = None,
                      result: str | None = None) -> float:
        """The browser's time of the first load of the given screen after ``since_ms``."""
        self.page.wait_for_load_state("load")
        for _ in range(50):
            for e in self.log():
                if e["kind"] == "screen" and e["t"] >= since_ms - 1 and e["page"] == page \
                        and (step is None or e["step"] == step) and (result is None or e["result"] == result):
                    return float(e["t"])
            time.sleep(0.05)
        raise AssertionError(f"no load of {page}/{step or result} after {since_ms}: {self.log()[-5:]}")

    def record(self, name: str, action: str, start_ms: float, ready_ms: float) -> None:
        device_ms = self.devices[-1]["call_ms"] if action == "device" else None
        self.steps.append(Step(name, action, round(ready_ms - start_ms, 1), device_ms))

    def log(self) -> list[dict[str, Any]]:
        return json.loads(self.page.evaluate("() => sessionStorage.getItem('postkioskMeter') || '[]'"))

    def _now_ms(self) -> float:
        return float(self.page.evaluate("() => Date.now()"))

    def _event_after(self, kind: str, since_ms: float) -> float | None:
        for _ in range(20):
            try:
                events = [e for e in self.log() if e["kind"] == kind and e["t"] >= since_ms]
            except Exception:  # the page is navigating: the storage is read again after
                events = []
            if events:
                return float(events[0]["t"])
            time.sleep(0.02)
        return None

    def screens(self, until_page: str) -> tuple[int, list[str]]:
        """(page loads, the distinct screens in the order seen) from the meter's reset up to and
        including the first load of ``until_page``."""
        loads: list[dict[str, Any]] = []
        for e in self.log():
            if e["kind"] == "screen":
                loads.append(e)
                if e["page"] == until_page:
                    break
        names: list[str] = []
        for e in loads:
            name = e["page"] + (f":{e['step']}" if e["step"] else "") + (f":{e['result']}" if e["result"] else "")
            if not names or names[-1] != name:
                names.append(name)
        return len(loads), names

    def reset(self) -> None:
        self.page.evaluate("() => sessionStorage.removeItem('postkioskMeter')")
        self.taps, self.entries, self.devices, self.steps = [], [], [], []
        self.started_wall = time.monotonic()


@dataclass
class Resident:
    id_number: str
    name: str
    birth: str

    @classmethod
    def synthetic(cls, seed: int) -> Resident:
        card = make_card("resident", rng=random.Random(seed))
        return cls(card.id_number, card.name, card.birth.isoformat())

    def card(self) -> dict[str, Any]:
        return {"card_type": "resident", "id_number": self.id_number, "name": self.name, "birth": self.birth}


# ------------------------------------------------------------------------------ the flow

class PostingRun:
    """One posting driven screen by screen; every screen is checked (touch targets, privacy) and
    photographed."""

    def __init__(self, kiosk: Page, base_url: str, story: Story, privacy: Privacy) -> None:
        self.kiosk, self.base_url, self.story, self.privacy = kiosk, base_url, story, privacy
        self.meter = Meter(kiosk, base_url)
        self.paid_with: dict[str, Any] | None = None  # the wallet's answer when paid by code

    def screen(self, name: str, shot: str, minimum: int = MIN_TARGET) -> None:
        expect(self.kiosk.locator("html")).to_have_attribute("lang", "zh-Hans")
        check_touch_targets(self.kiosk, name, minimum)
        self.privacy.check(self.kiosk, name)
        self.story.shot(self.kiosk, shot)

    def start(self, shot_prefix: str) -> None:
        """Home -> "Post a parcel" -> the notice -> agree: the card screen."""
        k, m = self.kiosk, self.meter
        k.goto(self.base_url + "/")
        expect(k.get_by_test_id("start-posting")).to_be_visible()
        m.reset()
        t = m.tap(k.get_by_test_id("start-posting"), "start-posting")
        expect(k.get_by_test_id("notice")).to_be_visible()
        expect(k.get_by_test_id("agree")).to_be_visible()
        m.record("notice", "tap", t, m.screen_loaded(t, page="post", step="notice"))
        self.screen("notice", f"{shot_prefix}notice")
        t = m.tap(k.get_by_test_id("agree"), "agree")
        expect(k.get_by_test_id("card-instruction")).to_be_visible()
        m.record("card", "tap", t, m.screen_loaded(t, page="post", step="card"))
        self.screen("card", f"{shot_prefix}card")

    def present_card(self, resident: Resident | None, *, age: int | None = None) -> None:
        m = self.meter
        body = resident.card() if resident else {"card_type": "resident", "age": age}
        t = m.device("card on the reader", "/sim/api/devices/idcard", body)
        expect(self.kiosk.get_by_test_id("posting-recipient")).to_be_visible()
        m.record("recipient", "device", t, m.screen_loaded(t, page="post", step="recipient"))
        sim_post_delete_card(self.base_url)

    def choose_item(self, shot_prefix: str, category: str = "books") -> None:
        k, m = self.kiosk, self.meter
        expect(k.get_by_test_id("posting-item")).to_be_visible()
        declare = k.get_by_test_id("declare-next")
        expect(declare).to_be_disabled()
        m.tap(k.get_by_test_id(f"category-{category}"), f"category-{category}")
        expect(k.get_by_test_id(f"category-{category}")).to_have_attribute("aria-pressed", "true")
        expect(declare).to_be_enabled()
        self.screen("item", f"{shot_prefix}item")
        t = m.tap(declare, "declare-next")
        expect(k.get_by_test_id("weigh-instruction")).to_be_visible()
        m.record("weigh", "tap", t, m.screen_loaded(t, page="post", step="weigh"))
        self.screen("weigh", f"{shot_prefix}weigh")

    def weigh(self, shot_prefix: str, grams: int) -> None:
        k, m = self.kiosk, self.meter
        t = m.device("parcel on the scale", "/sim/api/devices/scale", {"grams": grams, "unstable": False})
        expect(k.get_by_test_id("price")).to_be_visible()
        m.record("price", "device", t, m.screen_loaded(t, page="post", step="price"))
        expect(k.get_by_test_id("price")).to_have_text(re.compile(r"^¥\d+\.\d\d$"))
        expect(k.get_by_test_id("weight")).to_contain_text(f"{grams / 1000:.3f}")
        expect(k.get_by_test_id("promise")).to_have_text(re.compile(r"\d\d:\d\d"))
        self.screen("price", f"{shot_prefix}price")

    def confirm_and_print(self, shot_prefix: str, wallet: str | None = None) -> tuple[str, str]:
        """Confirm the price (pay at the counter, or with ``wallet``'s payment code shown to the
        scanner): the label prints, a door opens. Returns (waybill, compartment)."""
        k, m = self.kiosk, self.meter
        self.paid_with = None
        if wallet is None:
            t = m.tap(k.get_by_test_id("confirm"), "confirm")
        else:
            t = m.tap(k.get_by_test_id("pay-by-code"), "pay-by-code")
            expect(k.get_by_test_id("scan-payment-code")).to_be_visible()
            m.record("asks for the payment code", "tap", t, m.screen_loaded(t, page="post", step="paying"))
            self.screen("pay by code", f"{shot_prefix}paying")
            t0 = time.time()  # the resident's phone shows a fresh code to the scanner (the device panel)
            self.paid_with = sim_post(self.base_url, f"/sim/api/wallet/{wallet}", {"kind": "success"})
            m.devices.append({"action": f"{wallet} payment code shown", "call_ms": round((time.time() - t0) * 1000, 1)})
            t = time.time() * 1000
        # the printing screen may be skipped when the label is out before the page reloads
        expect(k.get_by_test_id("compartment")).to_have_text(re.compile(r"^[A-Z]\d\d$"), timeout=20_000)
        m.record("label printed, door open", "tap", t, m.screen_loaded(t, page="door"))
        expect(k.get_by_test_id("door-state")).to_have_class(re.compile(r"\bopen\b"))
        expect(k.get_by_test_id("instruction")).not_to_be_empty()
        compartment = k.get_by_test_id("compartment").inner_text().strip()
        self.screen("door", f"{shot_prefix}door")
        sim_post(self.base_url, "/sim/api/devices/scale", {"grams": 0})  # the parcel is lifted off
        codes = decode_label(sim_get(self.base_url, "/sim/api/devices/label_printer/last.png"))
        assert len(codes.get("Code128", ())) == 1, f"one Code 128 on the label: {codes}"
        waybill = next(iter(codes["Code128"]))
        assert S10.match(waybill), waybill
        assert codes.get("QRCode"), f"a QR code on the label: {codes}"
        assert any(waybill in text for text in codes["QRCode"]), codes
        if wallet is not None:
            ledger = json.loads(sim_get(self.base_url, "/sim/api/wallet/ledger"))
            mine = [o for o in ledger if o["last4"] == self.paid_with["last4"]]
            assert len(mine) == 1 and mine[0]["charges"] == 1 and mine[0]["refunds"] == 0, ledger
            assert mine[0]["state"] == "SUCCESS", mine
        return waybill, compartment

    def drop_off(self, shot_prefix: str, waybill: str, compartment: str) -> None:
        k, m = self.kiosk, self.meter
        door = wall_path(self.base_url, compartment)
        sim_post(self.base_url, f"{door}/put")
        t = m.device("parcel in, door closed", f"{door}/close")
        result = k.get_by_test_id("result")
        expect(result).to_have_attribute("data-result", "posted")
        m.record("posted", "device", t, m.screen_loaded(t, page="result", result="posted"))
        expect(k.get_by_test_id("result-text")).to_contain_text(waybill)
        expect(k.get_by_test_id("result-text")).to_contain_text(compartment)
        if self.paid_with:  # the receipt to keep, on screen: wallet, last 4, order number
            expect(k.get_by_test_id("receipt")).to_contain_text(self.paid_with["last4"])
            expect(k.get_by_test_id("receipt-qr")).to_be_visible()
        # when it leaves: the collection's date and time, in the station's clock
        expect(k.get_by_test_id("result-text")).to_have_text(re.compile(r"\d+月\d+日 \d{2}:\d{2}"))
        self.screen("posted", f"{shot_prefix}posted")
        k.get_by_test_id("done").tap()
        expect(k.get_by_test_id("start-posting")).to_be_visible()


def sim_post_delete_card(base_url: str) -> None:
    """The resident takes the card off the reader."""
    request = urllib.request.Request(base_url + "/sim/api/devices/idcard", method="DELETE")
    with urllib.request.urlopen(request, timeout=10):
        pass


def metrics_of(meter: Meter, *, taps_to_label: int, elapsed_s: float, label_ready_s: float) -> dict[str, Any]:
    """The numbers of one posting; "to label" ends when the door screen shows (the label printed,
    the drop-off door open)."""
    loads_to_label, screens_to_label = meter.screens(until_page="door")
    loads, screens = meter.screens(until_page="result")
    to_label = [s for s in meter.steps if s.name != "posted"]
    return {
        "taps_to_label": taps_to_label,
        "tap_budget": TAP_BUDGET,
        "taps": meter.taps,
        "text_entries": len(meter.entries),
        "text_entry_detail": meter.entries,
        "device_actions": len(meter.devices),
        "device_detail": meter.devices,
        "screens_to_label": len(screens_to_label),
        "page_loads_to_label": loads_to_label,
        "screens_to_posted": len(screens),
        "page_loads_to_posted": loads,
        "screen_sequence": screens,
        "software_ms_to_label": round(sum(s.software_ms for s in to_label), 1),
        "software_ms_to_posted": round(sum(s.software_ms for s in meter.steps), 1),
        "steps": [vars(s) for s in meter.steps],
        "elapsed_s_to_label": round(label_ready_s, 2),
        "elapsed_s_to_posted": round(elapsed_s, 2),
        "goal_s": GOAL_SECONDS,
    }


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture
def kiosk(kiosk_page: Page) -> Page:
    """The kiosk page with the meter installed and the clipboard usable (the paste)."""
    kiosk_page.context.add_init_script(METER_SCRIPT)
    kiosk_page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    return kiosk_page


# ------------------------------------------------------------------------------ the tests

def test_resident_posts_a_parcel_then_posts_again_with_fewer_entries(kiosk, kiosk_service, shots):
    svc = kiosk_service
    resident = Resident.synthetic(seed=20261205)
    privacy = Privacy([resident.id_number])
    story = Story(shots, "post")
    run = PostingRun(kiosk, svc.base_url, story, privacy)
    k, m = kiosk, run.meter

    # ---- first posting: home -> notice -> agree -> card
    run.start("first-")
    started = m.started_wall
    run.present_card(resident)

    # ---- recipient: a first-time resident types their phone and pastes the recipient line
    expect(k.get_by_test_id("sender")).to_contain_text(resident.id_number[-4:])
    expect(k.get_by_test_id("recent-1")).to_have_count(0)
    run.screen("recipient (empty)", "first-recipient")
    m.type_in(k.get_by_test_id("sender-phone"), SENDER_PHONE, "sender phone")
    t = m.paste_in(k.get_by_test_id("recipient-line"), RECIPIENT_LINE, "recipient line")
    filled = k.wait_for_function(
        "() => document.getElementById('r-street').value !== '' ? Date.now() : false", polling="raf").json_value()
    m.record("recipient fields filled", "paste", t, float(filled))
    expected = {"name": "张三", "phone": RECIPIENT_PHONE, "province": "浙江省", "city": "杭州市",
                "district": "西湖区", "street": "文三路100号"}
    for key, value in expected.items():
        expect(k.get_by_test_id(f"field-{key}")).to_have_value(value)
    story.shot(k, "first-recipient-filled")
    t = m.tap(k.get_by_test_id("recipient-next"), "recipient-next")
    expect(k.get_by_test_id("posting-item")).to_be_visible()
    m.record("item", "tap", t, m.screen_loaded(t, page="post", step="item"))
    privacy.recipient_done = True

    # ---- item, weigh, price, confirm: the label
    run.choose_item("first-")
    run.weigh("first-", grams=1250)
    waybill, compartment = run.confirm_and_print("first-", wallet="wechat")
    label_in_hand = time.monotonic() - started
    taps_to_label = len(m.taps)
    expect(k.get_by_test_id("compartment")).to_have_text(compartment)

    # ---- the door: parcel in, door closed at the wall; the kiosk says posted
    run.drop_off("first-", waybill, compartment)
    elapsed = time.monotonic() - started

    metrics = {"first_posting": metrics_of(m, taps_to_label=taps_to_label, elapsed_s=elapsed,
                                           label_ready_s=label_in_hand)}
    first = metrics["first_posting"]
    assert taps_to_label <= TAP_BUDGET, f"{taps_to_label} taps to the label: {m.taps}"
    assert first["text_entries"] == 2
    assert first["screen_sequence"][:6] == ["post:notice", "post:card", "post:recipient", "post:item", "post:weigh",
                                            "post:price"], first["screen_sequence"]
    assert first["software_ms_to_posted"] < GOAL_SECONDS * 1000

    # ---- second posting by the same resident: the recent recipient, the phone remembered
    run.start("again-")
    started = m.started_wall
    run.present_card(resident)
    expect(k.get_by_test_id("sender-phone-known")).to_contain_text(SENDER_PHONE[-4:])
    expect(k.get_by_test_id("sender-phone")).to_have_count(0)
    recent = k.get_by_test_id("recent-1")
    expect(recent).to_contain_text("张*")
    expect(recent).to_contain_text("138****5678")
    run.screen("recipient (returning)", "again-recipient")
    m.tap(recent, "recent-1")
    expect(recent).to_have_attribute("aria-pressed", "true")
    t = m.tap(k.get_by_test_id("recipient-next"), "recipient-next")
    expect(k.get_by_test_id("posting-item")).to_be_visible()
    m.record("item", "tap", t, m.screen_loaded(t, page="post", step="item"))
    run.choose_item("again-", category="documents")
    run.weigh("again-", grams=300)
    waybill2, compartment2 = run.confirm_and_print("again-", wallet="alipay")
    label_in_hand = time.monotonic() - started
    taps_to_label2 = len(m.taps)
    assert waybill2 != waybill
    run.drop_off("again-", waybill2, compartment2)
    metrics["second_posting"] = metrics_of(m, taps_to_label=taps_to_label2,
                                           elapsed_s=time.monotonic() - started, label_ready_s=label_in_hand)
    second = metrics["second_posting"]
    assert second["text_entries"] == 0
    assert taps_to_label2 + second["text_entries"] < taps_to_label + first["text_entries"]
    metrics["privacy"] = {"pages_checked": privacy.pages, "id_number_in_html": False,
                          "recipient_phone_in_html_after_recipient_step": False}

    out = shots / "posting-metrics.json"
    out.write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n")
    print(f"posting metrics ({out}):\n{json.dumps(metrics, ensure_ascii=False, indent=2)}")
    assert svc.process.poll() is None, f"the service died:\n{svc.log_tail()}"


def test_large_print_and_priority_for_a_resident_of_72(kiosk, kiosk_service, shots):
    svc = kiosk_service
    story = Story(shots, "post-elderly")
    privacy = Privacy([])
    run = PostingRun(kiosk, svc.base_url, story, privacy)
    k = kiosk

    # ---- the normal print sizes on the notice, to compare
    k.goto(svc.url("/post"))
    expect(k.get_by_test_id("notice")).to_be_visible()
    normal_title = font_px(k, "h1.title")
    normal_text = font_px(k, ".notice li")
    expect(k.locator("body")).not_to_have_class(re.compile(r"\blarge-print\b"))

    # ---- the list of items that cannot be posted, from the notice and back
    k.get_by_test_id("catalogue-link").tap()
    expect(k.get_by_test_id("catalogue").locator("li")).to_have_count(19)
    run.screen("catalogue", "catalogue")
    k.get_by_test_id("back-to-posting").tap()
    expect(k.get_by_test_id("notice")).to_be_visible()

    # ---- a resident of 72: large print and the priority banner from the card on
    run.start("")
    run.present_card(None, age=72)
    expect(k.locator("body")).to_have_class(re.compile(r"\blarge-print\b"))
    expect(k.get_by_test_id("elderly-banner")).to_be_visible()
    run.screen("recipient, large print", "recipient-large", minimum=LARGE_TARGET)
    assert font_px(k, "h1.title") >= 1.4 * normal_title
    assert font_px(k, ".sender p") >= 1.4 * normal_text
    assert font_px(k, "[data-testid=recipient-next]") >= 1.4 * 26
    k.get_by_test_id("cancel").tap()
    expect(k.get_by_test_id("start-posting")).to_be_visible()
    sim_post_delete_card(svc.base_url)
    assert svc.process.poll() is None, f"the service died:\n{svc.log_tail()}"


def test_no_posting_while_the_camera_is_down_and_pickups_still_work(kiosk, kiosk_service, shots):
    svc = kiosk_service
    story = Story(shots, "post-camera")
    k = kiosk
    k.goto(svc.url("/"))

    # ---- the camera stops: no posting, pickups as usual
    sim_post(svc.base_url, "/sim/api/devices/camera/down")
    k.get_by_test_id("start-posting").tap()
    unavailable = k.get_by_test_id("posting-unavailable")
    expect(unavailable).to_be_visible()
    expect(unavailable).to_have_text(re.compile(r"\S"))
    expect(k.get_by_test_id("agree")).to_have_count(0)
    check_touch_targets(k, "posting unavailable")
    story.shot(k, "camera-down")
    k.get_by_test_id("home").tap()
    k.get_by_test_id("start-pickup").tap()
    expect(k).to_have_url(svc.url("/pickup"))
    expect(k.get_by_test_id("code")).to_be_visible()
    story.shot(k, "camera-down-pickup")

    # ---- the camera is back: posting again
    sim_post(svc.base_url, "/sim/api/devices/camera/up")
    k.get_by_test_id("home").tap()
    k.get_by_test_id("start-posting").tap()
    expect(k.get_by_test_id("posting-unavailable")).to_have_count(0)
    expect(k.get_by_test_id("agree")).to_be_visible()
    story.shot(k, "camera-up")
    assert svc.process.poll() is None, f"the service died:\n{svc.log_tail()}"


def font_px(page: Page, selector: str) -> float:
    return float(page.locator(selector).first.evaluate("el => parseFloat(getComputedStyle(el).fontSize)"))
