from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from kiosk.sessions import RequireRole

PIN = "24681357"
RESIDENT_ROUTES = {"/healthz", "/api/pickups", "/api/screen", "/api/screen/dismiss", "/api/events",
                   "/api/courier/session:POST", "/api/screen/refuse", "/", "/pickup", "/courier", "/courier/deposit",
                   "/courier/retrieve", "/help",
                   "/lang/{locale}", "/large/{state}", "/problem/{key}", "/api/voice", "/api/voice/text",
                   "/queue", "/queue/ticket/{number}", "/queue/staff", "/api/queue", "/api/queue/tickets",
                   "/api/queue/tickets/priority", "/api/queue/card", "/api/staff/session:POST", "/technician", "/api/technician/session:POST",
                   # posting a parcel: a resident at the kiosk, no account
                   "/post", "/post/catalogue", "/api/posting", "/api/posting/parse", "/api/posting/recipients",
                   "/api/posting/recipient", "/api/posting/item", "/api/posting/weigh", "/api/posting/confirm",
                   "/api/posting/dropoff", "/api/posting/cancel", "/api/posting/label.png",
                   # paying by payment code: the posting's pay step and the storage-fee page
                   "/api/posting/pay", "/api/posting/pay/back", "/fee", "/api/fee", "/api/fee/pay",
                   "/api/fee/cancel", "/bills", "/api/bills", "/api/bills/end",
                   # the staff's close page checks the session itself (login prompt without one)
                   "/staff/close"}


async def login(station):
    await station.make_courier(pin=PIN)
    r = await station.client.post("/api/courier/session", json={"login": "10000001", "pin": PIN})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_healthz_reports_ready_and_boards(kiosk_station):
    r = await kiosk_station.client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["boards"] == {"A:0": True, "A:1": True}


