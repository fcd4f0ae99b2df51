"""The append-only, hash-chained event journal of every custody operation.

Each row's ``hash`` is SHA-256 over the previous row's hash and the row's own fields, so editing or
removing any row breaks the chain from there on (:func:`verify`). Triggers refuse UPDATE and DELETE.
Details never hold personal data in plaintext: callers pass masked values only.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def _digest(prev_hash: str, at: float, kind: str, actor: str, compartment: str | None,
            parcel_id: int | None, detail: str) -> str:
    body = json.dumps([prev_hash, repr(at), kind, actor, compartment, parcel_id, detail],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def append(conn: sqlite3.Connection, *, at: float, kind: str, actor: str,
           compartment: str | None = None, parcel_id: int | None = None, **detail: Any) -> int:
    """Append one event inside the caller's transaction; returns its id."""
    row = conn.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash = row[0] if row else GENESIS
    detail_json = json.dumps(detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    digest = _digest(prev_hash, at, kind, actor, compartment, parcel_id, detail_json)
    cur = conn.execute(
        "INSERT INTO events (at, kind, actor, compartment, parcel_id, detail, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (at, kind, actor, compartment, parcel_id, detail_json, prev_hash, digest),
    )
    return int(cur.lastrowid)


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int
    first_bad_id: int | None = None
    reason: str = ""


def verify(conn: sqlite3.Connection) -> Verification:
    """Walk the chain; report the first row whose link or hash does not match."""
    prev_hash, count, last_id = GENESIS, 0, 0
    for row in conn.execute(
        "SELECT id, at, kind, actor, compartment, parcel_id, detail, prev_hash, hash FROM events ORDER BY id"
    ):
        count += 1
        if row["id"] != last_id + 1:
            return Verification(False, count, row["id"], f"row {last_id + 1} is missing")
        if row["prev_hash"] != prev_hash:
            return Verification(False, count, row["id"], "link to the previous row is broken")
        digest = _digest(row["prev_hash"], row["at"], row["kind"], row["actor"], row["compartment"],
                         row["parcel_id"], row["detail"])
        if digest != row["hash"]:
            return Verification(False, count, row["id"], "row content does not match its hash")
        prev_hash, last_id = row["hash"], row["id"]
    return Verification(True, count)
