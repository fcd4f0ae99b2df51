from __future__ import annotations

import httpx

from lockers.db import Database
from postkiosk.config import Config
from postkiosk.service import Station
from simulators.kerong_cu16 import run_lockboard_sim


async def test_a_database_on_tmpfs_puts_the_station_in_maintenance_and_moves_no_lock(tmp_path):
    sim = await run_lockboard_sim((0, 1), 16)
    try:
        config = Config(database={"path": tmp_path / "pk.sqlite3"})
        station = Station(config, bank_urls={"A": sim.url})
        app = station.app()
        station.db = Database(config.database.path, mounts=f"tmpfs {tmp_path} tmpfs rw 0 0\n")
        await station.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as c:
                health = await c.get("/healthz")
                assert health.status_code == 503 and "tmpfs" in health.json()["reason"]
                assert (await c.get("/")).status_code == 503
        finally:
            await station.stop()
        assert not sim.sim.requests  # not even a status poll went out
    finally:
        await sim.close()


async def test_a_bank_with_gpio_door_sensors_reads_its_doors_from_the_pins(tmp_path):
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from hal.doorsensors_gpio import WithGpioDoorSensors
    from hal.lockbank import DoorState

    Device.pin_factory = MockFactory()
    sim = await run_lockboard_sim((0,), 2)
    try:
        config = Config(database={"path": tmp_path / "pk.sqlite3"},
                        banks=[{"name": "A", "boards": [0], "doors_per_board": 2, "simulate": True,
                                "sizes": ["S M"], "door_sensor_pins": [[17, 27]]}])
        station = Station(config, bank_urls={"A": sim.url})
        bank = station.banks["A"]
        assert isinstance(bank, WithGpioDoorSensors)
        async with bank:
            Device.pin_factory.pin(17).drive_low()   # door A01 closed: its reed switch pulls the pin low
            Device.pin_factory.pin(27).drive_high()  # door A02 open
            assert (await bank.read_status(0)).doors == (DoorState.CLOSED, DoorState.OPEN)
    finally:
        await sim.close()
        Device.pin_factory.reset()
        Device.pin_factory = None


def test_payment_code_formats_are_configured_per_wallet():
    import pytest
    from pydantic import ValidationError

    from hal.codes import PaymentCode, classify
    from postkiosk.config import PaymentsConfig

    cfg = PaymentsConfig(codes={"ecny": {"prefixes": ["01", "02"], "min_length": 19, "max_length": 20},
                                "unionpay": False})
    rules = cfg.code_rules()
    assert classify("0212345678901234567", rules=rules).channel == "ecny"  # a second prefix the acquirer gave
    assert not isinstance(classify("6212345678901234567", rules=rules), PaymentCode)  # UnionPay refused here
    assert classify("134567890123456789", rules=rules).channel == "wechat"  # the others as built in
    assert cfg.settings("Asia/Shanghai").code_rules == rules
    for bad in ({"ecny": {"prefixes": ["x1"], "min_length": 19, "max_length": 19}},
                {"ecny": {"prefixes": ["01"], "min_length": 20, "max_length": 19}},
                {"paypal": False}):
        with pytest.raises(ValidationError):
            PaymentsConfig(codes=bad)
