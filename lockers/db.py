"""The custody database: one SQLite file, one connection, one worker thread.

Settings (checked at start-up, the service refuses to run without them): WAL journal,
``synchronous=FULL`` (a committed custody change survives a power cut), foreign keys on,
a 5 s busy timeout. Schema changes are an ordered list of SQL scripts; ``PRAGMA user_version``
counts how many have been applied, each in its own transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
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
    # 2: refusal at the locker, courier retrieval, QR pickup tokens, reminders, technician opens,
    #    the station-wide log of failed pickup codes. SQLite cannot alter a CHECK constraint, so
    #    parcels and door_intents are rebuilt (foreign keys are off while a migration runs).
    """
    CREATE TABLE parcels_v2 (
        id              INTEGER PRIMARY KEY,
        tracking_no     TEXT NOT NULL,
        courier_id      INTEGER NOT NULL REFERENCES couriers(id),
        phone_enc       BLOB NOT NULL,
        phone_hmac      BLOB NOT NULL,
        phone_masked    TEXT NOT NULL,
        size            TEXT NOT NULL,
        consent         TEXT NOT NULL CHECK (consent IN ('recipient_agreed', 'locker_is_address')),
        compartment_id  INTEGER NOT NULL REFERENCES compartments(id),
        state           TEXT NOT NULL CHECK (state IN ('depositing', 'stored', 'picking_up', 'refused',
                                                       'retrieving', 'collected', 'cancelled', 'returned')),
        code_hmac       BLOB,
        token_hmac      BLOB,
        refuse_reason   TEXT,
        created_at      REAL NOT NULL,
        stored_at       REAL,
        free_until      REAL,
        reminded_at     REAL,
        ended_at        REAL
    );
    INSERT INTO parcels_v2 (id, tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size, consent,
                            compartment_id, state, code_hmac, created_at, stored_at, free_until, ended_at)
        SELECT id, tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size, consent,
               compartment_id, state, code_hmac, created_at, stored_at, free_until, ended_at FROM parcels;
    DROP TABLE parcels;
    ALTER TABLE parcels_v2 RENAME TO parcels;
    CREATE UNIQUE INDEX parcels_live_code ON parcels(code_hmac) WHERE state IN ('stored', 'picking_up');
    CREATE UNIQUE INDEX parcels_live_token ON parcels(token_hmac) WHERE state IN ('stored', 'picking_up');
    CREATE UNIQUE INDEX parcels_live_compartment ON parcels(compartment_id)
        WHERE state IN ('depositing', 'stored', 'picking_up', 'refused', 'retrieving');
    CREATE INDEX parcels_phone ON parcels(phone_hmac);
    CREATE INDEX parcels_state ON parcels(state);
    CREATE TABLE door_intents_v2 (
        id              INTEGER PRIMARY KEY,
        compartment_id  INTEGER NOT NULL REFERENCES compartments(id),
        parcel_id       INTEGER REFERENCES parcels(id),
        purpose         TEXT NOT NULL CHECK (purpose IN ('deposit', 'pickup', 'retrieve', 'technician')),
        actor           TEXT NOT NULL DEFAULT 'system',
        created_at      REAL NOT NULL,
        outcome         TEXT CHECK (outcome IN ('opened', 'not_opened', 'unknown')),
        resolved_at     REAL
    );
    INSERT INTO door_intents_v2 (id, compartment_id, parcel_id, purpose, created_at, outcome, resolved_at)
        SELECT id, compartment_id, parcel_id, purpose, created_at, outcome, resolved_at FROM door_intents;
    DROP TABLE door_intents;
    ALTER TABLE door_intents_v2 RENAME TO door_intents;
    CREATE INDEX door_intents_open ON door_intents(parcel_id) WHERE resolved_at IS NULL;
    CREATE TABLE code_failures (
        id  INTEGER PRIMARY KEY,
        at  REAL NOT NULL
    );
    CREATE INDEX code_failures_at ON code_failures(at);
    """,
    # 3: every named person logs in from one table: couriers, technicians and station staff. The
    #    table is renamed (references from parcels follow) and gains the role; carrier is '' for
    #    people who work for the station.
    """
    ALTER TABLE couriers RENAME TO accounts;
    ALTER TABLE accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'courier'
        CHECK (role IN ('courier', 'technician', 'staff'));
    """,
    # 4: posting a parcel at the kiosk. A posting holds the real-name record and the waybill; its
    #    parcel waits in an outbound compartment as a row of ``parcels`` (no courier until one
    #    collects it, no pickup code). Personal data is AES-GCM encrypted, looked up by keyed HMAC.
    #    parcels is rebuilt for the nullable courier, the posting link, the sender's consent basis
    #    and the 'dispatched' end state.
    """
    CREATE TABLE postings (
        id              INTEGER PRIMARY KEY,
        state           TEXT NOT NULL CHECK (state IN ('reading_card', 'drafting', 'priced', 'paid', 'printed',
                                                       'in_locker', 'collected', 'inspection_refused',
                                                       'refused', 'cancelled')),
        notice_version  TEXT NOT NULL,
        created_at      REAL NOT NULL,
        id_type         TEXT,
        id_enc          BLOB,
        id_hmac         BLOB,
        id_masked       TEXT,
        sender_enc      BLOB,
        sender_masked   TEXT,
        recipient_enc   BLOB,
        recipient_masked TEXT,
        dest_province   TEXT,
        dest_city       TEXT,
        elderly         INTEGER NOT NULL DEFAULT 0,
        category        TEXT,
        quantity        INTEGER,
        size            TEXT,
        weight_g        INTEGER,
        zone            TEXT,
        price_fen       INTEGER,
        payment_method  TEXT,
        payment_state   TEXT,
        waybill         TEXT UNIQUE,
        paid_at         REAL,
        printed_at      REAL,
        leaves_at       REAL,
        inspection      TEXT,
        end_reason      TEXT,
        ended_at        REAL,
        shredded_at     REAL
    );
    CREATE INDEX postings_id_hmac ON postings(id_hmac);
    CREATE INDEX postings_state ON postings(state);
    CREATE TABLE parcels_v4 (
        id              INTEGER PRIMARY KEY,
        tracking_no     TEXT NOT NULL,
        courier_id      INTEGER REFERENCES accounts(id),
        posting_id      INTEGER REFERENCES postings(id),
        phone_enc       BLOB NOT NULL,
        phone_hmac      BLOB NOT NULL,
        phone_masked    TEXT NOT NULL,
        size            TEXT NOT NULL,
        consent         TEXT NOT NULL CHECK (consent IN ('recipient_agreed', 'locker_is_address', 'sender_posted')),
        compartment_id  INTEGER NOT NULL REFERENCES compartments(id),
        state           TEXT NOT NULL CHECK (state IN ('depositing', 'stored', 'picking_up', 'refused',
                                                       'retrieving', 'collected', 'cancelled', 'returned',
                                                       'dispatched')),
        code_hmac       BLOB,
        token_hmac      BLOB,
        refuse_reason   TEXT,
        created_at      REAL NOT NULL,
        stored_at       REAL,
        free_until      REAL,
        reminded_at     REAL,
        ended_at        REAL,
        CHECK (courier_id IS NOT NULL OR posting_id IS NOT NULL)  -- a courier's parcel, or a posting
    );
    INSERT INTO parcels_v4 (id, tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size, consent,
                            compartment_id, state, code_hmac, token_hmac, refuse_reason, created_at, stored_at,
                            free_until, reminded_at, ended_at)
        SELECT id, tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size, consent,
               compartment_id, state, code_hmac, token_hmac, refuse_reason, created_at, stored_at,
               free_until, reminded_at, ended_at FROM parcels;
    DROP TABLE parcels;
    ALTER TABLE parcels_v4 RENAME TO parcels;
    CREATE UNIQUE INDEX parcels_live_code ON parcels(code_hmac) WHERE state IN ('stored', 'picking_up');
    CREATE UNIQUE INDEX parcels_live_token ON parcels(token_hmac) WHERE state IN ('stored', 'picking_up');
    CREATE UNIQUE INDEX parcels_live_compartment ON parcels(compartment_id)
        WHERE state IN ('depositing', 'stored', 'picking_up', 'refused', 'retrieving');
    CREATE INDEX parcels_phone ON parcels(phone_hmac);
    CREATE INDEX parcels_state ON parcels(state);
    CREATE INDEX parcels_posting ON parcels(posting_id);
    """,
    # 5: the counter queue. A ticket is a number per business day (``day``, the station's local date):
    #    lane 'A' normal, 'P' priority (60+ by ID card, or staff). ``priority`` can be raised later by
    #    staff without changing the printed number. No personal data: nothing of the card is kept.
    """
    CREATE TABLE queue_tickets (
        id              INTEGER PRIMARY KEY,
        day             TEXT NOT NULL,
        lane            TEXT NOT NULL CHECK (lane IN ('A', 'P')),
        seq             INTEGER NOT NULL CHECK (seq BETWEEN 1 AND 999),
        number          TEXT NOT NULL,
        priority        INTEGER NOT NULL DEFAULT 0 CHECK (priority IN (0, 1)),
        priority_reason TEXT CHECK (priority_reason IN ('age_card', 'staff')),
        state           TEXT NOT NULL DEFAULT 'waiting'
                        CHECK (state IN ('waiting', 'called', 'served', 'skipped', 'expired')),
        taken_at        REAL NOT NULL,
        called_at       REAL,
        counter         TEXT,
        calls           INTEGER NOT NULL DEFAULT 0,
        ended_at        REAL,
        UNIQUE (day, lane, seq),
        UNIQUE (day, number),
        CHECK ((priority = 0) = (priority_reason IS NULL))
    );
    CREATE INDEX queue_tickets_day_state ON queue_tickets(day, state);
    """,
    # 6: payment orders of scanned payment codes (lockers/payments.py; rules-and-identifiers.md §4.5).
    #    One row per out_trade_no, never reused. Only the channel and the last 4 digits of the auth code
    #    are kept. At most one order per (purpose, reference) is paid or not yet final: the partial
    #    unique index is what makes a second pay call for the same service impossible.
    """
    CREATE TABLE payment_orders (
        id              INTEGER PRIMARY KEY,
        out_trade_no    TEXT NOT NULL UNIQUE,
        purpose         TEXT NOT NULL,
        reference       TEXT NOT NULL,
        channel         TEXT NOT NULL CHECK (channel IN ('wechat', 'alipay', 'unionpay', 'ecny')),
        code_last4      TEXT NOT NULL CHECK (length(code_last4) <= 4),
        amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
        state           TEXT NOT NULL CHECK (state IN ('created', 'submitted', 'user_paying', 'paid', 'failed',
                                                       'timeout', 'reversing', 'retry', 'reversed', 'refunded')),
        reason          TEXT,
        transaction_id  TEXT,
        created_at      REAL NOT NULL,
        submitted_at    REAL,
        updated_at      REAL NOT NULL,
        ended_at        REAL,
        queries         INTEGER NOT NULL DEFAULT 0,
        reverse_attempts INTEGER NOT NULL DEFAULT 0,
        alerted         INTEGER NOT NULL DEFAULT 0 CHECK (alerted IN (0, 1))
    );
    CREATE UNIQUE INDEX payment_orders_live ON payment_orders(purpose, reference)
        WHERE state NOT IN ('failed', 'reversed', 'refunded');
    CREATE INDEX payment_orders_state ON payment_orders(state);
    CREATE INDEX payment_orders_reference ON payment_orders(purpose, reference);
    """,
    # 7: the station's accounts (lockers/station_ledger.py, lockers/bills.py; service-plan.md §5). The prepaid
    #    balance is a chain of ledger entries, each carrying the balance after it, so a daily close can
    #    re-add the day and find any break. Commission accruals keep the basis and rate they were computed
    #    with; a reversal is a negative accrual pointing at the one it reverses. Daily closes are versioned,
    #    never replaced. All three are append-only like the journal. Bill payments keep only the masked
    #    account and its keyed HMAC.
    """
    CREATE TABLE ledger_entries (
        id                  INTEGER PRIMARY KEY,
        at                  REAL NOT NULL,
        day                 TEXT NOT NULL,
        kind                TEXT NOT NULL CHECK (kind IN ('top_up', 'agency_debit', 'agency_refund')),
        amount_fen          INTEGER NOT NULL CHECK (amount_fen > 0),
        balance_after_fen   INTEGER NOT NULL,
        service             TEXT,
        order_no            TEXT,
        staff_login         TEXT,
        reference           TEXT,
        CHECK ((kind = 'top_up') = (staff_login IS NOT NULL)),
        CHECK ((kind = 'top_up') = (order_no IS NULL))
    );
    CREATE UNIQUE INDEX ledger_entries_order ON ledger_entries(order_no, kind) WHERE order_no IS NOT NULL;
    CREATE INDEX ledger_entries_day ON ledger_entries(day);
    CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
        BEGIN SELECT RAISE(ABORT, 'the station ledger is append-only'); END;
    CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
        BEGIN SELECT RAISE(ABORT, 'the station ledger is append-only'); END;
    CREATE TABLE commission_accruals (
        id              INTEGER PRIMARY KEY,
        at              REAL NOT NULL,
        day             TEXT NOT NULL,
        service         TEXT NOT NULL,
        kind            TEXT,
        basis           TEXT NOT NULL CHECK (basis IN ('per_item', 'percent')),
        rate            TEXT NOT NULL,
        turnover_fen    INTEGER NOT NULL,
        quantity        INTEGER NOT NULL CHECK (quantity > 0),
        commission_fen  INTEGER NOT NULL,
        order_no        TEXT,
        posting_id      INTEGER REFERENCES postings(id),
        reverses_id     INTEGER UNIQUE REFERENCES commission_accruals(id)
    );
    CREATE INDEX commission_accruals_day ON commission_accruals(day);
    CREATE INDEX commission_accruals_order ON commission_accruals(order_no);
    CREATE UNIQUE INDEX commission_accruals_posting ON commission_accruals(posting_id)
        WHERE posting_id IS NOT NULL AND reverses_id IS NULL;
    CREATE TRIGGER commission_accruals_no_update BEFORE UPDATE ON commission_accruals
        BEGIN SELECT RAISE(ABORT, 'commission accruals are append-only'); END;
    CREATE TRIGGER commission_accruals_no_delete BEFORE DELETE ON commission_accruals
        BEGIN SELECT RAISE(ABORT, 'commission accruals are append-only'); END;
    CREATE TABLE daily_closes (
        id              INTEGER PRIMARY KEY,
        day             TEXT NOT NULL,
        version         INTEGER NOT NULL CHECK (version >= 1),
        closed_at       REAL NOT NULL,
        actor           TEXT NOT NULL,
        ok              INTEGER NOT NULL CHECK (ok IN (0, 1)),
        mismatches      INTEGER NOT NULL,
        opening_fen     INTEGER NOT NULL,
        closing_fen     INTEGER NOT NULL,
        report          TEXT NOT NULL,
        UNIQUE (day, version)
    );
    CREATE TRIGGER daily_closes_no_update BEFORE UPDATE ON daily_closes
        BEGIN SELECT RAISE(ABORT, 'a daily close is kept as it was; close again for a new version'); END;
    CREATE TRIGGER daily_closes_no_delete BEFORE DELETE ON daily_closes
        BEGIN SELECT RAISE(ABORT, 'a daily close is kept as it was; close again for a new version'); END;
    CREATE TABLE bill_payments (
        id              INTEGER PRIMARY KEY,
        service         TEXT NOT NULL,
        account_masked  TEXT NOT NULL,
        account_hmac    BLOB NOT NULL,
        amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
        state           TEXT NOT NULL CHECK (state IN ('quoted', 'paid', 'credited', 'not_paid', 'refunded',
                                                       'refund_pending', 'credit_unknown', 'expired')),
        order_no        TEXT,
        reason          TEXT,
        biller_receipt  TEXT,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL
    );
    CREATE INDEX bill_payments_state ON bill_payments(state);
    CREATE INDEX bill_payments_account ON bill_payments(account_hmac);
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


