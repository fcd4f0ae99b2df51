"""Named courier accounts: per person, each belonging to a carrier; PINs stored with Argon2id.

After ``failure_limit`` failed logins in a row the account is locked for ``lock_seconds``
(PCI DSS 8.3.4: at most 10 failures, at least 30 minutes). Unknown logins and wrong PINs give the
same answer, so the keypad is not an oracle for which logins exist.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lockers import journal
from lockers.errors import AccountLocked, InvalidInput, LoginFailed

_hasher = PasswordHasher()  # argon2-cffi defaults are Argon2id
_DUMMY_HASH = _hasher.hash("not-a-real-pin")


@dataclass(frozen=True)
class Courier:
    id: int
    login: str
    name: str
    carrier: str


def create_courier(conn: sqlite3.Connection, *, login: str, name: str, carrier: str, pin: str,
                   now: float, actor: str = "admin") -> Courier:
    if not login.isdigit() or not 4 <= len(login) <= 12:
        raise InvalidInput("login", "a courier login has 4 to 12 digits")
    if not pin.isdigit() or len(pin) < 6:
        raise InvalidInput("pin", "a PIN has at least 6 digits")
    cur = conn.execute(
        "INSERT INTO couriers (login, name, carrier, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        (login, name, carrier, _hasher.hash(pin), now),
    )
    journal.append(conn, at=now, kind="courier_created", actor=actor, login=login, carrier=carrier)
    return Courier(int(cur.lastrowid), login, name, carrier)


def authenticate(conn: sqlite3.Connection, *, login: str, pin: str, now: float,
                 failure_limit: int, lock_seconds: float) -> Courier:
    """Check a login and PIN inside the caller's write transaction (failures are counted)."""
    row = conn.execute("SELECT * FROM couriers WHERE login = ?", (login,)).fetchone()
    if row is None:
        try:  # same work as a real check, so timing does not tell which logins exist
            _hasher.verify(_DUMMY_HASH, pin)
        except VerificationError:
            pass
        raise LoginFailed("unknown courier or wrong PIN")
    if row["locked_until"] is not None and now < row["locked_until"]:
        raise AccountLocked(row["locked_until"] - now)
    try:
        _hasher.verify(row["secret_hash"], pin)
    except (VerificationError, InvalidHashError):
        failures = row["failed_logins"] + 1
        locked_until = now + lock_seconds if failures >= failure_limit else None
        conn.execute("UPDATE couriers SET failed_logins = ?, locked_until = ? WHERE id = ?",
                     (0 if locked_until else failures, locked_until, row["id"]))
        journal.append(conn, at=now, kind="courier_login_failed", actor=f"courier:{login}",
                       locked=locked_until is not None)
        return None  # type: ignore[return-value]  # caller raises after committing the count
    conn.execute("UPDATE couriers SET failed_logins = 0, locked_until = NULL WHERE id = ?", (row["id"],))
    journal.append(conn, at=now, kind="courier_login", actor=f"courier:{login}")
    return Courier(row["id"], row["login"], row["name"], row["carrier"])
