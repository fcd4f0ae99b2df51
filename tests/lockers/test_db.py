from __future__ import annotations

import sqlite3

import pytest

from lockers import db
from lockers.errors import StorageError

# Raspberry Pi OS Bookworm, raspi-config overlay: root is an overlay and /data was made read-only
BOOKWORM_OVERLAY = """overlayroot / overlay rw,relatime,lowerdir=/media/root-ro,upperdir=/media/root-rw/overlay 0 0
/dev/mmcblk0p3 /data ext4 ro,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev 0 0
"""
# the fix: overlayroot=tmpfs:recurse=0 leaves /data writable
RECURSE_0 = """overlayroot / overlay rw,relatime 0 0
/dev/mmcblk0p3 /data ext4 rw,noatime 0 0
"""
PLAIN_RO_ROOT = """/dev/mmcblk0p2 / ext4 ro,relatime 0 0
/dev/mmcblk0p3 /data ext4 rw,noatime 0 0
/dev/mmcblk0p3 /var/lib/postkiosk ext4 rw,noatime 0 0
tmpfs /tmp tmpfs rw 0 0
"""


@pytest.mark.parametrize("mounts,path,problem", [
    (BOOKWORM_OVERLAY, "/data/postkiosk/pk.sqlite3", "read-only"),
    (BOOKWORM_OVERLAY, "/home/kiosk/var/pk.sqlite3", "overlay"),
    (RECURSE_0, "/data/postkiosk/pk.sqlite3", None),
    (PLAIN_RO_ROOT, "/var/lib/postkiosk/pk.sqlite3", None),
    (PLAIN_RO_ROOT, "/tmp/pk.sqlite3", "tmpfs"),
    (PLAIN_RO_ROOT, "/opt/pk.sqlite3", "read-only"),
])
def test_database_location_rules(mounts, path, problem):
    from pathlib import Path

    if problem is None:
        db.check_location(Path(path), mounts)
    else:
        with pytest.raises(StorageError, match=problem):
            db.check_location(Path(path), mounts)


def test_real_database_has_the_required_settings(tmp_path):
    conn = db.connect(tmp_path / "pk.sqlite3")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == db.APPLICATION_ID
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_unsafe_settings_are_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.sqlite3")
    conn.execute("PRAGMA synchronous = NORMAL")
    with pytest.raises(StorageError, match="synchronous"):
        db._check_settings(conn)
    conn.close()


def test_version_1_database_with_parcels_migrates_intact(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in db._statements(db.MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO compartments (label, bank, board, channel, size) VALUES ('A01', 'A', 0, 0, 'S')")
    conn.execute("INSERT INTO couriers (login, name, carrier, secret_hash, created_at) VALUES ('1000', 'x', 'SF', 'h', 0)")
    conn.execute("INSERT INTO parcels (tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size, consent,"
                 " compartment_id, state, code_hmac, created_at) VALUES ('SF1', 1, x'00', x'01', '138****0000', 'S',"
                 " 'recipient_agreed', 1, 'stored', x'02', 5)")
    conn.execute("INSERT INTO door_intents (compartment_id, parcel_id, purpose, created_at) VALUES (1, 1, 'deposit', 5)")
    conn.close()
    conn = db.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
        # migration 3: the couriers table became accounts, the parcel still points at its courier
        assert tuple(conn.execute("SELECT login, role FROM accounts").fetchone()) == ("1000", "courier")
        assert conn.execute("SELECT a.login FROM parcels p JOIN accounts a ON a.id = p.courier_id").fetchone()[0] == "1000"
        assert "accounts" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'parcels'").fetchone()[0]
        row = conn.execute("SELECT tracking_no, state, code_hmac, token_hmac FROM parcels").fetchone()
        assert tuple(row) == ("SF1", "stored", b"\x02", None)
        assert conn.execute("SELECT purpose FROM door_intents").fetchone()[0] == "deposit"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError):  # the new CHECK constraints hold
            conn.execute("UPDATE parcels SET state = 'lost'")
    finally:
        conn.close()


def test_newer_schema_than_the_software_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    db.connect(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(db.MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        db.connect(path)


def test_a_damaged_file_gets_a_verdict_not_an_exception(tmp_path):
    import random

    from lockers.invariants import check, integrity_check

    path = tmp_path / "pk.sqlite3"
    conn = db.connect(path)
    for n in range(300):
        conn.execute("INSERT INTO compartments (label, bank, board, channel, size) VALUES (?, 'A', ?, ?, 'S')",
                     (f"A{n:03d}", n // 16, n % 16))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert integrity_check(sqlite3.connect(path)) == "ok"
    rnd = random.Random(5)
    size = path.stat().st_size
    with path.open("r+b") as fh:  # scribble over every page but the header page
        for offset in range(4096, size, 4096):
            fh.seek(offset + rnd.randrange(0, 3000))
            fh.write(rnd.randbytes(64))
    damaged = sqlite3.connect(path)
    verdict = integrity_check(damaged)
    assert verdict != "ok" and isinstance(verdict, str)
    assert check(damaged) == [f"integrity_check: {verdict}"]
    damaged.close()
