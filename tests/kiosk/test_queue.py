"""The queue pages and API: a resident takes a ticket (shown with a QR that scans back to its number),
a priority ticket only after the notice and a card of 60+, staff call from their own login, the home
board shows the number called, and staff routes refuse requests without a staff session."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import httpx
import pytest
import zxingcpp
from PIL import Image

import kiosk.app
from kiosk.app import create_app
from kiosk.queue import add_queue_routes
from lockers import accounts
from lockers.queue import QueueDesk, QueueSettings
from simulators.fake_idcard import FakeIdCardReader
from tests.lockers.posting_fixtures import resident_card

PASSWORD = "counter staff 2026"
SHANGHAI = ZoneInfo("Asia/Shanghai")
STAFF_ROUTES = [("POST", "/api/queue/call"), ("POST", "/api/queue/finish"), ("GET", "/api/queue/staff"),
                ("POST", "/api/queue/tickets/A001/recall"), ("POST", "/api/queue/tickets/A001/skip"),
                ("POST", "/api/queue/tickets/A001/priority"), ("POST", "/api/queue/staff/tickets"),
                ("DELETE", "/api/staff/session")]


def app_with_queue(kiosk_obj):
    """The app with the queue routes: as create_app builds it once the lead wires them in, else with
    them added the same way (``add_queue_routes(app, page, kiosk)`` beside the technician's)."""
    app = create_app(kiosk_obj)
    if any(getattr(r, "path", None) == "/queue" for r in app.routes):
        return app
    original = kiosk.app.add_technician_routes

    def with_queue(router, page):
        original(router, page)
        add_queue_routes(router, page, router.state.kiosk)

    kiosk.app.add_technician_routes = with_queue
    try:
        return create_app(kiosk_obj)
    finally:
        kiosk.app.add_technician_routes = original


@pytest.fixture
async def q(kiosk_station):
    s = kiosk_station
    s.reader = FakeIdCardReader(seed=5)
    await s.reader.open()
    s.queue = QueueDesk(s.db, s.clock, QueueSettings(card_timeout=1.0), reader=s.reader)
    s.kiosk.queue = s.queue
    s.app = app_with_queue(s.kiosk)
    await s.client.aclose()
    s.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=s.app), base_url="http://kiosk",
                                 cookies={"pk_lang": "en"})
    yield s
    await s.reader.close()


async def staff_login(s) -> dict[str, str]:
    await s.db.write(lambda c: accounts.create_account(c, role="staff", login="wang.fang", name="王芳",
                                                       secret=PASSWORD, now=0.0))
    r = await s.client.post("/api/staff/session", json={"login": "wang.fang", "password": PASSWORD})
    assert r.status_code == 200, r.text
    s.client.cookies.delete("pk_session")
    return {"Authorization": f"Bearer {r.json()['token']}"}


def qr_of(html: str) -> str:
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"))
    return found.text


async def test_a_resident_takes_a_ticket_and_sees_it_with_its_qr(q):
    c = q.client
    page = await c.get("/queue")
    assert page.status_code == 200 and 'data-testid="take-ticket"' in page.text and "People waiting: 0." in page.text
    r = await c.post("/api/queue/tickets")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ticket"]["number"] == "A001" and body["qr"] == "postkiosk-queue:A001"
    assert body["print"] == {"printed": False, "problem": "no_printer", "reasons": []}
    shown = await c.get(body["url"])
    assert shown.status_code == 200
    assert '<p class="ticket-number" data-testid="ticket-number">A001</p>' in shown.text
    assert "You are next." in shown.text and "take a photo of this screen" in shown.text
    assert qr_of(shown.text) == "postkiosk-queue:A001"
    second = (await c.post("/api/queue/tickets")).json()
    assert second["ahead"] == 1 and second["wait_seconds"] == 180 and second["wait_minutes"] == 3
    assert "People before you: 1." in (await c.get("/queue/ticket/A002")).text
    # unknown or malformed numbers go back to the start
    assert (await c.get("/queue/ticket/A999")).headers["location"] == "/queue"
    assert (await c.get("/queue/ticket/<script>")).status_code in (303, 404)


async def test_chinese_is_the_default_language_of_the_queue_page(q):
    q.client.cookies.delete("pk_lang")
    page = await q.client.get("/queue")
    assert page.status_code == 200 and 'lang="zh-Hans"' in page.text


