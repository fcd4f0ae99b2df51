"""Daily online backup of the custody database with SQLite's backup API.

Copying a live database file can corrupt the copy (and deleting a hot -wal corrupts the original);
``Connection.backup`` makes a consistent snapshot while the service keeps running. Backups go to a
folder on persistent storage (a USB stick or the data partition), one file per day, the newest
``keep`` kept. Each is checked with ``PRAGMA integrity_check`` after writing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

from lockers.db import Database
from lockers.errors import StorageError

log = logging.getLogger(__name__)


async def backup_now(db: Database, folder: Path, *, keep: int = 7, now: float | None = None) -> Path:
    """Write today's backup (replacing an earlier one of the same day) and prune old ones."""
    folder.mkdir(parents=True, exist_ok=True)
    day = time.strftime("%Y%m%d", time.localtime(now if now is not None else time.time()))
    target = folder / f"postkiosk-{day}.sqlite3"
    partial = target.with_suffix(".partial")

    def copy(conn: sqlite3.Connection) -> None:
        partial.unlink(missing_ok=True)
        out = sqlite3.connect(partial)
        try:
            conn.backup(out)
            result = out.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            out.close()
        if result != "ok":
            partial.unlink(missing_ok=True)
            raise StorageError(f"backup failed its integrity check: {result}")
        partial.replace(target)

    await db.read(copy)
    for old in sorted(folder.glob("postkiosk-*.sqlite3"))[:-keep]:
        old.unlink()
    log.info("database backed up to %s", target.name)
    return target


async def run_daily(db: Database, folder: Path, *, keep: int = 7, every: float = 86400.0) -> None:
    """Back up now, then every ``every`` seconds; a failed backup is logged and tried next time."""
    while True:
        try:
            await backup_now(db, folder, keep=keep)
        except (OSError, sqlite3.Error, StorageError) as err:
            log.error("database backup failed: %s", err)
        await asyncio.sleep(every)
