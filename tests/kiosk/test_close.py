"""The staff's daily close page and API: staff role only; run, show, CSV, print; a flagged close
is shown as flagged. The close itself is tested in tests/lockers/test_station_ledger.py."""

from __future__ import annotations

import csv
import io

import pytest

from lockers import accounts
from lockers.station_ledger import DailyClose, StationLedger
from tests.kiosk.test_queue import PASSWORD

ROUTES = [("POST", "/api/staff/close"), ("GET", "/api/staff/close"), ("GET", "/api/staff/close.csv"),
          ("POST", "/api/staff/close/print"), ("GET", "/api/staff/balance"), ("POST", "/api/staff/balance/top-ups"),
          ("GET", "/api/staff/attention")]


@pytest.fixture
async def closing(kiosk_station):
    s = kiosk_station
    s.ledger = StationLedger(s.db, clock=s.clock)
    s.kiosk.daily_close = DailyClose(s.ledger, {}, station_id="T01")
    await s.db.write(lambda c: accounts.create_account(c, role="staff", login="wang.fang", name="王芳",
                                                       secret=PASSWORD, now=0.0))
    yield s


async def login(s) -> dict[str, str]:
    r = await s.client.post("/api/staff/session", json={"login": "wang.fang", "password": PASSWORD})
    assert r.status_code == 200, r.text
    s.client.cookies.delete("pk_session")
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_every_close_route_needs_a_staff_session(closing):
    for method, path in ROUTES:
        r = await closing.client.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.status_code)
    page = await closing.client.get("/staff/close")
    assert 'data-testid="close-login"' in page.text and 'data-testid="close-run"' not in page.text


async def test_staff_run_show_download_and_top_up(closing):
    s = closing
    auth = await login(s)
    r = await s.client.post("/api/staff/balance/top-ups", json={"amount_fen": 50000, "reference": "BANK-1"},
                            headers=auth)
    assert r.status_code == 201 and r.json()["balance_fen"] == 50000
    run = await s.client.post("/api/staff/close", json={"day": "2026-12-06"}, headers=auth)
    assert run.status_code == 200, run.text
    report = run.json()
    assert report["day"] == "2026-12-06" and report["version"] == 1 and report["actor"] == "wang.fang"
    shown = await s.client.get("/api/staff/close", params={"day": "2026-12-06"}, headers=auth)
    assert shown.json()["version"] == 1
    again = await s.client.post("/api/staff/close", json={"day": "2026-12-06"}, headers=auth)
    assert again.json()["version"] == 2  # a new version; the first is kept
    data = await s.client.get("/api/staff/close.csv", params={"day": "2026-12-06"}, headers=auth)
    assert data.status_code == 200 and data.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["section", "key", "order_no"] and rows[-1][0] == "close"
    missing = await s.client.get("/api/staff/close", params={"day": "2026-12-01"}, headers=auth)
    assert missing.status_code == 409
    bad = await s.client.post("/api/staff/close", json={"day": "2026-13-40"}, headers=auth)
    assert bad.status_code in (400, 422)
    no_printer = await s.client.post("/api/staff/close/print", params={"day": "2026-12-06"}, headers=auth)
    assert no_printer.status_code == 409


async def test_the_close_page_shows_the_report_to_staff(closing):
    s = closing
    auth = await login(s)
    await s.client.post("/api/staff/close", json={"day": "2026-12-06"}, headers=auth)
    r = await s.client.post("/api/staff/session", json={"login": "wang.fang", "password": PASSWORD})
    assert r.status_code == 200
    page = await s.client.get("/staff/close", params={"day": "2026-12-06"})
    assert 'data-testid="close-report"' in page.text and 'data-ok="true"' in page.text
    assert 'data-testid="close-csv"' in page.text and 'data-testid="top-up"' in page.text


async def test_staff_see_payments_that_need_them(closing):
    from lockers.payments import PaymentDesk

    s = closing
    s.kiosk.payments = PaymentDesk(s.db, {})
    now = s.clock()
    rows = [("T01_20261206_00000001", "retry", 1), ("T01_20261206_00000002", "paid", 0),
            ("T01_20261206_00000003", "refunded", 1)]
    await s.db.write(lambda c: c.executemany(
        "INSERT INTO payment_orders (out_trade_no, purpose, reference, channel, code_last4, amount_fen, state,"
        " created_at, updated_at, alerted) VALUES (?, 'posting', ?, 'wechat', '6789', 800, ?, ?, ?, ?)",
        [(no, no[-1], state, now, now, alerted) for no, state, alerted in rows]))
    auth = await login(s)
    r = await s.client.get("/api/staff/attention", headers=auth)
    assert [o["order_no"] for o in r.json()["orders"]] == ["T01_20261206_00000001"]  # reverse keeps failing
    assert r.json()["bills"] == []
    await s.client.post("/api/staff/session", json={"login": "wang.fang", "password": PASSWORD})
    page = await s.client.get("/staff/close")
    assert page.text.count('data-testid="attention-order"') == 1
