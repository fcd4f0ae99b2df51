#!/usr/bin/env python3
"""Lock-bus benchmark (issue 3): measured time against the physical limit, in the same run.

1. Full status scan of 8 Kerong CU16 boards at 19200 baud, the simulator pacing its bytes at the
   baud rate: measured scan time / physical limit (wire time of every request and reply plus the
   mandated silent gaps). Target: at most 1.15.
2. Pickup code accepted -> first byte of the unlock frame on the wire, through the real custody
   service, door monitor polling: p50 / p95 in ms, beside one wire transaction for scale.
3. A station of 16 CU48 boards x 48 doors (768 doors): the start-up reconciliation (every door
   read, no pulse) against the wire time of reading every board once.

Run: .venv/bin/python bench/lock_bus.py [--scans N] [--pickups N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware_bridge.bus import silent_gap, wire_time  # noqa: E402
from hal.lockbank import BankProfile, lock_bank  # noqa: E402
from hal.sms import LogSmsGateway  # noqa: E402
from lockers import accounts  # noqa: E402
from lockers.custody import CompartmentSpec, Custody, CustodySettings  # noqa: E402
from lockers.db import Database  # noqa: E402
from lockers.doors import DoorMonitor  # noqa: E402
from lockers.keys import DeviceKeys  # noqa: E402
from simulators.cu48 import run_cu48_sim  # noqa: E402
from simulators.kerong_cu16 import KerongCU16Simulator  # noqa: E402

BAUD = 19200
BOARDS = tuple(range(8))


async def scan_ratio(scans: int) -> float:
    sim = KerongCU16Simulator(BOARDS, 16, baudrate=BAUD, pace=True)
    served = await sim.serve_pty()
    bank = lock_bank(BankProfile(protocol="kerong-cu16", url=served.url, boards=BOARDS, channels_per_board=16,
                                 baudrate=BAUD, reply_timeout=0.3))
    await bank.open()
    try:
        for board in BOARDS:  # warm up
            await bank.read_status(board)
        times = []
        for _ in range(scans):
            t0 = time.perf_counter()
            for board in BOARDS:
                await bank.read_status(board)
            times.append(time.perf_counter() - t0)
    finally:
        await bank.close()
        await sim.close()
    limit = len(BOARDS) * (wire_time(5, BAUD) + wire_time(9, BAUD) + silent_gap(BAUD))
    measured = statistics.median(times)
    ratio = measured / limit
    print(f"full scan, {len(BOARDS)} boards at {BAUD} baud: median {measured * 1000:.1f} ms over {scans} scans; "
          f"physical limit {limit * 1000:.1f} ms; ratio {ratio:.3f} (target <= 1.15)")
    return ratio


async def pickup_latency(pickups: int) -> None:
    sim = KerongCU16Simulator((0, 1), 16, baudrate=BAUD, pace=True)
    served = await sim.serve_pty()
    bank = lock_bank(BankProfile(protocol="kerong-cu16", url=served.url, boards=(0, 1), channels_per_board=16,
                                 baudrate=BAUD))
    await bank.open()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        db = Database(Path(tmp) / "bench.sqlite3")
        await db.open()
        sms = LogSmsGateway(keep=100_000)
        layout = [CompartmentSpec(f"A{b * 16 + c + 1:02d}", "A", b, c, "M") for b in (0, 1) for c in range(16)]
        custody = Custody(db=db, keys=DeviceKeys.load_or_create(Path(tmp) / "k"), layout=layout,
                          doors=DoorMonitor({"A": bank}), sms=sms, settings=CustodySettings())
        await custody.start()
        courier = await db.write(lambda c: accounts.create_courier(c, login="1000", name="b", carrier="SF",
                                                                  pin="12345678", now=0))
        latencies = []
        loop = asyncio.get_running_loop()
        try:
            for n in range(pickups):
                ticket = await custody.start_deposit(courier, tracking=f"SF{n:010d}", phone="13812345678",
                                                     size="M", consent=True)
                spec = custody.layout[ticket.compartment]
                await until(lambda: custody.door_of(spec.label) == "open")
                sim.put_item(spec.board, spec.channel)
                sim.close_door(spec.board, spec.channel)
                await until(lambda: len(sms.recent) == n + 1)
                code = sms.recent[-1]["text"].split("取件码 ")[1][:8]
                unlocks_before = sum(1 for e in sim.wire if e.direction == "rx" and e.data[2:3] == b"\x31")
                t0 = loop.time()
                await custody.pickup(code)
                await until(lambda: sum(1 for e in sim.wire if e.direction == "rx" and e.data[2:3] == b"\x31")
                            > unlocks_before)
                # the simulator stamps when the request's first byte reaches it (a pty delivers it the
                # moment it is written): that is when it starts on the wire
                first_byte = [e for e in sim.wire if e.direction == "rx" and e.data[2:3] == b"\x31"][-1].start
                latencies.append(first_byte - t0)
                await until(lambda: custody.door_of(spec.label) == "open")
                sim.remove_item(spec.board, spec.channel)
                sim.close_door(spec.board, spec.channel)
                await until(lambda: custody.door_of(spec.label) == "closed")
        finally:
            await custody.stop()
            await db.close()
            await bank.close()
            await sim.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    one = (wire_time(5, BAUD) + wire_time(9, BAUD) + silent_gap(BAUD)) * 1000
    print(f"pickup code accepted -> unlock first byte on the wire ({pickups} pickups, polls running): "
          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (one status transaction on this bus: {one:.1f} ms)")


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        await asyncio.sleep(0.002)


async def big_station() -> None:
    boards = tuple(range(16))
    running = await run_cu48_sim(boards, 48, baudrate=BAUD, pace=True)
    bank = lock_bank(BankProfile(protocol="cu48", url=running.url, boards=boards, channels_per_board=48,
                                 baudrate=BAUD, has_item_sensors=False))
    await bank.open()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as tmp:
        db = Database(Path(tmp) / "big.sqlite3")
        await db.open()
        layout = [CompartmentSpec(f"{chr(65 + b // 4)}{(b % 4) * 48 + c + 1:03d}", "A", b, c, "M")
                  for b in boards for c in range(48)]
        keys = DeviceKeys.load_or_create(Path(tmp) / "k")
        starts = []
        for _ in range(2):  # the first start creates the database and its 768 rows; the second is a restart
            custody = Custody(db=db, keys=keys, layout=layout, doors=DoorMonitor({"A": bank}),
                              sms=LogSmsGateway(), settings=CustodySettings())
            t0 = time.perf_counter()
            await custody.start()
            starts.append(time.perf_counter() - t0)
            await custody.stop()
        t0 = time.perf_counter()
        await custody.doors.scan()
        scan = time.perf_counter() - t0
        await db.close()
    await bank.close()
    pulses = sum(running.sim.door(b, c).pulses for b in boards for c in range(48))
    await running.close()
    status_reply = 6 + 6 + 1  # 02 DEV LOCK ST DLEN + 6 data bytes + SUM (see firmware_bridge.cu48)
    wire = len(boards) * (wire_time(6, BAUD) + wire_time(status_reply, BAUD) + silent_gap(BAUD))
    print(f"16 boards x 48 doors = {len(layout)} doors: reading every door {scan * 1000:.0f} ms against "
          f"{wire * 1000:.0f} ms of wire time (ratio {scan / wire:.3f}); restart with reconciliation "
          f"{starts[1] * 1000:.0f} ms (first start, creating the database: {starts[0] * 1000:.0f} ms); "
          f"pulses during start-ups: {pulses}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--pickups", type=int, default=100)
    args = parser.parse_args()
    await scan_ratio(args.scans)
    await pickup_latency(args.pickups)
    await big_station()


if __name__ == "__main__":
    asyncio.run(main())
