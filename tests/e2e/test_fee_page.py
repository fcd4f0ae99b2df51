"""A storage fee paid at the kiosk, in a real browser against the real service (issue 6, rule R8).

The demo station with a free period of about one second: a courier delivers (over the API), the
free period runs out, the resident types the code; the fee is shown before anything is charged; a
wallet code first refused (not enough balance) charges nothing and opens nothing; a second code
pays, the door opens, and the gateway's record shows exactly one charge.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_deposit_and_pickup import enter_pickup_code, kiosk_screen
from tests.e2e.test_posting_page import Story, sim_get, sim_post, wall_path

FREE_SECONDS = 1.0


def api(base_url: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base_url + path, data=json.dumps(body or {}).encode(), method=method,
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def deliver(svc) -> tuple[str, str]:
    """A courier deposit over the API and the door closed at the wall; returns (compartment, code)."""
    token = api(svc.base_url, "POST", "/api/courier/session",
                {"login": svc.courier_login, "pin": svc.courier_pin})["token"]
    ticket = api(svc.base_url, "POST", "/api/deposits", {"tracking": "SF1234567890123", "phone": "13912345678",
                                                          "size": "S", "consent": True}, token)
    label = ticket["compartment"]
    door = wall_path(svc.base_url, label)

    def state() -> dict:
        return json.loads(sim_get(svc.base_url, "/sim/api/state"))

    def wait(what: str, ok) -> None:
        deadline = time.monotonic() + 15
        while not ok():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def door_open() -> bool:
        return any(d["label"] == label and not d["closed"] for b in state()["banks"] for board in b["boards"]
                   for d in board["doors"])

    wait("the door to open", door_open)
    # the service learns doors only by polling: let it see the open door before it is closed
    wait("the kiosk to see the door open", lambda: json.loads(sim_get(svc.base_url, "/api/screen")).get("door") == "open")
    sim_post(svc.base_url, f"{door}/put")
    sim_post(svc.base_url, f"{door}/close")
    wait("the pickup notice", lambda: any("取件码" in m["text"] for m in state()["inbox"]))
    text = next(m["text"] for m in state()["inbox"] if "取件码" in m["text"])
    return label, re.search(r"取件码\s*(\d{8})", text).group(1)


@pytest.mark.service_env(POSTKIOSK_STATION__FREE_STORAGE_HOURS=str(FREE_SECONDS / 3600),
                         POSTKIOSK_STATION__FEE_PER_DAY_FEN="150")
def test_a_storage_fee_is_shown_then_paid_by_code_and_the_door_opens(kiosk_page: Page, kiosk_service, shots):
    svc, k = kiosk_service, kiosk_page
    story = Story(shots, "fee")
    label, code = deliver(svc)
    time.sleep(FREE_SECONDS + 0.5)  # the free period is over
    api(svc.base_url, "POST", "/api/screen/dismiss")  # the courier's result screen: back home

    k.goto(svc.url("/pickup"))
    enter_pickup_code(k, code)
    expect(k.get_by_test_id("fee-confirm")).to_be_visible()
    expect(k.get_by_test_id("fee-amount")).to_have_text("¥1.50")
    kiosk_screen(k, "fee shown", story, "shown")
    assert json.loads(sim_get(svc.base_url, "/sim/api/wallet/ledger")) == []  # nothing charged yet

    k.get_by_test_id("fee-pay").tap()
    expect(k.get_by_test_id("scan-payment-code")).to_be_visible()
    kiosk_screen(k, "fee: show the payment code", story, "scan")

    refused = sim_post(svc.base_url, "/sim/api/wallet/alipay", {"kind": "notenough"})
    expect(k.get_by_test_id("fee-message")).not_to_be_empty(timeout=15_000)
    kiosk_screen(k, "fee: payment refused", story, "refused")
    door_state = json.loads(sim_get(svc.base_url, "/sim/api/state"))
    assert all(d["closed"] for b in door_state["banks"] for board in b["boards"] for d in board["doors"]
               if d["label"] == label), "a refused payment opened the door"

    paid = sim_post(svc.base_url, "/sim/api/wallet/wechat", {"kind": "success"})
    expect(k.get_by_test_id("compartment")).to_have_text(label, timeout=15_000)
    kiosk_screen(k, "door after the fee", story, "door")
    ledger = json.loads(sim_get(svc.base_url, "/sim/api/wallet/ledger"))
    by_code = {o["last4"]: o for o in ledger}
    assert by_code[refused["last4"]]["charges"] == 0
    assert by_code[paid["last4"]]["charges"] == 1 and by_code[paid["last4"]]["amount_fen"] == 150
    assert len(ledger) == 2
    log = svc.log.read_text(errors="replace")
    assert code not in log  # the pickup code is never logged
