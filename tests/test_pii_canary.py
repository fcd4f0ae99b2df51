"""Personal-data canary (T-E1, T-E3; issues 4 and 5): generated phone numbers and ID numbers go
through every flow of the real service, and then none of them may be found in plaintext anywhere it
wrote or said anything.

Searched: every file under the station's data folder (database, -wal, -shm, backups, keys), the
service's stdout and stderr (its log), every HTTP response body (pages, API answers, the label
preview, the technician's support bundle) and the labels and receipts the simulated printers made.
Encodings: raw, spaced, dashed, UTF-16, hex, base64, and unkeyed SHA-256 / MD5 of the number.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def forms(phone: str) -> list[bytes]:
    spaced = f"{phone[:3]} {phone[3:7]} {phone[7:]}"
    dashed = spaced.replace(" ", "-")
    out = [phone, spaced, dashed, phone.encode().hex(), base64.b64encode(phone.encode()).decode(),
           hashlib.sha256(phone.encode()).hexdigest(), hashlib.md5(phone.encode()).hexdigest()]
    return [f.encode() for f in out] + [phone.encode("utf-16-le"), phone.encode("utf-16-be")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_service(tmp_path: Path, data: Path, **env_extra: str) -> Iterator[tuple[httpx.Client, Path]]:
    """``postkiosk run`` (the built-in demo, --verbose) on a free port with its data in ``data``,
    ready (healthz 200); stopped with SIGTERM at the end. Yields a client and the log file."""
    port = free_port()
    log = tmp_path / "service.log"
    env = {**os.environ, "POSTKIOSK_DATABASE__PATH": str(data / "pk.sqlite3"), **env_extra}
    env.pop("POSTKIOSK_CONFIG", None)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from postkiosk.cli import main; main()", "run", "--port",
                                 str(port), "--verbose"], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            yield c, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def recorder(c: httpx.Client, bodies: list[bytes]):
    """``call(method, url, **kw)``: a request whose answer body is kept for the search."""

    def call(method: str, url: str, **kw):
        r = c.request(method, url, **kw)
        bodies.append(r.content)
        return r

    return call


def wait_for(predicate, what: str, timeout: float = 15.0):
    """``predicate()``'s first true value, polled every 25 ms; AssertionError(what) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.025)


