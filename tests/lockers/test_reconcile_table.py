"""T-C1: start-up reconciliation, every cell of database state x physical state x pending intent.

The table below *is* the specification: for each of the 6 x 3 x 3 = 54 combinations it states
what the compartment and its parcel are after start-up. Rules behind it (reliability targets §2):
start-up never pulses a lock; a door found open where a parcel should be shut in needs a check and
the parcel is not released; an interrupted deposit stores nothing; an interrupted pickup whose door
is open is watched to its end, otherwise the parcel waits again with its code valid; a board that
does not answer changes nothing it cannot see, and transitional states under it need a check.
Every pending intent ends resolved.

Database states, as this schema holds them:
  free        compartment free, no parcel
  reserved    a depositing parcel whose door was not yet seen open
  deposit     a depositing parcel whose door was seen open (opening-for-deposit)
  occupied    a stored parcel
  pickup      a parcel being picked up (opening-for-pickup)
  fault       compartment check_required with a stored parcel in it
Pending intent: none | sent (committed, outcome not known yet) | unknown (outcome marked unknown).
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from hal.lockbank import BankProfile
from hal.sms import LogSmsGateway
from lockers import invariants
from lockers.custody import CompartmentSpec, Custody, CustodySettings
from lockers.db import Database
from lockers.doors import DoorMonitor
from lockers.keys import DeviceKeys
from simulators.fake_lockbank import FakeLockBank, FakeWall

DB_STATES = ("free", "reserved", "deposit", "occupied", "pickup", "fault")
PHYSICAL = ("open", "closed", "no_answer")
INTENTS = ("none", "sent", "unknown")

# (db state, physical) -> (compartment state after, parcel state after or None)
# The intent column does not change the outcome (it is always resolved): the table says so by
# listing each cell through itertools.product below.
OUTCOME = {
    ("free", "open"): ("free", None),
    ("free", "closed"): ("free", None),
    ("free", "no_answer"): ("free", None),
    ("reserved", "open"): ("check_required", "cancelled"),
    ("reserved", "closed"): ("free", "cancelled"),
    ("reserved", "no_answer"): ("check_required", "cancelled"),
    ("deposit", "open"): ("check_required", "cancelled"),
    ("deposit", "closed"): ("free", "cancelled"),
    ("deposit", "no_answer"): ("check_required", "cancelled"),
    ("occupied", "open"): ("check_required", "stored"),
    ("occupied", "closed"): ("occupied", "stored"),
    ("occupied", "no_answer"): ("occupied", "stored"),
    ("pickup", "open"): ("occupied", "picking_up"),  # watched: closing it decides
    ("pickup", "closed"): ("occupied", "stored"),
    ("pickup", "no_answer"): ("check_required", "stored"),
    ("fault", "open"): ("check_required", "stored"),
    ("fault", "closed"): ("check_required", "stored"),
    ("fault", "no_answer"): ("check_required", "stored"),
}
CELLS = list(itertools.product(DB_STATES, PHYSICAL, INTENTS))
assert len(CELLS) == 54 and {(d, p) for d, p, _ in CELLS} == set(OUTCOME)

LAYOUT = [CompartmentSpec("A01", "A", 0, 0, "M"), CompartmentSpec("A02", "A", 0, 1, "M")]


def build(conn, db_state: str, intent: str, keys: DeviceKeys) -> None:
    conn.execute("INSERT INTO compartments (label, bank, board, channel, size, state) VALUES ('A01', 'A', 0, 0, 'M', ?)",
                 ({"free": "free", "reserved": "reserved", "deposit": "reserved", "fault": "check_required"}
                  .get(db_state, "occupied"),))
    conn.execute("INSERT INTO compartments (label, bank, board, channel, size) VALUES ('A02', 'A', 0, 1, 'M')")
    conn.execute("INSERT INTO accounts (login, name, carrier, secret_hash, created_at) VALUES ('1000', 'c', 'SF', 'x', 0)")
    parcel = None
    if db_state != "free":
        state = {"reserved": "depositing", "deposit": "depositing", "pickup": "picking_up"}.get(db_state, "stored")
        stored = state in ("stored", "picking_up")
        conn.execute(
            "INSERT INTO parcels (tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size, consent,"
            " compartment_id, state, code_hmac, token_hmac, created_at, stored_at, free_until)"
            " VALUES ('SF100', 1, ?, ?, '138****5678', 'M', 'recipient_agreed', 1, ?, ?, ?, 1, ?, ?)",
            (keys.encrypt("phone", "13812345678"), keys.mac("phone", "13812345678"), state,
             keys.mac("code", "12345678") if stored else None, keys.mac("token", "PK1-X") if stored else None,
             1 if stored else None, 9e12 if stored else None))
        parcel = 1
    purpose = {"reserved": "deposit", "deposit": "deposit", "pickup": "pickup"}.get(db_state, "technician")
    if db_state == "deposit":  # the door was seen open before the crash
        conn.execute("INSERT INTO door_intents (compartment_id, parcel_id, purpose, created_at, outcome)"
                     " VALUES (1, 1, 'deposit', 1, 'opened')")
    if intent != "none":
        conn.execute("INSERT INTO door_intents (compartment_id, parcel_id, purpose, created_at, outcome)"
                     " VALUES (1, ?, ?, 2, ?)", (parcel if purpose != "technician" else None, purpose,
                                                  None if intent == "sent" else "unknown"))


@pytest.mark.parametrize("db_state,physical,intent", CELLS, ids=lambda v: str(v))
async def test_reconciliation_cell(tmp_path, db_state, physical, intent):
    keys = DeviceKeys.load_or_create(tmp_path / "device.key")
    db = Database(tmp_path / "custody.sqlite3")
    await db.open()
    await db.write(lambda c: build(c, db_state, intent, keys))
    wall = FakeWall()
    bank = FakeLockBank(BankProfile(protocol="fake", url="fake://", boards=(0,), channels_per_board=2), wall)
    await bank.open()
    door = bank.door(0, 0)
    door.closed = physical != "open"
    door.item = db_state in ("occupied", "pickup", "fault") or (db_state == "deposit" and physical == "open")
    if physical == "no_answer":
        wall.silent_boards.add(0)
    custody = Custody(db=db, keys=keys, layout=LAYOUT, doors=DoorMonitor({"A": bank}, poll_interval=3600),
                      sms=LogSmsGateway(), settings=CustodySettings())
    await custody.start()
    try:
        rows = await db.read(lambda c: (
            c.execute("SELECT state FROM compartments WHERE label = 'A01'").fetchone()[0],
            c.execute("SELECT state FROM parcels WHERE id = 1").fetchone(),
            c.execute("SELECT COUNT(*) FROM door_intents WHERE resolved_at IS NULL").fetchone()[0],
            invariants.check(c)))
        compartment, parcel, unresolved, problems = rows
        want_compartment, want_parcel = OUTCOME[(db_state, physical)]
        assert (compartment, parcel[0] if parcel else None) == (want_compartment, want_parcel)
        assert door.pulses == 0, "start-up pulsed a lock"
        assert problems == []
        resumed = db_state == "pickup" and physical == "open"
        assert unresolved == 0 or (resumed and unresolved == 1), "an intent was left unresolved"
        if resumed:  # the watched pickup ends when the door closes: collected if the parcel is gone
            door.item = False
            door.closed = True
            await custody.doors.scan()
            for _ in range(200):
                if await custody.parcel_state(1) == "collected":
                    break
                await asyncio.sleep(0.01)
            assert await custody.parcel_state(1) == "collected"
    finally:
        await custody.stop()
        await db.close()
