from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hal.lockbank import BankProfile
from hal.sms import LogSmsGateway
from lockers import accounts
from lockers.custody import CompartmentSpec, Custody, CustodySettings
from lockers.db import Database
from lockers.doors import DoorMonitor
from lockers.keys import DeviceKeys
from simulators.fake_lockbank import FakeLockBank, FakeWall

SIZES = ["S"] * 4 + ["M"] * 4 + ["L"] * 4 + ["XL"] * 2 + ["S", "M"]


class WallClock:
    """The station's wall clock for tests: real time plus whatever the test skipped ahead."""

    def __init__(self) -> None:
        import time

        self._time = time.time
        self.offset = 0.0

    def __call__(self) -> float:
        return self._time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Station:
    """A custody service over a fake wall, restartable on the same files."""

    def __init__(self, tmp: Path, settings: CustodySettings) -> None:
        self.tmp = tmp
        self.settings = settings
        self.clock = WallClock()
        self.wall = FakeWall()
        self.profile = BankProfile(protocol="fake", url="fake://", boards=(0, 1), channels_per_board=16)
        self.layout = [CompartmentSpec(f"A{b * 16 + c + 1:02d}", "A", b, c, SIZES[c])
                       for b in (0, 1) for c in range(16)]
        self.sms = LogSmsGateway()
        self.custody: Custody | None = None

    @property
    def bank(self) -> FakeLockBank:
        return self._bank

    async def start(self) -> Custody:
        self._bank = FakeLockBank(self.profile, self.wall)
        await self._bank.open()
        self.db = Database(self.tmp / "custody.sqlite3")
        await self.db.open()
        keys = DeviceKeys.load_or_create(self.tmp / "device.key")
        self.custody = Custody(db=self.db, keys=keys, layout=self.layout,
                               doors=DoorMonitor({"A": self._bank}, poll_interval=0.005),
                               sms=self.sms, settings=self.settings, clock=self.clock)
        await self.custody.start()
        return self.custody

    async def stop(self) -> None:
        if self.custody is not None:
            await self.custody.stop()
            await self.db.close()
            self.custody = None

    def spec(self, label: str) -> CompartmentSpec:
        return next(s for s in self.layout if s.label == label)

    async def make_courier(self, login: str = "10000001", pin: str = "24681357") -> accounts.Courier:
        return await self.db.write(lambda c: accounts.create_courier(
            c, login=login, name="测试快递员", carrier="SF", pin=pin, now=0.0))

    async def wait_for(self, predicate, timeout: float = 3.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.01)

    async def wait_event(self, queue: asyncio.Queue, kind: str, timeout: float = 3.0):
        async def get():
            while True:
                event = await queue.get()
                if event.kind == kind:
                    return event
        return await asyncio.wait_for(get(), timeout)


@pytest.fixture
async def station(tmp_path):
    s = Station(tmp_path, CustodySettings(deposit_open_timeout=1.0, deposit_close_timeout=3.0,
                                          pickup_open_timeout=1.0, notice_retry_delays=(0.05, 0.05)))
    await s.start()
    yield s
    await s.stop()
