#!/usr/bin/env python3
"""Custody benchmark (issue 4): a station with a long history, against bare SQLite in the same run.

With N parcels of history (default 1,000,000, with a journal row each) in the database, on the
real file with synchronous=FULL:
  * median pickup-code lookup (keyed HMAC of the code + the indexed query custody runs);
  * median deposit commit (custody.start_deposit: the parcel, the reservation, the door intent and
    the journal row in one durable transaction, the door on an in-memory wall);
each printed beside the median of a bare one-row INSERT + COMMIT with the same settings.

Run: .venv/bin/python bench/custody_history.py [--parcels N] [--samples N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hal.lockbank import BankProfile  # noqa: E402
from hal.sms import LogSmsGateway  # noqa: E402
from lockers import accounts  # noqa: E402
from lockers.custody import CompartmentSpec, Custody, CustodySettings  # noqa: E402
from lockers.db import Database  # noqa: E402
from lockers.doors import DoorMonitor  # noqa: E402
from lockers.keys import DeviceKeys  # noqa: E402
from simulators.fake_lockbank import FakeLockBank, FakeWall  # noqa: E402

LAYOUT = [CompartmentSpec(f"A{b * 16 + c + 1:02d}", "A", b, c, "M") for b in (0, 1) for c in range(16)]


def load_history(conn, parcels: int, keys: DeviceKeys) -> None:
    """N finished parcels and a journal row for each, as years of a station's life would leave them."""
    phone_blob = keys.encrypt("phone", "13800000000")
    conn.execute("BEGIN")
    batch = []
    for n in range(parcels):
        batch.append((f"HIST{n:012d}", 1, phone_blob, os.urandom(32), "138****0000", "M", "recipient_agreed",
                      1 + n % len(LAYOUT), "collected" if n % 10 else "returned", float(n), float(n), float(n)))
        if len(batch) == 20000:
            conn.executemany(
                "INSERT INTO parcels (tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size, consent,"
                " compartment_id, state, created_at, stored_at, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch.clear()
    if batch:
        conn.executemany(
            "INSERT INTO parcels (tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size, consent,"
            " compartment_id, state, created_at, stored_at, ended_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    conn.execute("INSERT INTO events (at, kind, actor, compartment, parcel_id, detail, prev_hash, hash)"
                 " SELECT created_at, 'collected', 'resident', NULL, id, '{}', '', hex(randomblob(32)) FROM parcels")
    conn.execute("COMMIT")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        path = Path(tmp) / "history.sqlite3"
        keys = DeviceKeys.load_or_create(Path(tmp) / "device.key")
        db = Database(path)
        await db.open()
        wall = FakeWall()
        bank = FakeLockBank(BankProfile(protocol="fake", url="fake://", boards=(0, 1), channels_per_board=16), wall)
        await bank.open()
        custody = Custody(db=db, keys=keys, layout=LAYOUT, doors=DoorMonitor({"A": bank}, poll_interval=0.005),
                          sms=LogSmsGateway(keep=10), settings=CustodySettings(notice_retry_delays=()))
        await custody.start()
        courier = await db.write(lambda c: accounts.create_courier(c, login="1000", name="b", carrier="SF",
                                                                  pin="12345678", now=0))
        t0 = time.perf_counter()
        await db.write(lambda c: None)  # make sure nothing is pending
        await db.read(lambda c: c.execute("COMMIT") if c.in_transaction else None)
        await db.read(lambda c: load_history(c, args.parcels, keys))
        loaded = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2 ** 20
        await db.write(lambda c: c.execute("CREATE TABLE IF NOT EXISTS bare (x INTEGER)"))

        def timed(fn):
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

        bare = []
        for n in range(args.samples):
            bare.append(await db.read(lambda c, n=n: timed(lambda: (
                c.execute("BEGIN IMMEDIATE"), c.execute("INSERT INTO bare (x) VALUES (?)", (n,)), c.execute("COMMIT")))))

        lookups = []
        for n in range(args.samples):
            code = f"{n:08d}"

            def lookup(c, code=code):
                return timed(lambda: c.execute(
                    "SELECT p.id, p.state, p.free_until, c.label, c.size FROM parcels p JOIN compartments c"
                    " ON c.id = p.compartment_id WHERE p.code_hmac = ? AND p.state IN ('stored', 'picking_up')",
                    (keys.mac("code", code),)).fetchone())
            lookups.append(await db.read(lookup))

        deposits = []
        for n in range(args.samples):
            t = time.perf_counter()
            ticket = await custody.start_deposit(courier, tracking=f"NEW{n:010d}", phone="13912345678", size="M",
                                                 consent=True)
            deposits.append(time.perf_counter() - t)
            await custody.cancel_deposit(courier, ticket.parcel_id)
            spec = custody.layout[ticket.compartment]
            bank.close_by_hand(spec.board, spec.channel)
            while custody.door_of(spec.label) != "closed":
                await asyncio.sleep(0.001)
        await custody.stop()
        await db.close()
    b, lk, dp = statistics.median(bare), statistics.median(lookups), statistics.median(deposits)
    print(f"history: {args.parcels:,} parcels + {args.parcels:,} journal rows loaded in {loaded:.1f} s "
          f"({size_mb:.0f} MiB)")
    print(f"bare INSERT + COMMIT (synchronous=FULL, same file): median {b * 1000:.3f} ms")
    print(f"pickup-code lookup: median {lk * 1000:.3f} ms, ratio to the bare insert {lk / b:.3f}")
    print(f"deposit commit (start_deposit, door on an in-memory wall): median {dp * 1000:.3f} ms, "
          f"ratio to the bare insert {dp / b:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