@pytest.mark.timeout(300)
def test_no_phone_number_in_plaintext_anywhere(tmp_path):
    rng = random.Random(1)
    phones = [f"1{rng.choice('3456789')}{rng.randrange(10 ** 9):09d}" for _ in range(6)]
    data = tmp_path / "data"
    bodies: list[bytes] = []
    with running_service(tmp_path, data) as (c, log):
        login, pin = (data / "demo-courier.txt").read_text().split()

        call = recorder(c, bodies)
        wait = wait_for

        token = call("POST", "/api/courier/session", json={"login": login, "pin": pin}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        labels = []
        for n, phone in enumerate(phones):
            spaced = f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
            r = call("POST", "/api/deposits", headers=auth,
                     json={"tracking": f"JT{n:010d}", "phone": spaced, "size": "S", "consent": True})
            assert r.status_code == 201, r.text
            label = r.json()["compartment"]
            labels.append(label)
            spec_board, spec_channel = divmod(int(label[1:]) - 1, 16)
            wait(lambda: call("GET", "/api/screen").json()["door"] == "open", "deposit door")
            call("POST", f"/sim/api/A/{spec_board}/{spec_channel}/put")
            call("POST", f"/sim/api/A/{spec_board}/{spec_channel}/close")
            wait(lambda: call("GET", "/api/screen").json()["result"] == "deposit_stored", "stored")
            call("POST", "/api/screen/dismiss")
        for page in ("/", "/pickup", "/courier", "/help", "/sim", "/sim/api/state", "/openapi.json"):
            call("GET", page)
        call("GET", "/api/compartments", headers=auth)
        # a wrong code, a pickup, a refusal and the courier taking the refused parcel back
        call("POST", "/api/pickups", json={"code": "00000000"})
        wait(lambda: len(re.findall(r"取件码 (\d{8})", call("GET", "/sim").text)) >= len(phones), "notices")
        codes = re.findall(r"取件码 (\d{8})", call("GET", "/sim").text)
        for code, outcome in zip(codes[:2], ("collect", "refuse")):
            r = call("POST", "/api/pickups", json={"code": code})
            assert r.status_code == 200, r.text
            label = r.json()["compartment"]
            board, channel = divmod(int(label[1:]) - 1, 16)
            wait(lambda: call("GET", "/api/screen").json()["door"] == "open", "pickup door")
            if outcome == "refuse":
                call("POST", "/api/screen/refuse", json={"reason": "damaged"})
            else:
                call("POST", f"/sim/api/A/{board}/{channel}/take")
            call("POST", f"/sim/api/A/{board}/{channel}/close")
            wait(lambda: call("GET", "/api/screen").json()["name"] == "result", "pickup result")
            call("POST", "/api/screen/dismiss")
        for item in call("GET", "/api/retrievals", headers=auth).json():
            call("POST", f"/api/retrievals/{item['parcel_id']}", headers=auth)
        call("GET", "/api/compartments", headers=auth)
        stored = [row["parcel"]["id"] for row in call("GET", "/api/compartments", headers=auth).json()
                  if row["parcel"] and row["parcel"]["state"] == "stored"]
        call("POST", f"/api/parcels/{stored[0]}/notice", headers=auth)
        time.sleep(0.5)
        # the technician's views of the same station: doors, journal, self-test, support bundle
        tech_login, tech_password = (data / "demo-technician.txt").read_text().split()
        tech = call("POST", "/api/technician/session", json={"login": tech_login, "password": tech_password})
        tech_auth = {"Authorization": f"Bearer {tech.json()['token']}"}
        for url in ("/api/tech/doors", "/api/tech/logs?limit=1000", "/api/tech/station", "/api/tech/bus",
                    "/api/tech/selftest", "/technician"):
            assert call("GET", url, headers=tech_auth).status_code == 200, url
        export = call("GET", "/api/tech/export", headers=tech_auth)
        with zipfile.ZipFile(io.BytesIO(export.content)) as bundle:
            bodies.extend(bundle.read(name) for name in bundle.namelist())
    places = {f"file {p.relative_to(tmp_path)}": p.read_bytes() for p in data.rglob("*") if p.is_file()}
    places["service log"] = log.read_bytes()
    places["HTTP responses"] = b"\n".join(bodies)
    assert any(name.endswith("-wal") or "backups" in name for name in places), sorted(places)
    found = [(name, phone) for phone in phones for name, blob in places.items()
             if any(form in blob for form in forms(phone))]
    assert not found, f"phone numbers found in plaintext: {[(n, p[:3] + '****' + p[-4:]) for n, p in found]}"
    masked = [p[:3] + "****" + p[-4:] for p in phones]
    assert any(m.encode() in places["HTTP responses"] for m in masked)  # the search would have seen them


def id_forms(number: str) -> list[bytes]:
    """An 18-character ID number as it could leak: raw, lower-case x, grouped 6-8-4, hex, base64,
    unkeyed hashes, UTF-16."""
    out = {number, number.lower(), f"{number[:6]} {number[6:14]} {number[14:]}", number[:17]}
    extra = [number.encode().hex(), base64.b64encode(number.encode()).decode(),
             hashlib.sha256(number.encode()).hexdigest(), hashlib.md5(number.encode()).hexdigest()]
    return [f.encode() for f in [*out, *extra]] + [number.encode("utf-16-le"), number.encode("utf-16-be")]


@pytest.mark.timeout(300)
def test_no_id_number_in_plaintext_anywhere(tmp_path):
    """Residents post parcels (completed, refused for an expired card, refused for a prohibited item,
    cancelled half-way, a returning resident); a courier collects; a technician reads the logs and
    exports the support bundle. None of the generated ID numbers may be anywhere."""
    from simulators.idcard import make_card

    rng = random.Random(5)
    cards = [make_card("resident", rng=rng) for _ in range(5)]
    numbers = [c.id_number for c in cards]
    data = tmp_path / "data"
    bodies: list[bytes] = []
    with running_service(tmp_path, data) as (c, log):

        call = recorder(c, bodies)

        def step():
            return call("GET", "/api/posting").json().get("step")

        def present(card, **extra):
            body = {"name": card.name, "id_number": card.id_number, "birth": card.birth.isoformat(),
                    "address": card.address, **extra}
            assert call("POST", "/sim/api/devices/idcard", json=body).status_code == 200

        def post(card, *, category="books", recipient=True, **card_extra):
            call("DELETE", "/sim/api/devices/idcard")  # the last resident took their card
            call("POST", "/api/screen/dismiss")
            call("GET", "/post")
            assert call("POST", "/api/posting", json={"agreed": True}).status_code == 200
            present(card, **card_extra)
            wait_for(lambda: step() != "card", "card read")
            call("GET", "/post")
            if step() != "recipient":
                ended.append(call("GET", "/api/screen").json()["detail"].get("reason"))
                return
            if not recipient:
                call("POST", "/api/posting/cancel")
                return
            fields = call("POST", "/api/posting/parse",
                          json={"text": "李四 139 0000 1111 浙江省杭州市西湖区文三路 100 号"}).json()
            fields.pop("missing")
            r = call("POST", "/api/posting/recipient", json={**fields, "sender_phone": "13700001234"})
            assert r.status_code == 200, r.text
            r = call("POST", "/api/posting/item", json={"category": category, "quantity": 1, "declared": True})
            if r.status_code != 200:
                ended.append(r.json()["reason"])
                return
            call("POST", "/sim/api/devices/scale", json={"grams": 800})
            wait_for(lambda: step() == "price", "priced")
            call("GET", "/post")
            assert call("POST", "/api/posting/confirm").status_code == 200
            screen = wait_for(lambda: (s := call("GET", "/api/screen").json())["name"] == "door" and s, "door")
            call("GET", "/api/posting/label.png")
            call("GET", "/")
            label = screen["compartment"]
            board, channel = divmod(int(label[1:]) - 1, 16)
            wait_for(lambda: call("GET", "/api/screen").json()["door"] == "open", "drop-off door open")
            call("POST", f"/sim/api/A/{board}/{channel}/put")
            call("POST", f"/sim/api/A/{board}/{channel}/close")
            wait_for(lambda: call("GET", "/api/screen").json()["result"] == "posted", "posted")
            call("GET", "/")
            call("POST", "/api/screen/dismiss")
            call("POST", "/sim/api/devices/scale", json={"grams": 0})
            call("DELETE", "/sim/api/devices/idcard")

        ended: list[str] = []
        post(cards[0])
        post(cards[1])
        post(cards[0])  # returning: recent recipients
        call("GET", "/api/posting/recipients")
        post(cards[2], expired=True)
        post(cards[3], category="fireworks")
        post(cards[4], recipient=False)
        assert ended == ["id_expired", "prohibited"], ended
        for page in ("/", "/post", "/post/catalogue", "/sim", "/openapi.json"):
            call("GET", page)
        login, pin = (data / "demo-courier.txt").read_text().split()
        token = call("POST", "/api/courier/session", json={"login": login, "pin": pin}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        outbound = call("GET", "/api/collections", headers=auth).json()
        assert len(outbound) == 3, outbound  # the three completed postings wait for collection
        call("GET", "/courier/retrieve", headers=auth)
        tech_login, tech_password = (data / "demo-technician.txt").read_text().split()
        tech = call("POST", "/api/technician/session", json={"login": tech_login, "password": tech_password})
        tech_auth = {"Authorization": f"Bearer {tech.json()['token']}"}
        for url in ("/api/tech/logs?limit=1000", "/api/tech/station", "/api/tech/selftest", "/technician"):
            assert call("GET", url, headers=tech_auth).status_code == 200, url
        export = call("GET", "/api/tech/export", headers=tech_auth)
        with zipfile.ZipFile(io.BytesIO(export.content)) as bundle:
            bodies.extend(bundle.read(name) for name in bundle.namelist())
        for device in ("label_printer", "receipt_printer"):
            call("GET", f"/sim/api/devices/{device}/last.png")
        # the files as they are while the service runs (the -wal is folded in at a clean stop)
        running = {f"running file {p.relative_to(tmp_path)}": p.read_bytes() for p in data.rglob("*")
                   if p.is_file()}
    places = {f"file {p.relative_to(tmp_path)}": p.read_bytes() for p in data.rglob("*") if p.is_file()}
    places["service log"] = log.read_bytes()
    places["HTTP responses"] = b"\n".join(bodies)
    places.update(running)
    assert any(name.endswith("-wal") for name in places), sorted(places)
    found = [(name, number) for number in numbers for name, blob in places.items()
             if any(form in blob for form in id_forms(number))]
    assert not found, f"ID numbers found in plaintext: {[(n, '*' * 14 + x[-4:]) for n, x in found]}"
    # the search would have seen them: the masked forms are on the pages, the postings are in the file
    assert any(("*" * 14 + x[-4:]).encode() in places["HTTP responses"] for x in numbers)


@contextlib.contextmanager
def page_listening(base_url: str, page: str) -> Iterator[list[bytes]]:
    """What a kiosk page does: listen to ``/api/events?page=...`` (scanned codes go to the page on
    show). Yields the event stream's bytes as they come."""
    import threading

    seen: list[bytes] = []
    stop = threading.Event()
    opened = threading.Event()

    def listen() -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=httpx.Timeout(5, read=None)) as client:
                with client.stream("GET", "/api/events", params={"page": page}) as stream:
                    opened.set()
                    for chunk in stream.iter_bytes():
                        seen.append(chunk)
                        if stop.is_set():
                            return
        except httpx.HTTPError:  # the service stopped: the page's stream ends with it
            return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert opened.wait(10), "the event stream did not open"
    try:
        yield seen
    finally:
        stop.set()


def code_forms(code: str) -> list[bytes]:
    """A payment code as it could leak: whole, all but its last 4 digits, grouped by 4, hex, base64,
    unkeyed hashes, UTF-16."""
    grouped = " ".join(code[i:i + 4] for i in range(0, len(code), 4))
    out = [code, code[:-4], grouped, code.encode().hex(), base64.b64encode(code.encode()).decode(),
           hashlib.sha256(code.encode()).hexdigest(), hashlib.md5(code.encode()).hexdigest()]
    return [f.encode() for f in out] + [code.encode("utf-16-le"), code.encode("utf-16-be")]


@pytest.mark.timeout(300)
def test_no_payment_code_in_plaintext_anywhere(tmp_path):
    """Residents pay a storage fee, a refused bill and a paid bill with payment codes of every wallet
    (shown to the simulated scanner); staff run the daily close and export it. None of the codes may
    be anywhere but their last 4 digits."""
    from hal.codes import PaymentCode, classify

    rng = random.Random(6)

    def fresh(prefix: str, length: int) -> str:
        while True:
            code = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix)))
            if isinstance(classify(code), PaymentCode):
                return code

    codes = {"alipay": fresh("28", 18), "ecny": fresh("01", 19), "wechat": fresh("13", 18),
             "wechat2": fresh("14", 18)}

    def business_day() -> str:
        import datetime as dt
        from zoneinfo import ZoneInfo

        return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()  # the station's clock

    first_day = business_day()
    data = tmp_path / "data"
    bodies: list[bytes] = []
    with running_service(tmp_path, data, POSTKIOSK_STATION__FREE_STORAGE_HOURS=str(1 / 3600)) as (c, log):

        call = recorder(c, bodies)

        def show(wallet: str, code: str, kind: str = "success"):
            r = call("POST", f"/sim/api/wallet/{wallet}", json={"kind": kind, "code": code})
            assert r.status_code == 200, r.text

        # a parcel stored, its free second over: the fee is paid by WeChat Pay
        login, pin = (data / "demo-courier.txt").read_text().split()
        token = call("POST", "/api/courier/session", json={"login": login, "pin": pin}).json()["token"]
        r = call("POST", "/api/deposits", headers={"Authorization": f"Bearer {token}"},
                 json={"tracking": "SF1234567890123", "phone": "13912345678", "size": "S", "consent": True})
        label = r.json()["compartment"]
        board, channel = divmod(int(label[1:]) - 1, 16)
        wait_for(lambda: call("GET", "/api/screen").json()["door"] == "open", "deposit door")
        call("POST", f"/sim/api/A/{board}/{channel}/put")
        call("POST", f"/sim/api/A/{board}/{channel}/close")
        wait_for(lambda: call("GET", "/api/screen").json()["result"] == "deposit_stored", "stored")
        call("POST", "/api/screen/dismiss")
        pickup = wait_for(lambda: re.findall(r"取件码 (\d{8})", call("GET", "/sim").text), "notice")[0]
        time.sleep(1.2)
        r = call("POST", "/api/pickups", json={"code": pickup})
        assert r.status_code == 402 and r.json()["pay_url"] == "/fee", r.text
        call("GET", "/fee")
        call("POST", "/api/fee/pay")
        with page_listening(str(c.base_url), "payment") as events:
            show("wechat", codes["wechat"])
            wait_for(lambda: call("GET", "/api/screen").json()["name"] == "door", "the door after the fee")
        bodies.extend(events)
        call("GET", "/")
        wait_for(lambda: call("GET", "/api/screen").json()["door"] == "open", "the pickup door seen open")
        call("POST", f"/sim/api/A/{board}/{channel}/take")
        call("POST", f"/sim/api/A/{board}/{channel}/close")
        wait_for(lambda: call("GET", "/api/screen").json()["name"] == "result", "collected")
        call("POST", "/api/screen/dismiss")

        # bills: a staff top-up, then one refused (not enough in the wallet) and one paid, by Alipay and e-CNY
        staff_login, staff_password = (data / "demo-staff.txt").read_text().split()
        staff = call("POST", "/api/staff/session", json={"login": staff_login, "password": staff_password})
        staff_auth = {"Authorization": f"Bearer {staff.json()['token']}"}
        call("POST", "/api/staff/balance/top-ups", headers=staff_auth, json={"amount_fen": 20000, "reference": "S1"})
        for wallet, kind in (("alipay", "notenough"), ("ecny", "success")):
            call("POST", "/api/bills/end")
            assert call("POST", "/api/bills", json={"service": "phone_bill", "account": "13912345678",
                                                    "amount_fen": 3000}).status_code == 200
            call("GET", "/bills")
            with page_listening(str(c.base_url), "payment") as events:
                show(wallet, codes[wallet], kind)
                wait_for(lambda: call("GET", "/api/bills").json()["state"] in ("failed", "done"), "bill answered")
            bodies.extend(events)
            call("GET", "/bills")
        # a code shown where nothing asks for one is explained, not kept
        call("POST", "/api/bills/end")
        with page_listening(str(c.base_url), "pickup") as events:
            show("wechat", codes["wechat2"])
            time.sleep(0.5)
        bodies.extend(events)
        closed = 0
        for day in sorted({first_day, business_day()}):  # the day may have turned meanwhile
            close = call("POST", "/api/staff/close", headers=staff_auth, json={"day": day}).json()
            closed += len(close["orders"])
            call("GET", "/api/staff/close.csv", headers=staff_auth, params={"day": day})
        assert closed == 3, closed
        ledger = call("GET", "/sim/api/wallet/ledger").json()
        assert sorted(o["charges"] for o in ledger) == [0, 1, 1], ledger  # the gateway saw them
        tech_login, tech_password = (data / "demo-technician.txt").read_text().split()
        tech = call("POST", "/api/technician/session", json={"login": tech_login, "password": tech_password})
        tech_auth = {"Authorization": f"Bearer {tech.json()['token']}"}
        call("GET", "/api/tech/logs?limit=1000", headers=tech_auth)
        export = call("GET", "/api/tech/export", headers=tech_auth)
        with zipfile.ZipFile(io.BytesIO(export.content)) as bundle:
            bodies.extend(bundle.read(name) for name in bundle.namelist())
        call("GET", "/sim/api/devices/receipt_printer/last.png")
        running = {f"running file {p.relative_to(tmp_path)}": p.read_bytes() for p in data.rglob("*")
                   if p.is_file()}
    # the wallet panel's own answers echo nothing but the last 4 digits; requests are not searched
    places = {f"file {p.relative_to(tmp_path)}": p.read_bytes() for p in data.rglob("*") if p.is_file()}
    places["service log"] = log.read_bytes()
    places["HTTP responses"] = b"\n".join(bodies)
    places.update(running)
    found = [(name, wallet) for wallet, code in codes.items() for name, blob in places.items()
             if any(form in blob for form in code_forms(code))]
    assert not found, f"payment codes found in plaintext: {found}"
    # the search would have seen them: orders with their last 4 digits are in the database
    assert any(codes["ecny"][-4:].encode() in blob for name, blob in places.items() if "pk.sqlite3" in name)
