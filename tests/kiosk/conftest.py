from __future__ import annotations

import httpx
import pytest

from kiosk.app import Kiosk, create_app
from kiosk.sessions import Sessions
from kiosk.terminal import Terminal
from lockers.custody import CustodySettings
from lockers.diagnostics import Diagnostics
from tests.lockers.conftest import Station


@pytest.fixture
async def kiosk_station(tmp_path):
    station = Station(tmp_path, CustodySettings(deposit_open_timeout=1.0, deposit_close_timeout=3.0,
                                                pickup_open_timeout=1.0))
    custody = await station.start()
    terminal = Terminal(custody, result_seconds=0.5)
    await terminal.start()
    station.kiosk = Kiosk(custody=custody, terminal=terminal, sessions=Sessions(idle_seconds=120),
                          station_name="测试服务点", station_phone="0571-12345678",
                          diagnostics=Diagnostics(custody, config_summary=lambda: {"station": "测试服务点"}))
    station.app = create_app(station.kiosk)
    station.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=station.app), base_url="http://kiosk")
    yield station
    await station.client.aclose()
    await terminal.stop()
    await station.stop()
