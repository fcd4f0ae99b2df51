"""The custody database: one SQLite file, one connection, one worker thread.

Settings (checked at start-up, the service refuses to run without them): WAL journal,
``synchronous=FULL`` (a committed custody change survives a power cut), foreign keys on,
a 5 s busy timeout. Schema changes are an ordered list of SQL scripts; ``PRAGMA user_version``
counts how many have been applied, each in its own transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lockers.errors import StorageError

T = TypeVar("T")

APPLICATION_ID = 0x504B4931  # "PKI1"

MIGRATIONS: list[str] = [
    # 1: compartments, couriers, parcels, door intents, notices, counters, the event journal
    """
    CREATE TABLE compartments (
        id          INTEGER PRIMARY KEY,
        label       TEXT NOT NULL UNIQUE,
        bank        TEXT NOT NULL,
        board       INTEGER NOT NULL,
        channel     INTEGER NOT NULL,
        size        TEXT NOT NULL CHECK (size IN ('S', 'M', 'L', 'XL')),
        state       TEXT NOT NULL DEFAULT 'free'
                    CHECK (state IN ('free', 'reserved', 'occupied', 'check_required', 'disabled')),
        UNIQUE (bank, board, channel)
    );
    CREATE TABLE couriers (
        id              INTEGER PRIMARY KEY,
        login           TEXT NOT NULL UNIQUE,
        name            TEXT NOT NULL,
        carrier         TEXT NOT NULL,
        secret_hash     TEXT NOT NULL,
        failed_logins   INTEGER NOT NULL DEFAULT 0,
        locked_until    REAL,
        created_at      REAL NOT NULL
    );
    CREATE TABLE parcels (
        id              INTEGER PRIMARY KEY,
        tracking_no     TEXT NOT NULL,
        courier_id      INTEGER NOT NULL REFERENCES couriers(id),
        phone_enc       BLOB NOT NULL,
        phone_hmac      BLOB NOT NULL,
        phone_masked    TEXT NOT NULL,
        size            TEXT NOT NULL,
        consent         TEXT NOT NULL,
        compartment_id  INTEGER NOT NULL REFERENCES compartments(id),
        state           TEXT NOT NULL
                        CHECK (state IN ('depositing', 'stored', 'picking_up', 'collected', 'cancelled')),
        code_hmac       BLOB,
        created_at      REAL NOT NULL,
        stored_at       REAL,
        free_until      REAL,
        ended_at        REAL
    );
    CREATE UNIQUE INDEX parcels_live_code ON parcels(code_hmac)
        WHERE state IN ('stored', 'picking_up');
    CREATE UNIQUE INDEX parcels_live_compartment ON parcels(compartment_id)
        WHERE state IN ('depositing', 'stored', 'picking_up');
    CREATE INDEX parcels_phone ON parcels(phone_hmac);
    CREATE TABLE door_intents (
        id              INTEGER PRIMARY KEY,
        compartment_id  INTEGER NOT NULL REFERENCES compartments(id),
        parcel_id       INTEGER REFERENCES parcels(id),
        purpose         TEXT NOT NULL CHECK (purpose IN ('deposit', 'pickup')),
        created_at      REAL NOT NULL,
        outcome         TEXT CHECK (outcome IN ('opened', 'not_opened', 'unknown')),
        resolved_at     REAL
    );
    CREATE TABLE notices (
        id          INTEGER PRIMARY KEY,
        parcel_id   INTEGER NOT NULL REFERENCES parcels(id),
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        created_at  REAL NOT NULL,
        sent_at     REAL
    );
    CREATE TABLE counters (
        name        TEXT PRIMARY KEY,
        value       REAL NOT NULL
    );
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        at          REAL NOT NULL,
        kind        TEXT NOT NULL,
        actor       TEXT NOT NULL,
        compartment TEXT,
        parcel_id   INTEGER,
        detail      TEXT NOT NULL,
        prev_hash   TEXT NOT NULL,
        hash        TEXT NOT NULL
    );
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END;
    """,
]


def _check_settings(conn: sqlite3.Connection) -> None:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    fks = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    busy = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    problems = []
    if mode.lower() != "wal":
        problems.append(f"journal_mode is {mode}, not wal")
    if sync < 2:
        problems.append(f"synchronous is {sync}, not FULL (2) or EXTRA (3)")
    if fks != 1:
        problems.append("foreign keys are off")
    if busy < 5000:
        problems.append(f"busy_timeout is {busy} ms, under 5000")
    if problems:
        raise StorageError("unsafe database settings: " + "; ".join(problems))


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database, apply settings and migrations, check them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _check_settings(conn)
        migrate(conn)
    except sqlite3.Error as err:
        raise StorageError(f"cannot open the database {path.name}: {err}") from err
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration not applied yet; returns the resulting user_version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StorageError(f"database schema {version} is newer than this software ({len(MIGRATIONS)})")
    for number in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            if number == 0:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


class Database:
    """The connection, used only from its own worker thread so the event loop never blocks on I/O."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = await self._submit(lambda: connect(self.path))

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._submit(conn.close)
        self._executor.shutdown(wait=True)

    async def _submit(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` for reading."""
        conn = self._require()
        return await self._submit(lambda: fn(conn))

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction, committed (durably) before returning."""
        conn = self._require()

        def tx() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._submit(tx)

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("database is not open")
        return self._conn
