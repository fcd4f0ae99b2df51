"""Personal-data canary (T-E1, issue 4): generated phone numbers go through every flow of the real
service, and then none of them may be found in plaintext anywhere it wrote or said anything.

Searched: every file under the station's data folder (database, -wal, -shm, backups, keys), the
service's stdout and stderr (its log), and every HTTP response body. Encodings: raw, spaced,
dashed, UTF-16, hex, base64, and unkeyed SHA-256 / MD5 of the number.
"""

from __future__ import annotations

import base64
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


@pytest.mark.timeout(300)
def test_no_phone_number_in_plaintext_anywhere(tmp_path):
    rng = random.Random(1)
    phones = [f"1{rng.choice('3456789')}{rng.randrange(10 ** 9):09d}" for _ in range(6)]
    data = tmp_path / "data"
    port = free_port()
    log = tmp_path / "service.log"
    env = {**os.environ, "POSTKIOSK_DATABASE__PATH": str(data / "pk.sqlite3")}
    env.pop("POSTKIOSK_CONFIG", None)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from postkiosk.cli import main; main()", "run", "--port",
                                 str(port), "--verbose"], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    bodies: list[bytes] = []
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as c:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            login, pin = (data / "demo-courier.txt").read_text().split()

            def call(method, url, **kw):
                r = c.request(method, url, **kw)
                bodies.append(r.content)
                return r

            def wait(predicate, what):
                for _ in range(300):
                    if predicate():
                        return
                    time.sleep(0.02)
                raise AssertionError(what)

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
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    places = {f"file {p.relative_to(tmp_path)}": p.read_bytes() for p in data.rglob("*") if p.is_file()}
    places["service log"] = log.read_bytes()
    places["HTTP responses"] = b"\n".join(bodies)
    assert any(name.endswith("-wal") or "backups" in name for name in places), sorted(places)
    found = [(name, phone) for phone in phones for name, blob in places.items()
             if any(form in blob for form in forms(phone))]
    assert not found, f"phone numbers found in plaintext: {[(n, p[:3] + '****' + p[-4:]) for n, p in found]}"
    masked = [p[:3] + "****" + p[-4:] for p in phones]
    assert any(m.encode() in places["HTTP responses"] for m in masked)  # the search would have seen them
