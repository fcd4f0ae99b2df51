import asyncio
import errno
import os
import sys
from collections import namedtuple

import pytest

from firmware_bridge.hid_keys import KEY_ENTER, key_events
from hal.errors import DeviceIOError, DeviceOpenError, DeviceUnavailable
from hal.scanner import BACKENDS, ScannedCode, code_scanner
from hal.scanner_hid import HidKeyboardScanner
from tests.firmware_bridge.test_hid_keys import CAPTURE

TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CLOCK = 1700000000.0
Event = namedtuple("Event", "type code value")


class FakeInputDevice:
    """Behaves like evdev.InputDevice for the backend: async_read_loop, grab/ungrab, close, and
    OSError(ENODEV) from the read loop once unplugged."""

    def __init__(self, path, *, busy=False):
        self.path = path
        self.name = "Fake Scanner Keyboard"
        self.busy = busy
        self.grabbed = False
        self.closed = False
        self.unplugged = False
        self._queue = asyncio.Queue()

    def grab(self):
        if self.busy:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed = True

    def ungrab(self):
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        self.grabbed = False

    def close(self):
        self.closed = True

    def inject(self, events):
        for type_, code, value in events:
            self._queue.put_nowait(Event(type_, code, value))

    def type(self, text, enter=True):
        self.inject(key_events(text, enter=enter))

    def unplug(self):
        self.unplugged = True
        self._queue.put_nowait(OSError(errno.ENODEV, "No such device"))

    async def async_read_loop(self):
        while True:
            item = await self._queue.get()
            if isinstance(item, OSError):
                raise item
            yield item


@pytest.fixture
def devices():
    made = []

    def open_device(path, **kw):
        device = FakeInputDevice(path, **kw)
        made.append(device)
        return device

    open_device.made = made
    return open_device


def scanner_with(devices, **options):
    return code_scanner("hid", path="/dev/input/by-id/usb-Fake_Scanner-event-kbd", open_device=devices,
                        clock=lambda: CLOCK, **options)


def test_the_backend_is_registered():
    assert BACKENDS["hid"] == "hal.scanner_hid:HidKeyboardScanner"


async def test_a_captured_scan_is_read_and_the_device_is_grabbed_then_released(devices):
    scanner = scanner_with(devices, aim_ids=True)
    async with scanner:
        device = devices.made[0]
        assert device.grabbed and device.path.endswith("-event-kbd")
        device.inject([(t, c, v) for _, t, c, v in CAPTURE])
        assert await scanner.read(timeout=1) == ScannedCode("PK-7a", "]Q1", CLOCK)
        assert scanner.describe()["name"] == "Fake Scanner Keyboard"
    assert not device.grabbed and device.closed


async def test_codes_typed_before_read_come_out_one_by_one(devices):
    async with scanner_with(devices) as scanner:
        devices.made[0].type(TOKEN)
        devices.made[0].type("second code")
        assert (await scanner.read(timeout=1)).text == TOKEN
        assert (await scanner.read(timeout=1)).text == "second code"
        assert await scanner.read(timeout=0.05) is None


async def test_without_enter_a_code_ends_after_the_inter_key_timeout(devices):
    async with scanner_with(devices, suffix="none", inter_key_timeout=0.05) as scanner:
        device = devices.made[0]
        device.type(TOKEN[:10], enter=False)
        await asyncio.sleep(0.01)
        device.type(TOKEN[10:], enter=False)
        assert (await scanner.read(timeout=1)).text == TOKEN
        device.type("NEXT", enter=False)
        assert (await scanner.read(timeout=1)).text == "NEXT"


async def test_with_enter_a_fragment_left_alone_is_dropped(devices):
    async with scanner_with(devices, fragment_timeout=0.05) as scanner:
        device = devices.made[0]
        device.type("PK1-HALF", enter=False)
        assert await scanner.read(timeout=0.2) is None
        device.type(TOKEN)
        assert (await scanner.read(timeout=1)).text == TOKEN


