"""Station mode of ``postkiosk diag`` against a running demo service, as a technician would use it;
and the service's listening sockets (T-H2: loopback only)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import httpx
import pytest

from tests.postkiosk.test_cli import free_port

CLI = [sys.executable, "-c", "from postkiosk.cli import main; main()"]


@pytest.fixture
def service(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "POSTKIOSK_DATABASE__PATH": str(data / "pk.sqlite3"), "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("POSTKIOSK_CONFIG", None)
    env.pop("POSTKIOSK_TOKEN", None)
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*CLI, "run", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield {"proc": proc, "port": port, "env": env, "data": data, "tmp": tmp_path,
               "url": f"http://127.0.0.1:{port}"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def diag(service, *args, input=None, check=True):
    result = subprocess.run([*CLI, "diag", *args, "--service", service["url"]], capture_output=True, text=True,
                            env=service["env"], cwd=service["tmp"], input=input, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"diag {args} exited {result.returncode}: {result.stdout}{result.stderr}")
    return result


@pytest.mark.timeout(240)
def test_technician_inspects_the_running_station_from_the_command_line(service):
    before = diag(service, "station", "--json", check=False)
    assert before.returncode == 2 and "not logged in" in before.stderr
    login, password = (service["data"] / "demo-technician.txt").read_text().split()
    wrong = diag(service, "login", "--login", login, "--password-stdin", input="not the password\n", check=False)
    assert wrong.returncode == 2 and json.loads(wrong.stdout or "{}") == {} and "401" in wrong.stderr
    out = diag(service, "login", "--login", login, "--password-stdin", "--json", input=password + "\n").stdout
    assert json.loads(out)["idle_timeout"] == 120
    session_file = service["tmp"] / "postkiosk" / "diag-session.json"
    assert oct(session_file.stat().st_mode & 0o777) == "0o600"

    station = json.loads(diag(service, "station", "--json").stdout)
    assert [b["name"] for b in station["banks"]] == ["A"] and station["banks"][0]["ok"] is True
    assert station["banks"][0]["boards"] == {"0": True, "1": True}
    assert {d["name"] for d in station["devices"]} == {"scanner", "idcard", "receipt_printer", "label_printer",
                                                     "scale", "camera"}
    assert all(d["ok"] for d in station["devices"]), station["devices"]

    # a door opened by hand on the simulated wall shows in the live door table
    httpx.post(service["url"] + "/sim/api/A/1/2/open", timeout=5)
    for _ in range(50):
        doors = {d["label"]: d for d in json.loads(diag(service, "doors", "--json").stdout)}
        if doors["A19"]["door"] == "open":
            break
        time.sleep(0.1)
    assert doors["A19"]["door"] == "open" and doors["A01"]["door"] == "closed" and len(doors) == 32
    table = diag(service, "doors", "--once").stdout
    assert "A19" in table and "open" in table

    report = diag(service, "selftest", "--json")
    assert json.loads(report.stdout)["ok"] is True
    events = json.loads(diag(service, "logs", "--json", "--limit", "10").stdout)
    assert any(e["kind"] == "login" and e["actor"] == f"technician:{login}" for e in events)
    bundle = service["tmp"] / "bundle.zip"
    diag(service, "export", "-o", str(bundle))
    assert "selftest.json" in zipfile.ZipFile(io.BytesIO(bundle.read_bytes())).namelist()

    # the technician's token does not open courier routes
    token = json.loads(session_file.read_text())["token"]
    r = httpx.get(service["url"] + "/api/compartments", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_the_service_listens_only_on_loopback(service):
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    mine = [line for line in listening.splitlines() if f"pid={service['proc'].pid}," in line]
    assert mine, listening
    addresses = {re.split(r"\s+", line.strip())[3] for line in mine}
    assert f"127.0.0.1:{service['port']}" in addresses
    # the demo's payment gateway simulator runs in the same process, also on loopback only
    assert len(addresses) <= 2 and all(a.startswith("127.0.0.1:") for a in addresses), addresses


def test_listening_on_the_lan_without_tls_is_refused(tmp_path):
    env = {**os.environ, "POSTKIOSK_DATABASE__PATH": str(tmp_path / "pk.sqlite3")}
    env.pop("POSTKIOSK_CONFIG", None)
    result = subprocess.run([*CLI, "run", "--host", "0.0.0.0", "--port", str(free_port())], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "tls_certfile" in result.stdout + result.stderr
    bad = tmp_path / "lan.toml"
    bad.write_text('[web]\nhost = "192.168.1.20"\n\n[[banks]]\nname = "A"\nsimulate = true\n')
    check = subprocess.run([*CLI, "config", "check", "--config", str(bad)], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=60)
    assert check.returncode != 0 and "tls_certfile" in check.stdout + check.stderr