def staff_routes(app) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every route outside the resident flows. Fails on anything in the
    table that is not a plain route (an included router or a sub-application could hide routes)."""
    out = []
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/static":
            continue
        assert isinstance(route, APIRoute), f"{type(route).__name__} {getattr(route, 'path', '')}: not walkable"
        for method in sorted(route.methods):
            if {route.path, f"{route.path}:{method}"} & RESIDENT_ROUTES:
                continue
            out.append((method, route.path, route))
    return out


def test_every_staff_route_declares_its_roles(kiosk_station):
    routes = staff_routes(kiosk_station.app)
    assert any(path.startswith("/api/tech/") for _, path, _ in routes)  # the technician's are walked too
    undeclared = [f"{method} {path}" for method, path, route in routes
                  if not any(isinstance(d.call, RequireRole) for d in route.dependant.dependencies)]
    assert not undeclared, f"routes without declared roles: {undeclared}"


def test_no_api_documentation_unless_configured(kiosk_station):
    paths = {getattr(route, "path", None) for route in kiosk_station.app.routes}
    assert not paths & {"/docs", "/redoc", "/openapi.json"}


async def test_staff_routes_refuse_requests_without_a_session(kiosk_station):
    c = kiosk_station.client
    c.cookies.clear()
    for method, path, _ in staff_routes(kiosk_station.app):
        url = re.sub(r"\{[^}]+\}", "1", path)
        r = await c.request(method, url, json={"tracking": "SF123456", "phone": "13812345678", "size": "S",
                                               "consent": True, "reason": "x", "confirmation": "OPEN ALL"})
        assert r.status_code == 401, (method, url, r.status_code, r.text)
        assert r.json()["error"] == "session_required"
        assert r.json()["message"] == "请重新登录。"  # Simplified Chinese by default


async def test_deposit_then_pickup_through_the_api(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    auth = await login(s)
    r = await c.post("/api/deposits", headers=auth,
                     json={"tracking": "sf 1234 5678 90", "phone": "138 1234 5678", "size": "M", "consent": True})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["compartment"] == "A05"
    assert (await c.get("/api/screen")).json()["name"] == "door"
    # a second flow cannot start while a door is on screen
    r2 = await c.post("/api/pickups", json={"code": "12345678"})
    assert r2.status_code == 409 and r2.json()["error"] == "terminal_busy"
    spec = s.spec("A05")
    await s.wait_for(lambda: s.custody.door_of("A05") == "open")
    s.bank.put_parcel(spec.board, spec.channel)
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: s.kiosk.terminal.screen.result == "deposit_stored")
    rows = (await c.get("/api/compartments", headers=auth)).json()
    a05 = next(r for r in rows if r["label"] == "A05")
    assert a05["state"] == "occupied" and a05["parcel"]["tracking"] == "SF1234567890"
    assert a05["parcel"]["phone"] == "138****5678"
    await s.wait_for(lambda: len(s.sms.recent) == 1)
    code = re.search(r"取件码 (\d{8})", s.sms.recent[-1]["text"]).group(1)
    await s.wait_for(lambda: s.kiosk.terminal.screen.name == "home")

    wrong = await c.post("/api/pickups", json={"code": "00000000"}, headers={"Cookie": "pk_lang=en"})
    assert wrong.status_code == 400
    assert wrong.json()["attempts_left"] == 4 and "not right" in wrong.json()["message"]
    r = await c.post("/api/pickups", json={"code": code})
    assert r.status_code == 200 and r.json()["compartment"] == "A05"
    await s.wait_for(lambda: s.custody.door_of("A05") == "open")
    s.bank.take_parcel(spec.board, spec.channel)
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: s.kiosk.terminal.screen.result == "collected")
    page = await c.get("/")
    assert 'data-result="collected"' in page.text and "谢谢，您已取件。" in page.text


async def test_other_couriers_see_only_masked_parcels(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    auth = await login(s)
    await c.post("/api/deposits", headers=auth,
                 json={"tracking": "YT9876543210", "phone": "13912345678", "size": "S", "consent": True})
    await s.make_courier(login="20000002", pin="11223344")
    other = (await c.post("/api/courier/session", json={"login": "20000002", "pin": "11223344"})).json()["token"]
    rows = (await c.get("/api/compartments", headers={"Authorization": f"Bearer {other}"})).json()
    parcel = next(r for r in rows if r["label"] == "A01")["parcel"]
    assert parcel["tracking"] == "********3210" and parcel["phone"] is None and parcel["id"] is None
    r = await c.post("/api/deposits/1/cancel", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 403


async def test_bad_input_gets_plain_words_and_changes_nothing(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    auth = await login(s)
    r = await c.post("/api/deposits", headers=auth,
                     json={"tracking": "SF1234567", "phone": "1381234", "size": "S", "consent": True})
    assert r.status_code == 422 and r.json()["field"] == "phone"
    assert r.json()["message"] == "请输入收件人的 11 位手机号码。"
    r = await c.post("/api/deposits", headers=auth,
                     json={"tracking": "SF1234567", "phone": "13812345678", "size": "S", "consent": False})
    assert r.status_code == 422 and r.json()["error"] == "consent_missing"
    r = await c.post("/api/deposits", headers=auth, json={"tracking": "SF1234567"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request" and "phone" in r.json()["fields"]
    assert all(d.pulses == 0 for d in s.wall.doors.values())


async def test_wrong_login_is_refused_without_telling_which_part(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    await s.make_courier(pin=PIN)
    for login_, pin in [("10000001", "99999999"), ("55555555", PIN)]:
        r = await c.post("/api/courier/session", json={"login": login_, "pin": pin})
        assert r.status_code == 401 and r.json()["message"] == "快递员编号或密码不正确。"


@pytest.mark.parametrize("locale,lang,word", [("zh_Hans_CN", "zh-Hans", "取件"), ("en", "en", "Pick up a parcel")])
async def test_pages_render_in_each_language(kiosk_station, locale, lang, word):
    c = kiosk_station.client
    for url in ["/", "/pickup", "/courier", "/help"]:
        r = await c.get(url, headers={"Cookie": f"pk_lang={locale}"})
        assert r.status_code == 200
        assert f'<html lang="{lang}">' in r.text
    assert word in (await c.get("/", headers={"Cookie": f"pk_lang={locale}"})).text
    switched = await c.get("/lang/en?next=//evil.example/", follow_redirects=False)
    assert switched.headers["location"] == "/"


async def test_staff_pages_need_a_login(kiosk_station):
    r = await kiosk_station.client.get("/courier/deposit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/courier"


async def test_healthz_fails_while_a_board_does_not_answer(kiosk_station):
    s = kiosk_station
    s.wall.silent_boards.add(1)
    await s.wait_for(lambda: s.custody.doors.failures.get(("A", 1), 0) > 0)
    r = await s.client.get("/healthz")
    assert r.status_code == 503 and r.json()["boards"]["A:1"] is False
    s.wall.silent_boards.clear()
    await s.wait_for(lambda: s.custody.doors.failures.get(("A", 1), 0) == 0)
    assert (await s.client.get("/healthz")).status_code == 200


async def test_maintenance_mode_serves_only_the_maintenance_screen(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    s.kiosk.maintenance = "the database folder is on tmpfs"
    page = await c.get("/pickup")
    assert page.status_code == 503 and 'data-testid="maintenance"' in page.text and "暂停服务" in page.text
    api = await c.post("/api/pickups", json={"code": "12345678"})
    assert api.status_code == 503 and api.json()["error"] == "storage"
    health = await c.get("/healthz")
    assert health.status_code == 503 and health.json()["status"] == "maintenance"
    assert all(d.pulses == 0 for d in s.wall.doors.values())


async def stored_parcel(s, c, auth, **extra):
    r = await c.post("/api/deposits", headers=auth, json={"tracking": "ZT7777777777", "phone": "13812345678",
                                                          "size": "S", "consent": True, **extra})
    assert r.status_code == 201, r.text
    label = r.json()["compartment"]
    spec = s.spec(label)
    await s.wait_for(lambda: s.custody.door_of(label) == "open")
    s.bank.put_parcel(spec.board, spec.channel)
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: len(s.sms.recent) >= 1)
    await s.wait_for(lambda: s.kiosk.terminal.screen.name == "home")
    text = s.sms.recent[-1]["text"]
    return r.json()["parcel_id"], spec, re.search(r"取件码 (\d{8})", text).group(1), re.search(r"(PK1-\w+)", text).group(1)


async def test_refuse_on_screen_then_courier_takes_it_back(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    auth = await login(s)
    parcel_id, spec, code, _ = await stored_parcel(s, c, auth)
    assert (await c.post("/api/screen/refuse", json={"reason": "damaged"})).status_code == 409  # no door open
    await c.post("/api/pickups", json={"code": code})
    await s.wait_for(lambda: s.kiosk.terminal.screen.door == "open")
    r = await c.post("/api/screen/refuse", json={"reason": "broken-ish"})
    assert r.status_code == 422
    r = await c.post("/api/screen/refuse", json={"reason": "damaged"})
    assert r.status_code == 200
    assert s.kiosk.terminal.screen.refusing
    assert "请把快递放回格口并关好柜门" in (await c.get("/")).text
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: s.kiosk.terminal.screen.result == "refused")
    s.kiosk.terminal.dismiss()
    listed = (await c.get("/api/retrievals", headers=auth)).json()
    assert [(p["parcel_id"], p["reason"], p["refuse_reason"]) for p in listed] == [(parcel_id, "refused", "damaged")]
    page = await c.get("/courier/retrieve", headers={"Cookie": f"pk_session={auth['Authorization'][7:]}"})
    assert f'data-retrieve="{parcel_id}"' in page.text and "收件人拒收" in page.text
    r = await c.post(f"/api/retrievals/{parcel_id}", headers=auth)
    assert r.status_code == 200 and s.kiosk.terminal.screen.flow == "retrieve"
    await s.wait_for(lambda: s.custody.door_of(spec.label) == "open")
    s.bank.take_parcel(spec.board, spec.channel)
    s.bank.close_by_hand(spec.board, spec.channel)
    await s.wait_for(lambda: s.kiosk.terminal.screen.result == "returned")
    assert (await c.get("/api/retrievals", headers=auth)).json() == []


async def test_qr_token_pickup_and_unknown_token(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    auth = await login(s)
    _, spec, _, token = await stored_parcel(s, c, auth, consent=False, locker_is_address=True)
    r = await c.post("/api/pickups", json={"token": "PK1-AAAAAAAAAAAAAAAAAAAAAAAAAA"})
    assert r.status_code == 404 and r.json()["error"] == "unknown_token"
    r = await c.post("/api/pickups", json={"token": token.lower()})
    assert r.status_code == 200 and r.json()["compartment"] == spec.label


async def test_fee_due_is_shown_in_yuan_and_opens_nothing(kiosk_station):
    import dataclasses

    s, c = kiosk_station, kiosk_station.client
    s.custody.settings = dataclasses.replace(s.custody.settings, fee_per_day_fen=50)
    auth = await login(s)
    _, spec, code, _ = await stored_parcel(s, c, auth)
    s.clock.advance(26 * 3600)
    for lang, words in (("zh_Hans_CN", "需支付保管费 ¥0.50"), ("en", "storage fee of ¥0.50")):
        r = await c.post("/api/pickups", json={"code": code}, headers={"Cookie": f"pk_lang={lang}"})
        assert r.status_code == 402 and r.json()["fee_fen"] == 50 and words in r.json()["message"]
    assert s.bank.door(spec.board, spec.channel).pulses == 1  # only the deposit's


async def test_courier_resends_a_notice_with_a_fresh_code(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    auth = await login(s)
    parcel_id, _, old, _ = await stored_parcel(s, c, auth)
    r = await c.post(f"/api/parcels/{parcel_id}/notice", headers=auth)
    assert r.status_code == 200
    await s.wait_for(lambda: len(s.sms.recent) == 2)
    new = re.search(r"取件码 (\d{8})", s.sms.recent[-1]["text"]).group(1)
    if new != old:
        assert (await c.post("/api/pickups", json={"code": old})).status_code == 400
    assert (await c.post("/api/pickups", json={"code": new})).status_code == 200


async def test_a_courier_cannot_probe_another_couriers_parcel(kiosk_station):
    s, c = kiosk_station, kiosk_station.client
    auth = await login(s)
    r = await c.post("/api/deposits", headers=auth, json={"tracking": "YT5555555555", "phone": "13812345678",
                                                          "size": "S", "consent": True})
    parcel_id = r.json()["parcel_id"]
    assert (await c.get(f"/api/deposits/{parcel_id}", headers=auth)).json()["state"] == "depositing"
    await s.make_courier(login="20000002", pin="11223344")
    other = (await c.post("/api/courier/session", json={"login": "20000002", "pin": "11223344"})).json()["token"]
    for pid in (parcel_id, 999):
        r = await c.get(f"/api/deposits/{pid}", headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 403 and "state" not in r.json()
