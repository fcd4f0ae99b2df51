"""Paying a phone bill at the kiosk in a real browser against the real demo service (issue 6).

The demo station starts with an empty prepaid balance: the bill is refused before anything is asked,
with words for staff; after a staff top-up (the staff API, a named account) the resident taps the
bill, types the number, picks the amount, shows a payment code, and the bill is credited; the
gateway's record shows one charge.
"""

from __future__ import annotations

import json
import re
import urllib.request

from playwright.sync_api import Page, expect

from tests.e2e.test_deposit_and_pickup import kiosk_screen, tap_keys
from tests.e2e.test_posting_page import Story, sim_get, sim_post

PHONE = "13912345678"


def staff_top_up(svc, fen: int) -> None:
    """A named staff member tops up the station's prepaid balance (the demo prints the login)."""
    note = (svc.database.parent / "demo-staff.txt").read_text().split()
    login, password = note[0], note[1]
    body = json.dumps({"login": login, "password": password}).encode()
    request = urllib.request.Request(svc.url("/api/staff/session"), data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.loads(response.read())["token"]
    request = urllib.request.Request(svc.url("/api/staff/balance/top-ups"), method="POST",
                                     data=json.dumps({"amount_fen": fen, "reference": "BANK-E2E"}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["balance_fen"] == fen


def choose_bill(k: Page) -> None:
    k.get_by_test_id("service-phone_bill").tap()
    k.get_by_test_id("account").tap()
    tap_keys(k, ".keypad", PHONE)
    expect(k.get_by_test_id("account")).to_have_value(PHONE)
    k.get_by_test_id("amount-5000").tap()
    expect(k.get_by_test_id("bill-next")).to_be_enabled()
    k.get_by_test_id("bill-next").tap()


def test_a_phone_bill_needs_the_prepaid_balance_then_is_paid_by_code(kiosk_page: Page, kiosk_service, shots):
    svc, k = kiosk_service, kiosk_page
    story = Story(shots, "bills")
    k.goto(svc.url("/"))
    k.get_by_test_id("start-bills").tap()
    expect(k.get_by_test_id("bills-form")).to_be_visible()
    kiosk_screen(k, "bill form", story, "form")

    choose_bill(k)  # the demo's prepaid balance is 0: refused before any code is asked
    expect(k.locator("#message")).to_contain_text(re.compile("预付款"))
    kiosk_screen(k, "bill refused: balance", story, "balance-low")
    assert json.loads(sim_get(svc.base_url, "/sim/api/wallet/ledger")) == []

    staff_top_up(svc, 100_00)
    k.goto(svc.url("/bills"))
    choose_bill(k)
    expect(k.get_by_test_id("scan-payment-code")).to_be_visible()
    expect(k.get_by_test_id("bill-amount")).to_have_text("¥50.00")
    assert PHONE not in k.content()  # masked from here on
    kiosk_screen(k, "bill: show the payment code", story, "scan")

    shown = sim_post(svc.base_url, "/sim/api/wallet/ecny", {"kind": "success"})
    result = k.get_by_test_id("bill-result")
    expect(result).to_have_attribute("data-result", "credited", timeout=15_000)
    kiosk_screen(k, "bill credited", story, "credited")
    [order] = json.loads(sim_get(svc.base_url, "/sim/api/wallet/ledger"))
    assert order["last4"] == shown["last4"] and order["charges"] == 1 and order["amount_fen"] == 5000
    k.get_by_test_id("bill-done").tap()
    expect(k.get_by_test_id("start-pickup")).to_be_visible()
