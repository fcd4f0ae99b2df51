"""A courier deposits a parcel and a resident picks it up, by tapping the kiosk like people do.

A second page plays the person at the wall (/sim): they put the parcel in, close doors, take the
parcel out, and the resident's phone on that page shows the pickup SMS. Assertions are on
data-testid / data-result attributes, the compartment label, codes and door states, not on
sentences (the catalogues are still being translated).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

COURIER_TRACKING = "SF1234567890"
RECIPIENT_PHONE = "13812345678"
EXPECTED_COMPARTMENT = "A05"  # the smallest free M door of the demo layout (S S S S M M M M ...)
MIN_TARGET = 64  # px: every control on the touchscreen


class Story:
    """Numbered screenshots so a person can follow what happened."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.n = 0

    def shot(self, page: Page, name: str, *, full_page: bool = False) -> None:
        self.n += 1
        page.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=full_page)


def check_touch_targets(page: Page, screen: str) -> None:
    """Every visible .btn and .key is at least 64x64 px."""
    targets = page.locator(".btn, .key").filter(visible=True)
    boxes = targets.evaluate_all(
        """els => els.map(el => {
             const r = el.getBoundingClientRect();
             return {what: el.dataset.testid || el.dataset.key || el.dataset.lang || el.textContent.trim(),
                     w: r.width, h: r.height};
           })"""
    )
    assert boxes, f"{screen}: no visible buttons found"
    small = [b for b in boxes if b["w"] < MIN_TARGET - 0.01 or b["h"] < MIN_TARGET - 0.01]
    assert not small, f"{screen}: buttons smaller than {MIN_TARGET}x{MIN_TARGET} px: {small}"


def kiosk_screen(page: Page, screen: str, story: Story, shot: str) -> None:
    """Checks every kiosk screen gets: language, touch target sizes; then a screenshot."""
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    check_touch_targets(page, screen)
    story.shot(page, shot)


def tap_keys(page: Page, pad: str, text: str) -> None:
    """Tap ``text`` key by key on the on-page keypad/keyboard matching selector ``pad``."""
    for ch in text:
        page.locator(f'{pad} [data-key="{ch}"]').filter(visible=True).tap()


def wall_door(sim: Page, label: str) -> Locator:
    """The door element of compartment ``label`` on the simulated wall."""
    return sim.locator(".door").filter(has=sim.locator(".label", has_text=re.compile(rf"^\s*{label}\s*$")))


def wall_tap(sim: Page, door: Locator, action: str) -> None:
    button = door.locator(f'button[data-action="{action}"]')
    expect(button).to_be_enabled()
    button.tap()


def wait_for_wall_refresh(sim: Page) -> None:
    """Let the wall page poll the simulator once more, so what it shows is current."""
    with sim.expect_response(re.compile(r"/sim/api/state$")):
        pass


def enter_pickup_code(page: Page, code: str) -> None:
    code_input = page.get_by_test_id("code")
    code_input.tap()
    tap_keys(page, ".keypad", code)
    expect(code_input).to_have_value(code)
    open_door = page.get_by_test_id("open-door")
    expect(open_door).to_be_enabled()
    open_door.tap()


