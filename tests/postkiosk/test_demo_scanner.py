"""A resident shows the QR code of their pickup notice to the kiosk's scanner (the demo, end to end:
wall page -> scanner simulator -> pty -> SerialLineScanner -> ScanRouter -> custody -> lock board)."""

from __future__ import annotations

import asyncio
import re

import httpx

from postkiosk.config import Config, load
from postkiosk.demo import DemoStation, ensure_demo_courier


async def until(predicate, what):
    for _ in range(300):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(what)


async def test_the_notice_qr_shown_to_the_scanner_opens_the_right_door(tmp_path):
    config = Config(database={"path": tmp_path / "pk.sqlite3"},
                    scanner={"simulate": True, "suffix": "crlf", "aim_ids": True})
    credential = ensure_demo_courier(config)
    demo = DemoStation(config)
    urls = await demo.start_simulators()
    app = demo.app(urls)
    sim = demo.sims["A"].sim
    try:
        await demo.station.start()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kiosk") as c:
            async def screen():
                return (await c.get("/api/screen")).json()

            token = (await c.post("/api/courier/session", json={"login": credential.login,
                                                                "pin": credential.pin})).json()["token"]
            r = await c.post("/api/deposits", headers={"Authorization": f"Bearer {token}"},
                             json={"tracking": "YT1234567890", "phone": "13812345678", "size": "M", "consent": True})
            label = r.json()["compartment"]
            spec = next(s for s in config.layout() if s.label == label)
            hand = f"/sim/api/A/{spec.board}/{spec.channel}"

            async def door(state):
                return (await screen()).get("door") == state
            await until(lambda: door("open"), "deposit door never read open")
            await asyncio.sleep(0.6)
            await c.post(f"{hand}/put")
            await c.post(f"{hand}/close")

            async def stored():
                return (await screen())["result"] == "deposit_stored" and bool(demo.sms.recent)
            await until(stored, "deposit never stored")
            await c.post("/api/screen/dismiss")

            wall = (await c.get("/sim")).text
            assert 'data-action="scan"' in wall and 'data-testid="scan-0"' in wall
            state = (await c.get("/sim/api/state")).json()
            assert re.fullmatch(r"PK1-[A-Z2-7]{26}", state["inbox"][0]["qr"])

            # the resident holds the notice's QR code under the scanner
            assert (await c.post("/sim/api/scan/0")).status_code == 200
            assert demo.scanner_sim.sim.sent[-1].startswith(b"]Q1PK1-")  # AIM id and CRLF on the wire
            assert demo.scanner_sim.sim.sent[-1].endswith(b"\r\n")

            async def pickup_door():
                s = await screen()
                return s["name"] == "door" and s["flow"] == "pickup" and s["compartment"] == label
            await until(pickup_door, "scan did not start the pickup of the right compartment")
            await until(lambda: door("open"), "pickup door never read open")
            assert sim.door(spec.board, spec.channel).pulses == 2  # deposit + this pickup, one pulse each
            await asyncio.sleep(0.6)
            await c.post(f"{hand}/take")
            await c.post(f"{hand}/close")

            async def collected():
                return (await screen())["result"] == "collected"
            await until(collected, "parcel never collected")

            # the same QR code again: refused, with the message on a result screen
            assert (await c.post("/sim/api/scan/0")).status_code == 200

            async def refused():
                return (await screen())["result"] == "scan_refused"
            await until(refused, "second scan not refused")
            assert (await screen())["detail"]["error"] == "unknown_token"
            page = (await c.get("/")).text
            assert 'data-result="scan_refused"' in page and "这个二维码不是本柜中快递的取件码，或已经用过。" in page
            assert sim.door(spec.board, spec.channel).pulses == 2  # nothing opened

            # any other code: explained
            assert (await c.post("/sim/api/scan", json={"text": "6901234567892"})).status_code == 200

            async def not_pickup():
                return (await screen())["result"] == "scan_not_pickup"
            await until(not_pickup, "a random code was not explained")
            page = (await c.get("/", headers={"Cookie": "pk_lang=en"})).text
            assert "This code is not a pickup code of this locker." in page
    finally:
        await demo.station.stop()
        await demo.close_simulators()


async def test_no_scanner_configured_runs_nothing(tmp_path):
    demo = DemoStation(Config(database={"path": tmp_path / "pk.sqlite3"}))
    urls = await demo.start_simulators()
    app = demo.app(urls)
    try:
        await demo.station.start()
        assert demo.scanner_sim is None and demo.station.scanner is None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kiosk") as c:
            assert (await c.post("/sim/api/scan", json={"text": "x"})).status_code == 404
    finally:
        await demo.station.stop()
        await demo.close_simulators()


def test_the_built_in_demo_has_a_simulated_scanner_and_a_file_without_one_has_none(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTKIOSK_CONFIG", raising=False)
    assert load().scanner.simulate
    file = tmp_path / "station.toml"
    file.write_text('[[banks]]\nname = "A"\nsimulate = true\n')
    assert load(file).scanner is None
