"""The demo's deposit-and-pickup, through the real driver and wire-level simulator of every protocol."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from postkiosk.config import Config
from postkiosk.demo import DemoStation, ensure_demo_courier

BANKS = {
    "kerong-cu16": {"boards": [0, 1], "doors_per_board": 16},
    "kerong-cu12": {"boards": [0, 1], "doors_per_board": 12},
    "cu48": {"boards": [0, 1], "doors_per_board": 48},
    "generic-8a": {"boards": [1, 2], "doors_per_board": 24},
    "modbus-relay": {"boards": [1, 2], "doors_per_board": 8},
}


@pytest.mark.parametrize("protocol", sorted(BANKS))
async def test_deposit_and_pickup_over_every_protocol(tmp_path, protocol):
    bank = BANKS[protocol]
    sizes = " ".join(["S", "M", "L", "XL"] * (bank["doors_per_board"] // 4))
    config = Config(database={"path": tmp_path / "pk.sqlite3"},
                    banks=[{"name": "A", "protocol": protocol, "simulate": True, "sizes": [sizes], **bank}])
    credential = ensure_demo_courier(config)
    demo = DemoStation(config)
    urls = await demo.start_simulators()
    app = demo.app(urls)
    sim = demo.sims["A"].sim
    try:
        await demo.station.start()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kiosk") as c:
            assert (await c.get("/healthz")).status_code == 200
            token = (await c.post("/api/courier/session", json={"login": credential.login,
                                                                "pin": credential.pin})).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            r = await c.post("/api/deposits", headers=auth, json={"tracking": "YT1234567890", "phone": "13812345678",
                                                                  "size": "M", "consent": True})
            assert r.status_code == 201, r.text
            label = r.json()["compartment"]
            spec = next(s for s in config.layout() if s.label == label)
            assert spec.size == "M" and spec.board == bank["boards"][0] and spec.channel == 1

            async def until(predicate, what):
                for _ in range(300):
                    if await predicate():
                        return
                    await asyncio.sleep(0.02)
                raise AssertionError(what)

            async def screen():
                return (await c.get("/api/screen")).json()

            await until(lambda: _door(c, label, "open"), "door never read open")
            await asyncio.sleep(0.6)  # a person takes longer than the 500 ms lock pulse to close a door
            hand = f"/sim/api/A/{spec.board}/{spec.channel}"
            if hasattr(sim, "put_item"):
                assert (await c.post(f"{hand}/put")).status_code == 200
            assert (await c.post(f"{hand}/close")).status_code == 200

            async def stored():
                return (await screen())["result"] == "deposit_stored" and bool(demo.sms.recent)
            await until(stored, "deposit never stored")
            code = re.search(r"取件码 (\d{8})", demo.sms.recent[-1]["text"]).group(1)
            await c.post("/api/screen/dismiss")
            assert (await c.post("/api/pickups", json={"code": code})).status_code == 200
            await until(lambda: _door(c, label, "open"), "pickup door never read open")
            await asyncio.sleep(0.6)
            if hasattr(sim, "remove_item"):
                await c.post(f"{hand}/take")
            await c.post(f"{hand}/close")

            async def collected():
                return (await screen())["result"] == "collected"
            await until(collected, "parcel never collected")
            pulses = sim.door(spec.board, spec.channel).pulses
            assert pulses == 2  # one for the deposit, one for the pickup, nothing else
    finally:
        await demo.station.stop()
        await demo.close_simulators()


async def _door(client, label, state):
    return (await client.get("/api/screen")).json().get("door") == state