async def test_keys_without_a_character_make_the_code_undecodable(devices):
    async with scanner_with(devices) as scanner:
        f1 = 59
        devices.made[0].inject(key_events("PK1", enter=False) + [(1, f1, 1), (1, f1, 0)] + key_events("X"))
        code = await scanner.read(timeout=1)
        assert (code.text, code.error) == ("PK1X", "undecodable")


async def test_unplugging_fails_the_read_and_close_still_works(devices):
    scanner = scanner_with(devices)
    await scanner.open()
    device = devices.made[0]
    device.type(TOKEN)
    device.unplug()
    assert (await scanner.read(timeout=1)).text == TOKEN  # what came before the cable was pulled
    with pytest.raises(DeviceIOError, match="unplugged"):
        await scanner.read(timeout=1)
    await scanner.close()
    assert device.closed


async def test_a_device_grabbed_by_another_program_cannot_be_opened(devices):
    def busy(path):
        return devices(path, busy=True)

    scanner = code_scanner("hid", path="/dev/input/event7", open_device=busy)
    with pytest.raises(DeviceOpenError, match="EBUSY"):
        await scanner.open()
    assert devices.made[0].closed and not scanner.is_open


async def test_a_missing_device_cannot_be_opened():
    def missing(path):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    with pytest.raises(DeviceOpenError, match="No such file"):
        await HidKeyboardScanner("/dev/input/by-id/nothing-event-kbd", open_device=missing).open()


async def test_without_evdev_the_backend_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "evdev", None)
    with pytest.raises(DeviceUnavailable, match="python-evdev"):
        await HidKeyboardScanner("/dev/input/event0").open()


async def test_a_glob_must_match_exactly_one_device(tmp_path, devices):
    pattern = str(tmp_path / "*-event-kbd")
    with pytest.raises(DeviceOpenError, match="found: none"):
        await HidKeyboardScanner(pattern, open_device=devices).open()
    (tmp_path / "usb-A-event-kbd").touch()
    async with HidKeyboardScanner(pattern, open_device=devices) as scanner:
        assert devices.made[-1].path == str(tmp_path / "usb-A-event-kbd")
        assert scanner.describe()["path"] == str(tmp_path / "usb-A-event-kbd")
    (tmp_path / "usb-B-event-kbd").touch()
    with pytest.raises(DeviceOpenError, match="exactly one"):
        await HidKeyboardScanner(pattern, open_device=devices).open()


async def test_close_ends_a_waiting_read(devices):
    scanner = scanner_with(devices)
    await scanner.open()
    reader = asyncio.create_task(scanner.read(timeout=None))
    await asyncio.sleep(0.02)
    await scanner.close()
    assert await asyncio.wait_for(reader, 1) is None


async def test_no_grab_when_told(devices):
    async with scanner_with(devices, grab=False):
        assert not devices.made[0].grabbed


def test_a_bad_suffix_is_refused():
    with pytest.raises(ValueError):
        HidKeyboardScanner("/dev/input/event0", suffix="cr")


@pytest.mark.skipif(not os.path.exists("/dev/uinput"),
                    reason="needs /dev/uinput (a kernel virtual input device) to type real key events")
async def test_a_real_virtual_keyboard_through_uinput():
    evdev = pytest.importorskip("evdev")
    keys = sorted({code for _, code, _ in key_events(TOKEN)} | {KEY_ENTER})
    try:
        ui = evdev.UInput({evdev.ecodes.EV_KEY: keys}, name="postkiosk-test-scanner")
    except (OSError, evdev.UInputError) as err:
        pytest.skip(f"cannot create a uinput device here: {err}")
    try:
        await asyncio.sleep(0.2)  # let udev create the node
        async with HidKeyboardScanner(ui.device.path, clock=lambda: CLOCK) as scanner:
            for type_, code, value in key_events(TOKEN, msc_scan=False):
                if type_ == evdev.ecodes.EV_KEY:
                    ui.write(type_, code, value)
                    ui.syn()
            assert await scanner.read(timeout=2) == ScannedCode(TOKEN, None, CLOCK)
            other = evdev.InputDevice(ui.device.path)
            try:
                with pytest.raises(OSError):
                    other.grab()  # the scanner holds it alone
            finally:
                other.close()
    finally:
        ui.close()