def wrong_code_for(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


def test_courier_deposits_and_resident_picks_up(kiosk_page, wall_page, kiosk_service, shots):
    svc = kiosk_service
    story = Story(shots)
    kiosk, sim = kiosk_page, wall_page
    alert = kiosk.locator('[role="alert"]').filter(visible=True)

    # ---- home
    kiosk.goto(svc.url("/"))
    expect(kiosk.get_by_test_id("start-courier")).to_be_visible()
    expect(kiosk.get_by_test_id("start-pickup")).to_be_visible()
    kiosk_screen(kiosk, "home", story, "home")

    # ---- courier login on the keypad
    kiosk.get_by_test_id("start-courier").tap()
    expect(kiosk).to_have_url(svc.url("/courier"))
    kiosk.get_by_test_id("login").tap()
    tap_keys(kiosk, ".keypad", svc.courier_login)
    expect(kiosk.get_by_test_id("login")).to_have_value(svc.courier_login)
    kiosk.get_by_test_id("pin").tap()
    tap_keys(kiosk, ".keypad", svc.courier_pin)
    expect(kiosk.get_by_test_id("pin")).to_have_value(svc.courier_pin)
    kiosk_screen(kiosk, "courier login", story, "login")
    kiosk.get_by_test_id("login-submit").tap()

    # ---- deposit step 1: tracking number on the on-page keyboard
    expect(kiosk).to_have_url(svc.url("/courier/deposit"))
    tracking = kiosk.get_by_test_id("tracking")
    expect(tracking).to_be_visible()
    tracking.tap()
    tap_keys(kiosk, ".keyboard", COURIER_TRACKING)
    expect(tracking).to_have_value(COURIER_TRACKING)
    kiosk_screen(kiosk, "deposit step 1", story, "deposit-tracking")
    kiosk.get_by_test_id("next-1").tap()

    # ---- step 2: recipient's phone on the keypad
    phone = kiosk.get_by_test_id("phone")
    expect(phone).to_be_visible()
    phone.tap()
    tap_keys(kiosk, ".keypad", RECIPIENT_PHONE)
    expect(phone).to_have_value(RECIPIENT_PHONE)
    kiosk_screen(kiosk, "deposit step 2", story, "deposit-phone")
    kiosk.get_by_test_id("next-2").tap()

    # ---- step 3: size M, consent, open
    size_m = kiosk.get_by_test_id("size-M")
    expect(size_m).to_be_visible()
    size_m.tap()
    expect(size_m).to_have_attribute("aria-checked", "true")
    consent = kiosk.get_by_test_id("consent")
    consent.tap()
    expect(consent).to_have_attribute("aria-checked", "true")
    kiosk_screen(kiosk, "deposit step 3", story, "deposit-size-consent")
    kiosk.get_by_test_id("open-compartment").tap()

    # ---- door screen: the kiosk opened A05
    expect(kiosk.get_by_test_id("compartment")).to_have_text(EXPECTED_COMPARTMENT)
    expect(kiosk.get_by_test_id("door-state")).to_have_attribute("data-compartment", EXPECTED_COMPARTMENT)
    expect(kiosk.get_by_test_id("instruction")).not_to_be_empty()
    expect(kiosk.get_by_test_id("cancel-deposit")).to_be_visible()
    expect(kiosk.get_by_test_id("door-state")).to_have_class(re.compile(r"\bopen\b"))
    kiosk_screen(kiosk, "deposit door", story, "deposit-door-open")

    # ---- the courier at the wall: the door popped open; put the parcel in and close it
    sim.goto(svc.url("/sim"))
    a05 = wall_door(sim, EXPECTED_COMPARTMENT)
    expect(a05).to_have_count(1)
    expect(a05).to_have_attribute("data-door", "open")
    expect(a05).to_have_attribute("data-pulses", "1")
    wall_tap(sim, a05, "put")
    expect(a05).to_have_attribute("data-item", "present")
    story.shot(sim, "wall-parcel-in", full_page=True)
    wall_tap(sim, a05, "close")
    expect(a05).to_have_attribute("data-door", "closed")

    # ---- kiosk: stored (the result screen goes home by itself after 10 s: check it promptly)
    result = kiosk.get_by_test_id("result")
    expect(result).to_have_attribute("data-result", "deposit_stored")
    expect(kiosk.get_by_test_id("result-text")).to_contain_text(EXPECTED_COMPARTMENT)
    expect(kiosk.get_by_test_id("deposit-another")).to_be_visible()
    kiosk_screen(kiosk, "deposit result", story, "deposit-stored")

    # ---- the resident's phone on the wall page got the pickup code
    sms = sim.locator("#inbox .message .text").filter(has_text=re.compile(r"取件码\s*\d{8}"))
    expect(sms).to_have_count(1)
    code = re.search(r"取件码\s*(\d{8})", sms.inner_text()).group(1)
    expect(a05).to_have_attribute("data-item", "present")
    story.shot(sim, "wall-sms", full_page=True)

    kiosk.get_by_test_id("done").tap()
    expect(kiosk.get_by_test_id("start-pickup")).to_be_visible()

    # ---- resident: a wrong code first; the door stays shut
    kiosk.get_by_test_id("start-pickup").tap()
    expect(kiosk).to_have_url(svc.url("/pickup"))
    expect(kiosk.get_by_test_id("open-door")).to_be_disabled()
    kiosk_screen(kiosk, "pickup", story, "pickup")
    pulses_before = a05.get_attribute("data-pulses")
    enter_pickup_code(kiosk, wrong_code_for(code))
    expect(alert).to_have_count(1)
    expect(alert).to_have_text(re.compile(r"\S"))
    expect(kiosk).to_have_url(svc.url("/pickup"))
    expect(kiosk.get_by_test_id("code")).to_have_value("")
    wait_for_wall_refresh(sim)
    expect(a05).to_have_attribute("data-door", "closed")
    expect(a05).to_have_attribute("data-pulses", pulses_before)
    kiosk_screen(kiosk, "pickup wrong code", story, "pickup-wrong-code")

    # ---- the right code: A05 opens
    enter_pickup_code(kiosk, code)
    expect(kiosk.get_by_test_id("compartment")).to_have_text(EXPECTED_COMPARTMENT)
    expect(kiosk.get_by_test_id("door-state")).to_have_class(re.compile(r"\bopen\b"))
    expect(kiosk.get_by_test_id("instruction")).not_to_be_empty()
    expect(kiosk.get_by_test_id("cancel-deposit")).to_have_count(0)
    kiosk_screen(kiosk, "pickup door", story, "pickup-door-open")

    expect(a05).to_have_attribute("data-door", "open")
    expect(a05).to_have_attribute("data-pulses", str(int(pulses_before) + 1))
    wall_tap(sim, a05, "take")
    expect(a05).to_have_attribute("data-item", "empty")
    wall_tap(sim, a05, "close")
    expect(a05).to_have_attribute("data-door", "closed")
    story.shot(sim, "wall-collected", full_page=True)

    expect(kiosk.get_by_test_id("result")).to_have_attribute("data-result", "collected")
    kiosk_screen(kiosk, "pickup result", story, "collected")

    # ---- the same code again is refused and opens nothing
    kiosk.get_by_test_id("done").tap()
    kiosk.get_by_test_id("start-pickup").tap()
    expect(kiosk).to_have_url(svc.url("/pickup"))
    pulses_after = a05.get_attribute("data-pulses")
    enter_pickup_code(kiosk, code)
    expect(alert).to_have_count(1)
    expect(alert).to_have_text(re.compile(r"\S"))
    expect(kiosk).to_have_url(svc.url("/pickup"))
    wait_for_wall_refresh(sim)
    expect(a05).to_have_attribute("data-door", "closed")
    expect(a05).to_have_attribute("data-pulses", pulses_after)
    kiosk_screen(kiosk, "pickup used code", story, "pickup-code-used")

    assert svc.process.poll() is None, f"the service died:\n{svc.log_tail()}"