#: file systems that forget everything at reboot: custody must never live on them (T-A3)
VOLATILE_FS = {"tmpfs", "ramfs", "overlay", "overlayfs", "squashfs", "devtmpfs", "aufs", "zram"}


def check_location(path: Path, mounts: str | None = None) -> None:
    """Refuse a database on a volatile, read-only or unwritable file system.

    ``mounts`` is the text of ``/proc/mounts`` (read when None). The mount holding ``path`` is the
    one with the longest mount point that is a parent of it. On Raspberry Pi OS with the overlay
    root, a data partition can silently become read-only: this is where that is caught.
    """
    folder = path.resolve().parent
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            mounts = ""
    best: tuple[str, str, list[str]] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        inside = folder == Path(point) or Path(point) in folder.parents
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[2], fields[3].split(","))
    if best is not None:
        point, fstype, options = best
        if fstype in VOLATILE_FS:
            raise StorageError(f"the database folder is on {fstype} ({point}), which is lost at reboot; "
                               "put it on the persistent data partition")
        if "ro" in options:
            raise StorageError(f"the database folder is on a read-only mount ({point})")
    if folder.exists() and not os.access(folder, os.W_OK):
        raise StorageError("the database folder is not writable")


def connect(path: Path, *, mounts: str | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the database, apply settings and migrations, check them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    check_location(path, mounts)
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
    # Table rebuilds need foreign keys off (the pragma is a no-op inside a transaction); every
    # migration ends with a foreign_key_check, so nothing dangling is committed.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for number in range(version, len(MIGRATIONS)):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(MIGRATIONS[number]):
                    conn.execute(statement)
                if number == 0:
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
                if dangling:
                    raise StorageError(f"migration {number + 1} would leave {len(dangling)} dangling references")
                conn.execute(f"PRAGMA user_version = {number + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
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

    def __init__(self, path: Path, *, mounts: str | None = None) -> None:
        self.path = path
        self._mounts = mounts  # a /proc/mounts text for tests; None reads the real one
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = await self._submit(lambda: connect(self.path, mounts=self._mounts))

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