async def test_a_priority_ticket_needs_the_notice_and_a_card_of_60_or_more(q):
    c, today = q.client, dt.datetime.fromtimestamp(q.clock(), SHANGHAI).date()
    notice = await c.get("/queue?step=priority")
    assert 'data-testid="queue-notice"' in notice.text and "only to check that you are 60 or older" in notice.text
    q.reader.present_card(resident_card(today, age=72, serial=9))
    refused = await c.post("/api/queue/tickets/priority", json={"agreed": False})
    assert refused.status_code == 422 and q.queue.read_calls == 0
    r = await c.post("/api/queue/tickets/priority", json={"agreed": True})
    assert r.status_code == 201, r.text
    assert r.json()["ticket"]["number"] == "P001" and r.json()["ticket"]["reason"] == "age_card"
    page = await c.get(r.json()["url"])
    assert 'data-testid="ticket-priority"' in page.text and qr_of(page.text) == "postkiosk-queue:P001"
    young = q.reader.present_card(resident_card(today, age=45, serial=10))
    r = await c.post("/api/queue/tickets/priority", json={"agreed": True})
    assert r.status_code == 200 and r.json()["outcome"] == "not_elderly"
    assert r.json()["message"] == "The card shows you are under 60. You can take a normal ticket."
    assert young.id_number not in r.text and young.name not in r.text


async def test_without_a_reader_the_resident_is_sent_to_the_staff(q):
    q.queue.reader = None
    page = await q.client.get("/queue?step=priority")
    assert 'data-testid="ask-staff"' in page.text and 'data-testid="agree"' not in page.text
    r = await q.client.post("/api/queue/tickets/priority", json={"agreed": True})
    assert r.status_code == 503 and r.json()["reason"] == "no_reader"
    assert "ask the staff" in r.json()["message"]


async def test_staff_routes_refuse_requests_without_a_staff_session(q):
    c = q.client
    for method, url in STAFF_ROUTES:
        r = await c.request(method, url, json={"counter": "1", "priority": True})
        assert r.status_code == 401, (method, url, r.text)
        assert r.json()["error"] == "session_required"
    # a courier's session is not a staff session
    await q.make_courier(pin="24681357")
    token = (await c.post("/api/courier/session", json={"login": "10000001", "pin": "24681357"})).json()["token"]
    c.cookies.delete("pk_session")
    r = await c.post("/api/queue/call", json={"counter": "1"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    login_page = await c.get("/queue/staff")
    assert 'data-testid="staff-login"' in login_page.text and 'data-testid="call-next"' not in login_page.text
    wrong = await c.post("/api/staff/session", json={"login": "wang.fang", "password": "not the password"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Login or password is not right."


async def test_staff_call_the_next_ticket_priority_first_and_the_home_board_follows(q):
    c = q.client
    auth = await staff_login(q)
    for _ in range(2):
        await c.post("/api/queue/tickets")
    assert (await c.post("/api/queue/staff/tickets", json={"priority": True}, headers=auth)).json()["ticket"]["number"] == "P001"
    assert (await c.get("/api/queue")).json()["serving"] is None
    raised = await c.post("/api/queue/tickets/a002/priority", headers=auth)
    assert raised.status_code == 200 and raised.json()["ticket"]["priority"]
    calls = [(await c.post("/api/queue/call", json={"counter": "2"}, headers=auth)).json()["ticket"]["number"]
             for _ in range(3)]
    assert calls == ["A002", "P001", "A001"]
    board = (await c.get("/api/queue")).json()
    assert board["serving"]["number"] == "A001" and board["serving"]["counter"] == "2"
    assert board["waiting"]["total"] == 0 and board["wait_minutes"] == 0
    view = (await c.get("/api/queue/staff", headers=auth)).json()
    assert [t["number"] for t in view["called"]] == ["A001"]
    skipped = await c.post("/api/queue/tickets/A001/skip", headers=auth)
    assert skipped.json()["ticket"]["state"] == "skipped"
    assert (await c.post("/api/queue/tickets/A001/skip", headers=auth)).status_code == 409
    back = await c.post("/api/queue/tickets/A001/recall", json={"counter": "2"}, headers=auth)
    assert back.json()["ticket"]["calls"] == 2
    assert (await c.post("/api/queue/call", json={"counter": "2"}, headers=auth)).json() == {"ticket": None}
    bad = await c.post("/api/queue/call", json={"counter": "<b>"}, headers=auth)
    assert bad.status_code == 422
    unknown = await c.post("/api/queue/tickets/A777/priority", headers=auth)
    assert unknown.status_code == 404 and unknown.json()["message"] == "There is no such ticket today."
    staff_page = await c.get("/queue/staff", headers={"Cookie": f"pk_session={auth['Authorization'][7:]}"})
    assert 'data-testid="call-next"' in staff_page.text and "王芳" in staff_page.text
    kinds = await q.db.read(lambda conn: [r[0] for r in conn.execute(
        "SELECT actor FROM events WHERE kind = 'queue_called'")])
    assert kinds == ["wang.fang"] * 3


async def test_no_ticket_is_taken_while_the_queue_is_not_set_up(q):
    q.kiosk.queue = None
    assert (await q.client.get("/queue")).status_code == 303
    assert (await q.client.post("/api/queue/tickets")).status_code == 409
