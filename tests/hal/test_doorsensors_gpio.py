"""Door sensors on GPIO (gpiozero's mock pins) and the lock bank that reads its doors from them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hal.doorsensors_gpio import GpioDoorSensors, WithGpioDoorSensors
from hal.errors import DeviceOpenError
from hal.lockbank import BankProfile, DoorState, Polarity
from simulators.fake_lockbank import FakeLockBank

gpiozero = pytest.importorskip("gpiozero")
from gpiozero import Button, Device  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

CLOSED, OPEN = DoorState.CLOSED, DoorState.OPEN
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pins():
    previous = Device.pin_factory
    factory = Device.pin_factory = MockFactory()
    yield factory
    factory.reset()
    Device.pin_factory = previous


def test_a_closed_door_pulls_its_pin_low(pins):
    with GpioDoorSensors({(1, 0): 17, (1, 1): 27}) as sensors:
        pins.pin(17).drive_low()  # reed switch closed by the door magnet
        pins.pin(27).drive_high()  # pull-up wins: door open
        assert sensors.door(1, 0) is CLOSED and sensors.is_closed(1, 0)
        assert sensors.door(1, 1) is OPEN
        pins.pin(17).drive_high()
        assert sensors.door(1, 0) is OPEN


def test_a_normally_closed_switch_reads_the_other_way(pins):
    with GpioDoorSensors({(1, 0): 17}, polarity=Polarity.CLOSED_IS_1) as sensors:
        pins.pin(17).drive_high()
        assert sensors.door(1, 0) is CLOSED
        pins.pin(17).drive_low()
        assert sensors.door(1, 0) is OPEN


def test_pins_by_number_and_by_name(pins):
    with GpioDoorSensors({(2, 0): 5, (2, 1): "GPIO13", (2, 2): "BOARD31"}) as sensors:
        for gpio in (5, 13, 6):  # BOARD31 is GPIO6
            pins.pin(gpio).drive_high()
        pins.pin(6).drive_low()
        assert [sensors.door(2, c) for c in range(3)] == [OPEN, OPEN, CLOSED]


def test_one_pin_for_two_doors_fails_to_open_and_releases_the_others(pins):
    sensors = GpioDoorSensors({(1, 0): 17, (1, 1): "GPIO6", (1, 2): "BOARD31"})
    with pytest.raises(DeviceOpenError, match="board 1 channel 2"):
        sensors.open()
    assert not sensors.is_open
    Button(17, pull_up=True).close()  # free again


def test_close_releases_the_pins(pins):
    sensors = GpioDoorSensors({(1, 0): 17})
    sensors.open()
    sensors.close()
    with pytest.raises(RuntimeError):
        sensors.door(1, 0)
    Button(17, pull_up=True).close()


def test_mapping_must_name_doors_and_pins():
    with pytest.raises(ValueError):
        GpioDoorSensors({})
    with pytest.raises(ValueError):
        GpioDoorSensors({1: 17})
    with pytest.raises(ValueError):
        GpioDoorSensors({(1, 0): 1.5})


def fake_bank(boards=(1,), channels=2):
    return FakeLockBank(BankProfile(protocol="fake", url="fake://", boards=boards, channels_per_board=channels))


async def test_the_wrapped_bank_unlocks_and_the_pins_tell_the_doors(pins):
    inner = fake_bank(boards=(1, 2))
    bank = WithGpioDoorSensors(inner, GpioDoorSensors({(1, 0): 5, (1, 1): 6, (2, 0): 13, (2, 1): 19}))
    async with bank:
        for gpio in (5, 6, 13, 19):
            pins.pin(gpio).drive_low()
        assert (await bank.read_status(2)).doors == (CLOSED, CLOSED)
        await bank.unlock(2, 1)
        assert inner.door(2, 1).pulses == 1 and sum(inner.door(b, c).pulses for b in (1, 2) for c in (0, 1)) == 1
        assert (await bank.read_status(2)).doors == (CLOSED, CLOSED)  # the pin, not the board, decides
        pins.pin(19).drive_high()
        status = await bank.read_status(2)
        assert status.board == 2 and status.doors == (CLOSED, OPEN) and status.items == (None, None)
        assert bank.describe()["door_sensors"] == "gpio"
    assert not inner.is_open and not bank.sensors.is_open


async def test_every_door_of_the_bank_needs_exactly_one_pin():
    with pytest.raises(ValueError, match=r"missing \[\(1, 1\)\]"):
        WithGpioDoorSensors(fake_bank(), GpioDoorSensors({(1, 0): 5}))
    with pytest.raises(ValueError, match=r"not on the bank \[\(3, 0\)\]"):
        WithGpioDoorSensors(fake_bank(), GpioDoorSensors({(1, 0): 5, (1, 1): 6, (3, 0): 7}))


def test_gpiozero_is_imported_only_when_sensors_open():
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="no-such-factory")
    code = (
        "import sys\n"
        "from hal.doorsensors_gpio import GpioDoorSensors\n"
        "from hal.errors import DeviceUnavailable\n"
        "assert 'gpiozero' not in sys.modules\n"
        "try:\n"
        "    GpioDoorSensors({(1, 0): 17}).open()\n"
        "except DeviceUnavailable as err:\n"
        "    print('unavailable:', err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert "unavailable: no GPIO pin library usable here" in done.stdout
