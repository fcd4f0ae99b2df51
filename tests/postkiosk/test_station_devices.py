"""The station's devices beyond the lock wall (ID-card reader, receipt and label printers, scale,
surveillance camera), each on its wire-level simulator as in the demo: the technician sees their
health, a printer test prints, and a device that fails shows in the self-test without hiding the rest."""

from __future__ import annotations

import asyncio

import httpx

from lockers import accounts
from postkiosk.config import DEMO_DEVICES, Config
from postkiosk.demo import DemoStation

PASSWORD = "a long test password"


async def test_technician_sees_every_device_and_what_is_wrong_with_one(tmp_path):
    config = Config(database={"path": tmp_path / "pk.sqlite3"}, **DEMO_DEVICES)
    demo = DemoStation(config)
    urls = await demo.start_simulators()
    app = demo.app(urls)
    try:
        await demo.station.start()
        await demo.station.db.write(lambda c: accounts.create_account(
            c, role="technician", login="li.wei", name="李伟", secret=PASSWORD, now=0.0))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kiosk") as c:
            token = (await c.post("/api/technician/session",
                                  json={"login": "li.wei", "password": PASSWORD})).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            station = (await c.get("/api/tech/station", headers=auth)).json()
            devices = {d["name"]: d for d in station["devices"]}
            assert set(devices) == {"scanner", "idcard", "receipt_printer", "label_printer", "scale", "camera"}
            assert all(d["ok"] for d in devices.values()), devices
            assert devices["idcard"]["detail"].startswith("SAM")
            assert devices["receipt_printer"]["kind"] == "receipt printer"

            printed = await c.post("/api/tech/printer/test", headers=auth, json={"printer": "receipt_printer"})
            assert printed.status_code == 200, printed.text
            receipt = demo.device_sims["receipt_printer"].sim
            for _ in range(200):
                if receipt.jobs:
                    break
                await asyncio.sleep(0.02)
            assert len(receipt.jobs) == 1
            label = await c.post("/api/tech/printer/test", headers=auth, json={"printer": "label_printer"})
            assert label.status_code == 200, label.text

            # bus statistics: a reply spoiled on the wire shows as a checksum error of bank A
            demo.sims["A"].sim.corrupt_replies(1)
            for _ in range(200):
                bus = (await c.get("/api/tech/bus", headers=auth)).json()[0]
                if bus["checksum_errors"]:
                    break
                await asyncio.sleep(0.02)
            assert bus["bank"] == "A" and bus["checksum_errors"] == 1 and bus["frames_per_second"] > 0
            assert sum(bus["boards"]["0"]["latency_histogram"].values()) == bus["boards"]["0"]["replies"] > 0

            receipt.set_paper("out")
            demo.device_sims["label_printer"].sim.set(head_open=True)
            refused = await c.post("/api/tech/printer/test", headers=auth, json={"printer": "receipt_printer"})
            assert refused.status_code == 503 and "paper" in refused.json()["message"]
            report = (await c.get("/api/tech/selftest", headers=auth)).json()
            failed = {check["check"] for check in report["checks"] if not check["ok"]}
            assert failed == {"receipt_printer", "label_printer"}, report
            assert not report["ok"]
            demo.camera.stop_frames()
            station = (await c.get("/api/tech/station", headers=auth)).json()
            camera = next(d for d in station["devices"] if d["name"] == "camera")
            assert camera["ok"] is False
    finally:
        await demo.station.stop()
        await demo.close_simulators()
