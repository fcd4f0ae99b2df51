"""Property-based exploration of custody (T-A5): deposits, pickups (codes and tokens), wrong codes,
refusals, retrievals, cancels, hand-opened doors, jammed locks, a lock bus refusing commands or a
board going silent, time jumps (timeouts, fees, reminders, expiry) and crash-and-restart, in any
order. After every step the custody invariants hold and no lock was pulsed without an intent."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from hal.lockbank import BankProfile
from hal.sms import LogSmsGateway
from lockers import accounts, invariants, journal
from lockers.custody import REFUSE_REASONS, SIZES, CompartmentSpec, Custody, CustodySettings
from lockers.db import Database
from lockers.doors import DoorMonitor
from lockers.errors import CustodyError
from lockers.keys import DeviceKeys
from simulators.fake_lockbank import FakeLockBank, FakeWall

BOARD_SIZES = ["S", "S", "S", "M", "M", "L", "XL", "S"]
LAYOUT = [CompartmentSpec(f"A{b * 8 + c + 1:02d}", "A", b, c, BOARD_SIZES[c]) for b in (0, 1) for c in range(8)]
LABEL = {(s.board, s.channel): s.label for s in LAYOUT}
RUNS = int(os.environ.get("POSTKIOSK_SM_RUNS", "200"))
STEPS = int(os.environ.get("POSTKIOSK_SM_STEPS", "50"))
FAST_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


class CustodyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="pk-sm-", dir=FAST_DIR))
        self.loop = asyncio.new_event_loop()
        self.wall = FakeWall()
        self.now = [1_800_000_000.0]
        self.mono = [10_000.0]
        self.sms = LogSmsGateway(keep=10_000)
        self.settings = CustodySettings(deposit_open_timeout=20, deposit_close_timeout=300, pickup_open_timeout=60,
                                        fee_per_day_fen=50, notice_retry_delays=(0.0,), housekeeping_interval=1e6)
        self.profile = BankProfile(protocol="fake", url="fake://", boards=(0, 1), channels_per_board=8)
        self.custody: Custody | None = None
        self.tracking_no = 0
        self.run(self._start(first=True))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def _start(self, first: bool = False) -> None:
        self.bank = FakeLockBank(self.profile, self.wall)
        await self.bank.open()
        # the logic under test, on a fast file system: durability has its own kill -9 test on disk
        self.db = Database(self.tmp / "custody.sqlite3", mounts="")
        await self.db.open()
        self.custody = Custody(db=self.db, keys=DeviceKeys.load_or_create(self.tmp / "device.key"), layout=LAYOUT,
                               doors=DoorMonitor({"A": self.bank}, poll_interval=3600), sms=self.sms,
                               settings=self.settings, clock=lambda: self.now[0], monotonic=lambda: self.mono[0])
        await self.custody.start()
        if first:
            self.courier = await self.db.write(lambda c: accounts.create_courier(
                c, login="10000001", name="x", carrier="SF", pin="13572468", now=self.now[0]))
        await self._settle()

    async def _settle(self) -> None:
        """Poll the wall once and let custody finish everything that follows from it."""
        custody = self.custody
        await custody.doors.scan()
        quiet = 0
        for _ in range(2000):
            await asyncio.sleep(0)
            busy = (custody._lock.locked() or (custody._door_queue and not custody._door_queue.empty())
                    or any(not t.done() and t.get_name().startswith(("notice", "reminder")) for t in custody._tasks))
            quiet = 0 if busy else quiet + 1
            if quiet >= 3:
                return
            if busy:
                await asyncio.sleep(0.0005)
        raise AssertionError("custody did not settle")

    def act(self, coro) -> None:
        """Run a flow step; a refusal in words (a CustodyError) is a fine outcome, anything else is not."""
        try:
            self.run(coro)
        except CustodyError:
            pass
        self.run(self._settle())

    def teardown(self) -> None:
        if self.custody is not None:
            self.run(self.custody.stop())
            self.run(self.db.close())
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -------------------------------------------------------------- what people do

    def secrets(self) -> list[tuple[str, str]]:
        found = []
        for message in self.sms.recent:
            code = re.search(r"取件码 (\d{8})", message["text"])
            token = re.search(r"(PK1-[A-Z2-7]+)", message["text"])
            if code and token:
                found.append((code.group(1), token.group(1)))
        return found

    def open_doors(self) -> list[tuple[int, int]]:
        return sorted(k for k, d in self.wall.doors.items() if not d.closed)

    @rule(size=st.sampled_from(SIZES), consent=st.sampled_from(["agreed", "address", "none"]),
          phone=st.integers(0, 99_999_999))
    def deposit(self, size, consent, phone):
        self.tracking_no += 1
        self.act(self.custody.start_deposit(self.courier, tracking=f"HY{self.tracking_no:010d}",
                                            phone=f"139{phone:08d}", size=size, consent=consent == "agreed",
                                            locker_is_address=consent == "address"))

    # Compound rules reach deep states (stored, refused, returned) in a few steps; the single-step
    # rules around them interleave everything else.
    @rule(size=st.sampled_from(SIZES), phone=st.integers(0, 99_999_999))
    def courier_delivers_a_parcel(self, size, phone):
        self.tracking_no += 1
        try:
            ticket = self.run(self.custody.start_deposit(self.courier, tracking=f"HY{self.tracking_no:010d}",
                                                         phone=f"139{phone:08d}", size=size, consent=True))
        except CustodyError:
            return self.run(self._settle())
        self.run(self._settle())
        spec = next(s for s in LAYOUT if s.label == ticket.compartment)
        door = self.wall.doors[(spec.board, spec.channel)]
        door.item, door.closed = True, True
        self.run(self._settle())

    @precondition(lambda self: self.secrets())
    @rule(data=st.data(), outcome=st.sampled_from(["collect", "refuse", "leave_inside", "walk_away"]))
    def resident_comes_for_a_parcel(self, data, outcome):
        code, _ = data.draw(st.sampled_from(self.secrets()))
        try:
            ticket = self.run(self.custody.pickup(code))
        except CustodyError:
            return self.run(self._settle())
        self.run(self._settle())
        spec = next(s for s in LAYOUT if s.label == ticket.compartment)
        door = self.wall.doors[(spec.board, spec.channel)]
        if outcome == "walk_away" or door.closed:
            return
        if outcome == "refuse":
            self.act(self.custody.refuse(ticket.parcel_id, data.draw(st.sampled_from(REFUSE_REASONS))))
        if outcome == "collect":
            door.item = False
        door.closed = True
        self.run(self._settle())

    @precondition(lambda self: self.open_doors())
    @rule(data=st.data(), what=st.sampled_from(["put_and_close", "close", "take_and_close", "put", "take"]))
    def person_at_an_open_door(self, data, what):
        board, channel = data.draw(st.sampled_from(self.open_doors()))
        door = self.wall.doors[(board, channel)]
        if "put" in what:
            door.item = True
        if "take" in what:
            door.item = False
        if "close" in what:
            door.closed = True
        self.run(self._settle())

    @rule(board=st.sampled_from([0, 1]), channel=st.integers(0, 7))
    def door_forced_open(self, board, channel):
        self.wall.doors[(board, channel)].closed = False
        self.run(self._settle())

    @rule(board=st.sampled_from([0, 1]), channel=st.integers(0, 7), jammed=st.booleans())
    def lock_jams_or_frees(self, board, channel, jammed):
        self.wall.doors[(board, channel)].jammed = jammed

    @precondition(lambda self: self.secrets())
    @rule(data=st.data(), by_token=st.booleans())
    def pickup_with_a_notice(self, data, by_token):
        code, token = data.draw(st.sampled_from(self.secrets()))
        self.act(self.custody.pickup(token=token) if by_token else self.custody.pickup(code))

    @rule(code=st.integers(0, 99_999_999))
    def pickup_with_a_guess(self, code):
        self.act(self.custody.pickup(f"{code:08d}"))

    @precondition(lambda self: any(t.kind == "pickup" and t.seen_open for t in self.custody._trackers.values()))
    @rule(reason=st.sampled_from(REFUSE_REASONS))
    def resident_refuses(self, reason):
        tracker = next(t for t in self.custody._trackers.values() if t.kind == "pickup" and t.seen_open)
        self.act(self.custody.refuse(tracker.parcel_id, reason))

    @rule(data=st.data())
    def courier_takes_back(self, data):
        listed = self.run(self.custody.retrievals(self.courier))
        if listed:
            item = data.draw(st.sampled_from(listed))
            self.act(self.custody.start_retrieval(self.courier, item["parcel_id"]))

    @rule(data=st.data())
    def courier_cancels(self, data):
        rows = self.run(self.db.read(lambda c: [r[0] for r in c.execute(
            "SELECT id FROM parcels WHERE state = 'depositing'")]))
        if rows:
            self.act(self.custody.cancel_deposit(self.courier, data.draw(st.sampled_from(rows))))

    @rule(label=st.sampled_from([s.label for s in LAYOUT]))
    def technician_opens(self, label):
        self.act(self.custody.technician_open("technician:t1", label, "test"))

    @rule(seconds=st.sampled_from([1, 30, 61, 301, 3600, 20 * 3600, 3 * 86400]))
    def time_passes(self, seconds):
        self.now[0] += seconds
        self.mono[0] += seconds
        self.act(self.custody.check_deadlines())
        self.act(self.custody._send_reminders())

    @rule(refuse=st.booleans())
    def lock_bus_refuses_commands(self, refuse):
        self.wall.refuse_unlocks = refuse

    @rule(board=st.sampled_from([0, 1]), silent=st.booleans())
    def board_goes_silent(self, board, silent):
        (self.wall.silent_boards.add if silent else self.wall.silent_boards.discard)(board)
        self.run(self._settle())

    @rule()
    def crash_and_restart(self):
        # tasks are cancelled where they stand: whatever was committed is all the next process knows
        self.run(self.custody.stop())
        self.run(self.db.close())
        self.run(self._start())

    # -------------------------------------------------------------- what must always hold

    @invariant()
    def custody_is_sound(self):
        pulses: dict[str, int] = {}
        for key, door in self.wall.doors.items():
            pulses[LABEL[key]] = door.pulses
        problems = self.run(self.db.read(lambda c: invariants.check(c) + invariants.check_pulses(c, pulses)))
        assert problems == [], problems

    @invariant()
    def journal_chain_holds(self):
        assert self.run(self.db.read(journal.verify)).ok


CustodyMachine.TestCase.settings = settings(max_examples=RUNS, stateful_step_count=STEPS, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
TestCustodyStateMachine = CustodyMachine.TestCase
TestCustodyStateMachine.pytestmark = [pytest.mark.timeout(900)]
