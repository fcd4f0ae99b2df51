"""The technician's page and API: only technicians get in, they see every door live but personal
data only masked, and what they do is journaled."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest

from kiosk.sessions import MAX_IDLE_SECONDS, Sessions
from lockers import accounts
from lockers.diagnostics import scrub

PASSWORD = "correct horse battery"
PHONE = "13812345678"
TRACKING = "SF1234567890"


@pytest.fixture
async def tech(kiosk_station):
    s = kiosk_station
    await s.db.write(lambda c: accounts.create_account(c, role="technician", login="li.wei", name="李伟",
                                                       secret=PASSWORD, now=0.0))
    r = await s.client.post("/api/technician/session", json={"login": "li.wei", "password": PASSWORD})
    assert r.status_code == 200, r.text
    s.tech_auth = {"Authorization": f"Bearer {r.json()['token']}"}
    return s


async def store_a_parcel(s) -> str:
    """A courier deposits a parcel into A05; returns the pickup code from the notice."""
    await s.make_courier(pin="24681357")
    token = (await s.client.post("/api/courier/session", json={"login": "10000001", "pin": "24681357"})).json()["token"]
    r = await s.client.post("/api/deposits", headers={"Authorization": f"Bearer {token}"},
                            json={"tracking": TRACKING, "phone": PHONE, "size": "M", "consent": True})
    assert r.status_code == 201, r.text
    spec = s.spec("A05")
    await s.wait_for(lambda: s.custody.door_of("A05") == "open")
    s.bank.put_parcel(spec.board, spec.channel)
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: len(s.sms.recent) == 1)
    return re.search(r"(\d{8})", s.sms.recent[-1]["text"]).group(1)


async def test_only_a_technician_login_opens_the_technician_api(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    await s.db.write(lambda conn: accounts.create_account(conn, role="technician", login="li.wei", name="李伟",
                                                          secret=PASSWORD, now=0.0))
    await s.make_courier(pin="24681357")
    assert (await c.get("/api/tech/doors")).status_code == 401
    wrong = await c.post("/api/technician/session", json={"login": "li.wei", "password": "wrong password"},
                         headers={"Cookie": "pk_lang=en"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Login or password is not right."
    # a courier's credentials do not open the technician API, nor a technician's the courier API
    as_courier = await c.post("/api/technician/session", json={"login": "10000001", "password": "24681357"})
    assert as_courier.status_code == 401
    assert (await c.post("/api/courier/session", json={"login": "li.wei", "pin": PASSWORD})).status_code == 401
    courier_token = (await c.post("/api/courier/session", json={"login": "10000001", "pin": "24681357"})).json()["token"]
    assert (await c.get("/api/tech/doors", headers={"Authorization": f"Bearer {courier_token}"})).status_code == 401
    tech_token = (await c.post("/api/technician/session", json={"login": "li.wei", "password": PASSWORD})).json()["token"]
    tech_auth = {"Authorization": f"Bearer {tech_token}"}
    assert (await c.get("/api/tech/doors", headers=tech_auth)).status_code == 200
    assert (await c.get("/api/compartments", headers=tech_auth)).status_code == 401
    r = await c.post("/api/deposits", headers=tech_auth,
                     json={"tracking": TRACKING, "phone": PHONE, "size": "M", "consent": True})
    assert r.status_code == 401


async def test_ten_failed_logins_lock_the_technician_for_30_minutes(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    await s.db.write(lambda conn: accounts.create_account(conn, role="technician", login="li.wei", name="李伟",
                                                          secret=PASSWORD, now=0.0))
    for _ in range(10):
        assert (await c.post("/api/technician/session", json={"login": "li.wei", "password": "guess guess"})).status_code == 401
    locked = await c.post("/api/technician/session", json={"login": "li.wei", "password": PASSWORD})
    assert locked.status_code == 423
    s.clock.advance(29 * 60)
    assert (await c.post("/api/technician/session", json={"login": "li.wei", "password": PASSWORD})).status_code == 423
    s.clock.advance(61)
    assert (await c.post("/api/technician/session", json={"login": "li.wei", "password": PASSWORD})).status_code == 200


def test_sessions_end_after_120_seconds_idle_and_cannot_be_configured_longer():
    now = [0.0]
    sessions = Sessions(clock=lambda: now[0])
    account = accounts.Account(1, "li.wei", "李伟", "", "technician")
    session = sessions.create(account)
    now[0] = 119.0
    assert sessions.get(session.token, roles=("technician",)) is session  # use keeps it alive
    now[0] = 119.0 + MAX_IDLE_SECONDS + 0.5
    assert sessions.get(session.token) is None
    with pytest.raises(ValueError):
        Sessions(idle_seconds=121)


async def test_a_page_that_only_polls_does_not_keep_the_session_alive(tech):
    s = tech
    now = [0.0]
    s.kiosk.sessions._clock = lambda: now[0]
    token = (await s.client.post("/api/technician/session", json={"login": "li.wei", "password": PASSWORD})).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    for second in range(1, 120):  # the page polls the doors every second, nobody touches anything
        now[0] = second
        assert (await s.client.get("/api/tech/doors", headers=auth)).status_code == 200
    now[0] = 121.0
    assert (await s.client.get("/api/tech/doors", headers=auth)).status_code == 401
    # an action, unlike a poll, restarts the idle time
    token = (await s.client.post("/api/technician/session", json={"login": "li.wei", "password": PASSWORD})).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    now[0] = 200.0
    assert (await s.client.post("/api/tech/doors/A07/pulse", headers=auth, json={"reason": "test"})).status_code == 200
    now[0] = 310.0
    assert (await s.client.get("/api/tech/doors", headers=auth)).status_code == 200


async def test_doors_show_every_door_live_with_personal_data_masked(tech):
    s = tech
    await store_a_parcel(s)
    s.bank.open_by_hand(1, 3)
    await s.wait_for(lambda: s.custody.door_of("A20") == "open")
    r = await s.client.get("/api/tech/doors", headers=s.tech_auth)
    doors = {d["label"]: d for d in r.json()}
    assert len(doors) == 32
    assert doors["A20"]["door"] == "open" and doors["A01"]["door"] == "closed"
    assert doors["A05"]["state"] == "occupied" and doors["A05"]["item"] is True
    assert doors["A05"]["parcel"]["tracking"] != TRACKING and doors["A05"]["parcel"]["tracking"].endswith("7890")
    assert PHONE not in r.text and TRACKING not in r.text


async def test_door_test_pulses_one_door_and_journals_who_and_why(tech):
    s = tech
    r = await s.client.post("/api/tech/doors/A07/pulse", headers=s.tech_auth, json={"reason": "ticket 42: door sticks"})
    assert r.status_code == 200, r.text
    await s.wait_for(lambda: s.custody.door_of("A07") == "open")
    assert s.bank.door(0, 6).pulses == 1 and s.bank.door(0, 5).pulses == 0
    doors = {d["label"]: d for d in (await s.client.get("/api/tech/doors", headers=s.tech_auth)).json()}
    assert doors["A07"]["last_command"]["what"] == "unlock: acknowledged"
    assert doors["A08"]["last_command"] is None
    logs = (await s.client.get("/api/tech/logs?limit=5", headers=s.tech_auth)).json()
    event = next(e for e in logs if e["kind"] == "technician_open")
    assert event["actor"] == "technician:li.wei" and event["compartment"] == "A07"
    assert "ticket 42: door sticks" in event["detail"]["reason"]
    missing = await s.client.post("/api/tech/doors/Z99/pulse", headers=s.tech_auth, json={"reason": "x"})
    assert missing.status_code == 422


async def test_open_all_needs_the_typed_confirmation_and_a_reason(tech):
    s = tech
    r = await s.client.post("/api/tech/open-all", headers=s.tech_auth, json={"reason": "moving the wall",
                                                                              "confirmation": "yes"})
    assert r.status_code == 422
    assert sum(s.bank.door(b, c).pulses for b in (0, 1) for c in range(16)) == 0
    r = await s.client.post("/api/tech/open-all", headers=s.tech_auth, json={"reason": "moving the wall",
                                                                              "confirmation": "OPEN ALL"})
    assert r.status_code == 200, r.text
    assert set(r.json()["results"].values()) == {"opened"} and len(r.json()["results"]) == 32
    assert all(s.bank.door(b, c).pulses == 1 for b in (0, 1) for c in range(16))


async def test_selftest_reports_a_silent_board_and_passes_when_all_answer(tech):
    s = tech
    await s.wait_for(lambda: all(s.custody.doors.failures.get(("A", b)) == 0 for b in (0, 1)))
    report = (await s.client.get("/api/tech/selftest", headers=s.tech_auth)).json()
    assert report["ok"], report
    names = {c["check"] for c in report["checks"]}
    assert {"database integrity", "journal hash chain", "disk space", "clock", "every door state known"} <= names
    s.wall.silent_boards.add(1)
    await s.wait_for(lambda: s.custody.doors.failures.get(("A", 1), 0) > 0)
    report = (await s.client.get("/api/tech/selftest", headers=s.tech_auth)).json()
    failed = {c["check"] for c in report["checks"] if not c["ok"]}
    assert not report["ok"] and "bank A board 1 answers" in failed and "every door state known" in failed
    assert "bank A board 0 answers" not in failed


async def test_logs_and_support_bundle_hold_no_personal_data(tech):
    s = tech
    code = await store_a_parcel(s)
    logs = await s.client.get("/api/tech/logs", headers=s.tech_auth)
    assert logs.status_code == 200
    assert {"login", "deposit_stored"} <= {e["kind"] for e in logs.json()}
    bundle = await s.client.get("/api/tech/export", headers=s.tech_auth)
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    files = zipfile.ZipFile(io.BytesIO(bundle.content))
    assert {"station.json", "doors.json", "bus.json", "selftest.json", "journal.json", "versions.json"} <= set(files.namelist())
    everything = logs.text + "".join(files.read(n).decode() for n in files.namelist())
    for secret in (PHONE, TRACKING, code):
        assert secret not in everything
    doors = json.loads(files.read("doors.json"))
    assert next(d for d in doors if d["label"] == "A05")["state"] == "occupied"


async def test_printer_test_without_a_printer_says_so(tech):
    r = await tech.client.post("/api/tech/printer/test", json={}, headers={**tech.tech_auth, "Cookie": "pk_lang=en"})
    assert r.status_code == 422 and "printer" in r.json()["message"]


async def test_technician_page_shows_login_then_the_wall(tech):
    s = tech
    s.client.cookies.clear()
    page = await s.client.get("/technician")
    assert 'data-page="technician-login"' in page.text
    token = s.tech_auth["Authorization"].split()[1]
    page = await s.client.get("/technician", headers={"Cookie": f"pk_session={token}"})
    assert 'data-page="technician"' in page.text and 'data-testid="wall"' in page.text


def test_scrub_masks_long_digit_runs_and_tokens_but_keeps_short_numbers():
    text = ("phone 13812345678 id 11010519491231002X code 24681357 token PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ "
            "waybill SF1234567890 door A05 board 1 technician_open 2026")
    out = scrub(text)
    assert "technician_open" in out and "2026" in out
    for secret in ("13812345678", "11010519491231002X", "24681357", "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "SF1234567890"):
        assert secret not in out
    assert "…5678" in out and "…002X" in out and "A05" in out and "board 1" in out
