from __future__ import annotations

import sqlite3

from lockers.backup import backup_now
from tests.lockers.test_custody import store


async def test_daily_backup_is_a_consistent_copy_and_old_ones_are_pruned(station, tmp_path):
    courier = await station.make_courier()
    events = station.custody.subscribe()
    await store(station, courier, events)
    folder = tmp_path / "backups"
    for day in range(9):
        path = await backup_now(station.db, folder, keep=7, now=1_800_000_000 + day * 86400)
    assert len(list(folder.glob("postkiosk-*.sqlite3"))) == 7 and not list(folder.glob("*.partial"))
    copy = sqlite3.connect(path)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT state FROM parcels").fetchall() == [("stored",)]
        original = await station.db.read(lambda c: c.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        assert copy.execute("SELECT COUNT(*) FROM events").fetchone()[0] == original
    finally:
        copy.close()
