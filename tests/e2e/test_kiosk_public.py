"""The kiosk as a device in a public place (issue 9): large print one tap away on every screen, and a
page left alone asks "still there?", then goes back to the start and forgets the session."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import Page, expect

IDLE = 20  # the shortest idle time the configuration allows; the question comes 20 s before it ends


@pytest.fixture
def short_idle(monkeypatch):
    monkeypatch.setenv("POSTKIOSK_STATION__IDLE_SECONDS", str(IDLE))


def posting_step(base_url: str) -> str:
    with urllib.request.urlopen(base_url + "/api/posting", timeout=5) as r:
        return json.loads(r.read())["step"]


def test_large_print_is_one_tap_away_on_every_screen(kiosk_page: Page, kiosk_service):
    k = kiosk_page
    for path in ("/", "/pickup", "/courier", "/help", "/post"):
        k.goto(kiosk_service.url(path))
        switch = k.get_by_test_id("large-print")
        expect(switch).to_be_visible()
        expect(k.locator("body")).not_to_have_class(re.compile(r"\blarge-print\b"))
        switch.tap()
        expect(k).to_have_url(kiosk_service.url(path))
        expect(k.locator("body")).to_have_class(re.compile(r"\blarge-print\b"))
        expect(k.get_by_test_id("large-print")).to_have_attribute("aria-pressed", "true")
        small = k.locator("main button, main a.btn").filter(visible=True).evaluate_all(
            "els => els.map(e => e.getBoundingClientRect()).filter(r => r.width < 80 || r.height < 80).length")
        assert small == 0, f"{path}: {small} controls under 80 px in large print"
        assert float(k.locator("body").evaluate("el => parseFloat(getComputedStyle(el).fontSize)")) >= 27
        k.get_by_test_id("large-print").tap()  # and off again
        expect(k.locator("body")).not_to_have_class(re.compile(r"\blarge-print\b"))
    k.goto(kiosk_service.url("/help"))
    expect(k.get_by_test_id("opening-hours")).to_be_visible()


@pytest.mark.timeout(120)
def test_an_idle_page_asks_then_goes_home_and_forgets_the_posting(short_idle, kiosk_page: Page, kiosk_service):
    k = kiosk_page
    k.goto(kiosk_service.url("/"))
    k.get_by_test_id("large-print").tap()
    k.get_by_test_id("start-posting").tap()
    k.get_by_test_id("agree").tap()
    expect(k.get_by_test_id("card-instruction")).to_be_visible()
    assert posting_step(kiosk_service.base_url) == "card"
    # large print doubles the idle time: the question comes after 2 x 20 - 20 = 20 s
    started = time.monotonic()
    question = k.get_by_test_id("still-there")
    expect(question).to_be_visible(timeout=30_000)
    asked_after = time.monotonic() - started
    assert 15 <= asked_after <= 28, asked_after
    expect(question).to_contain_text(re.compile(r"\d"))
    k.get_by_test_id("still-here").tap()  # "continue": the posting goes on
    expect(question).to_be_hidden()
    assert posting_step(kiosk_service.base_url) == "card"
    # nobody answers the second time: home, the posting cancelled, large print off
    expect(question).to_be_visible(timeout=30_000)
    expect(k.get_by_test_id("start-posting")).to_be_visible(timeout=30_000)
    assert posting_step(kiosk_service.base_url) == "notice"
    expect(k.locator("body")).not_to_have_class(re.compile(r"\blarge-print\b"))
