"""The custody invariants that must hold after any crash, power cut or fault (T-A1, T-A5).

``check(conn)`` looks only at the database; ``check_pulses`` adds what the wall saw: every physical
unlock pulse must have had a door intent committed before it.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

STATES = {"depositing", "stored", "picking_up", "refused", "retrieving", "collected", "cancelled", "returned",
          "dispatched"}
LIVE = ("depositing", "stored", "picking_up", "refused", "retrieving")
#: parcel states only a courier's (inbound) parcel can reach: an outbound one is collected ('dispatched')
INBOUND_ONLY = ("picking_up", "refused", "collected", "returned")
#: compartment state -> the live parcel states allowed in it
FITS = {
    "free": set(),
    "reserved": {"depositing"},
    "occupied": {"stored", "picking_up", "refused", "retrieving"},
    "check_required": set(LIVE),
    "disabled": set(LIVE),
}


def integrity_check(conn: sqlite3.Connection, pragma: str = "integrity_check") -> str:
    """SQLite's verdict on the file: "ok", or its first complaint. A damaged file can make the
    complaint undecodable text (read with replacement characters), or make SQLite fail with an error
    whose message is not UTF-8 (Python then raises ``UnicodeDecodeError``): both are complaints."""
    saved = conn.text_factory
    conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
    try:
        return conn.execute(f"PRAGMA {pragma}").fetchone()[0]
    except UnicodeDecodeError as err:
        return f"the file is damaged ({pragma} failed with an unreadable message: {err.reason})"
    finally:
        conn.text_factory = saved


def check(conn: sqlite3.Connection) -> list[str]:
    """Every violated invariant, in words; an empty list when custody is sound."""
    problems = []
    integrity = integrity_check(conn)
    if integrity != "ok":  # the rows of a damaged file prove nothing (and may not even decode)
        return [f"integrity_check: {integrity}"]
    for pid, state in conn.execute("SELECT id, state FROM parcels"):
        if state not in STATES:
            problems.append(f"parcel {pid} in unknown state {state!r}")
    marks = ",".join("?" * len(LIVE))
    for cid, n in conn.execute(f"SELECT compartment_id, COUNT(*) FROM parcels WHERE state IN ({marks})"
                               " GROUP BY compartment_id HAVING COUNT(*) > 1", LIVE):
        problems.append(f"compartment {cid} holds {n} live parcels")
    for column in ("code_hmac", "token_hmac"):
        for _, n in conn.execute(f"SELECT {column}, COUNT(*) FROM parcels WHERE {column} IS NOT NULL"
                                 " AND state IN ('stored', 'picking_up') GROUP BY 1 HAVING COUNT(*) > 1"):
            problems.append(f"a live {column} maps to {n} parcels")
    for pid, state in conn.execute("SELECT id, state FROM parcels WHERE state IN ('stored', 'picking_up')"
                                   " AND code_hmac IS NULL AND posting_id IS NULL"):
        problems.append(f"parcel {pid} is {state} without a pickup code")
    rows = conn.execute(f"SELECT c.label, c.state, p.id, p.state FROM compartments c LEFT JOIN parcels p"
                        f" ON p.compartment_id = c.id AND p.state IN ({marks})", LIVE).fetchall()
    for label, cstate, pid, pstate in rows:
        allowed = FITS.get(cstate)
        if allowed is None:
            problems.append(f"compartment {label} in unknown state {cstate!r}")
        elif pid is not None and pstate not in allowed:
            problems.append(f"compartment {label} is {cstate} but holds parcel {pid} ({pstate})")
        elif pid is None and cstate in ("reserved", "occupied"):
            problems.append(f"compartment {label} is {cstate} with no live parcel")
    problems += _outbound(conn)
    dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    if dangling:
        problems.append(f"{len(dangling)} dangling references")
    return problems


def _outbound(conn: sqlite3.Connection) -> list[str]:
    """Outbound mail (a resident's posting dropped off for a courier to collect): the posting's state
    and its parcel's must tell the same story, whichever step a crash interrupted. A posting left
    'printed' by an interrupted drop-off is sound: the resident is offered the door again."""
    problems = []
    for pid, state in conn.execute("SELECT id, state FROM parcels WHERE posting_id IS NOT NULL"
                                   " AND (code_hmac IS NOT NULL OR token_hmac IS NOT NULL)"):
        problems.append(f"outbound parcel {pid} ({state}) has a pickup code or token")
    for pid, state in conn.execute(f"SELECT id, state FROM parcels WHERE posting_id IS NOT NULL"
                                   f" AND state IN ({','.join('?' * len(INBOUND_ONLY))})", INBOUND_ONLY):
        problems.append(f"outbound parcel {pid} is {state}: only a courier's parcel can be that")
    marks = ",".join("?" * len(LIVE))
    for posting, n in conn.execute(f"SELECT posting_id, COUNT(*) FROM parcels WHERE posting_id IS NOT NULL"
                                   f" AND state IN ({marks}) GROUP BY posting_id HAVING COUNT(*) > 1", LIVE):
        problems.append(f"posting {posting} has {n} live parcels")
    held = "SELECT COUNT(*) FROM parcels p WHERE p.posting_id = s.id AND p.state IN ({})"
    for posting, n in conn.execute("SELECT s.id, (" + held.format("'stored', 'retrieving'") + ") FROM postings s"
                                   " WHERE s.state = 'in_locker'"):
        if n != 1:
            problems.append(f"posting {posting} is in_locker with {n} parcels stored or being collected")
    for posting, state in conn.execute("SELECT s.id, s.state FROM postings s WHERE s.state IN"
                                       " ('collected', 'inspection_refused') AND (" + held.format("'dispatched'")
                                       + ") = 0"):
        problems.append(f"posting {posting} is {state} but no parcel of it was dispatched")
    for pid, state in conn.execute("SELECT p.id, s.state FROM parcels p JOIN postings s ON s.id = p.posting_id"
                                   " WHERE p.state = 'dispatched' AND s.state NOT IN"
                                   " ('collected', 'inspection_refused')"):
        problems.append(f"outbound parcel {pid} was dispatched but its posting is {state}")
    for posting, n in conn.execute("SELECT s.id, (" + held.format("'stored', 'retrieving', 'dispatched'")
                                   + ") FROM postings s WHERE s.state = 'printed'"):
        if n:
            problems.append(f"posting {posting} is printed but {n} parcel(s) of it are in the locker or dispatched")
    return problems


def check_pulses(conn: sqlite3.Connection, pulses: dict[str, int]) -> list[str]:
    """``pulses``: compartment label -> physical unlock pulses the wall counted. Each pulse needs a
    committed door intent for that compartment (an intent is sent at most once)."""
    intents = Counter(label for (label,) in conn.execute(
        "SELECT c.label FROM door_intents i JOIN compartments c ON c.id = i.compartment_id"))
    return [f"compartment {label}: {n} pulses but {intents[label]} intents"
            for label, n in sorted(pulses.items()) if n > intents[label]]
