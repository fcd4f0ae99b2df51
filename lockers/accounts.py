"""Named accounts: one per person, never shared (T-D2, incident A6). Secrets stored with Argon2id.

Roles:

* ``courier``: works for a carrier, logs in at the kiosk keypad with a courier number (4 to 12
  digits) and a PIN of at least 6 digits; sees and opens only their own parcels.
* ``technician``: tests devices and opens doors for maintenance; sees personal data only masked.
  Logs in with a name-like login and a password of at least 10 characters (from a tablet or
  ``postkiosk diag login``).
* ``staff``: the station's counter staff (queue, daily close); password as technicians.

There are no default accounts: a fresh station has none, ``postkiosk admin add-user`` creates them.
After ``failure_limit`` failed logins in a row the account is locked for ``lock_seconds`` (PCI DSS
8.3.4: at most 10 failures, at least 30 minutes). Unknown logins, wrong secrets and logins of
another role give the same answer, so no login screen is an oracle for which accounts exist.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lockers import journal
from lockers.errors import AccountLocked, InvalidInput, LoginFailed

_hasher = PasswordHasher()  # argon2-cffi defaults are Argon2id
_DUMMY_HASH = _hasher.hash("not-a-real-pin")

ROLES = ("courier", "technician", "staff")
_NAME_LOGIN = re.compile(r"^[a-z][a-z0-9._-]{2,31}$")
MIN_PASSWORD = 10


@dataclass(frozen=True)
class Account:
    """A logged-in or listed person. ``carrier`` is '' for station people."""

    id: int
    login: str
    name: str
    carrier: str
    role: str = "courier"


#: couriers are accounts with the courier role; the name is kept where only couriers make sense
Courier = Account


def check_credentials(role: str, login: str, secret: str, carrier: str) -> None:
    """Raise ``InvalidInput`` unless the login, secret and carrier suit the role."""
    if role not in ROLES:
        raise InvalidInput("role", f"the role is one of {', '.join(ROLES)}")
    if role == "courier":
        if not login.isascii() or not login.isdigit() or not 4 <= len(login) <= 12:
            raise InvalidInput("login", "a courier login has 4 to 12 digits")
        if not secret.isascii() or not secret.isdigit() or len(secret) < 6:
            raise InvalidInput("pin", "a PIN has at least 6 digits")
        if not carrier.strip():
            raise InvalidInput("carrier", "a courier belongs to a carrier")
    else:
        if not _NAME_LOGIN.match(login):
            raise InvalidInput("login", "a login is 3 to 32 lowercase letters, digits, '.', '_' or '-', "
                                        "starting with a letter")
        if len(secret) < MIN_PASSWORD:
            raise InvalidInput("password", f"a password has at least {MIN_PASSWORD} characters")
        if carrier:
            raise InvalidInput("carrier", "only couriers belong to a carrier")


def create_account(conn: sqlite3.Connection, *, role: str, login: str, name: str, secret: str, now: float,
                   carrier: str = "", actor: str = "admin") -> Account:
    """Create a named account inside the caller's write transaction."""
    check_credentials(role, login, secret, carrier)
    if not name.strip():
        raise InvalidInput("name", "an account names the person it belongs to")
    if conn.execute("SELECT 1 FROM accounts WHERE login = ?", (login,)).fetchone():
        raise InvalidInput("login", "that login is taken")
    cur = conn.execute(
        "INSERT INTO accounts (login, name, carrier, role, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (login, name.strip(), carrier, role, _hasher.hash(secret), now),
    )
    journal.append(conn, at=now, kind="account_created", actor=actor, login=login, role=role, carrier=carrier)
    return Account(int(cur.lastrowid), login, name.strip(), carrier, role)


def hash_secret(secret: str) -> str:
    """The Argon2id hash stored for a PIN or password."""
    return _hasher.hash(secret)


def create_courier(conn: sqlite3.Connection, *, login: str, name: str, carrier: str, pin: str,
                   now: float, actor: str = "admin") -> Account:
    return create_account(conn, role="courier", login=login, name=name, carrier=carrier, secret=pin, now=now,
                          actor=actor)


def list_accounts(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """Every account without its secret: login, name, role, carrier, whether locked."""
    rows = conn.execute("SELECT login, name, role, carrier, locked_until, created_at FROM accounts ORDER BY role, login")
    return [dict(row) for row in rows]


def authenticate(conn: sqlite3.Connection, *, login: str, pin: str, now: float, failure_limit: int,
                 lock_seconds: float, roles: tuple[str, ...] = ("courier",)) -> Account | None:
    """Check a login and secret inside the caller's write transaction.

    Returns the account, or None after counting a failure (the caller commits the count, then raises
    ``LoginFailed``). Raises ``LoginFailed`` for unknown logins and logins of other roles (after the
    same hashing work), ``AccountLocked`` while locked.
    """
    row = conn.execute("SELECT * FROM accounts WHERE login = ?", (login,)).fetchone()
    if row is None or row["role"] not in roles:
        try:  # same work as a real check, so timing does not tell which logins exist
            _hasher.verify(_DUMMY_HASH, pin)
        except VerificationError:
            pass
        raise LoginFailed("unknown login or wrong secret")
    if row["locked_until"] is not None and now < row["locked_until"]:
        raise AccountLocked(row["locked_until"] - now)
    actor = f"{row['role']}:{login}"
    try:
        _hasher.verify(row["secret_hash"], pin)
    except (VerificationError, InvalidHashError):
        failures = row["failed_logins"] + 1
        locked_until = now + lock_seconds if failures >= failure_limit else None
        conn.execute("UPDATE accounts SET failed_logins = ?, locked_until = ? WHERE id = ?",
                     (0 if locked_until else failures, locked_until, row["id"]))
        journal.append(conn, at=now, kind="login_failed", actor=actor, locked=locked_until is not None)
        return None
    conn.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?", (row["id"],))
    journal.append(conn, at=now, kind="login", actor=actor)
    return Account(row["id"], row["login"], row["name"], row["carrier"], row["role"])
