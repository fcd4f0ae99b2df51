"""Custody: who holds each parcel, in which compartment, and every door movement that changes it.

Rules this module keeps:

* A custody change is committed (``synchronous=FULL``) before the door command is sent, together
  with a door *intent* row, so a restarted process always knows what it was about to do.
* A door is "opened" only when the status poll shows it open; an unlock acknowledgement is never
  proof. Unlocks are never retried automatically.
* A parcel is stored only when its door was seen open and then closed with the item sensor showing
  the parcel (or, on boards without item sensors, closed). It is collected only when its door was
  seen open and then closed with the item gone.
* Pickup codes are 8 digits from ``secrets``, unique among live parcels, kept only as a keyed HMAC,
  and die when the parcel is collected. Wrong codes are counted in the database, so a restart does
  not reset the keypad pause.
* Phone numbers are stored AES-GCM encrypted, looked up by keyed HMAC, and shown masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hal.errors import HalError
from hal.lockbank import DoorState
from hal.sms import SmsGateway, SmsMessage
from lockers import accounts, journal
from lockers.accounts import Courier
from lockers.db import Database
from lockers.doors import DoorAddress, DoorChange, DoorMonitor
from lockers.errors import (
    ConsentMissing,
    DoorUnavailable,
    FlowConflict,
    InvalidInput,
    KeypadPaused,
    LoginFailed,
    NoCompartmentFree,
    NotAllowed,
    WrongCode,
)
from lockers.keys import DeviceKeys
from lockers.notices import pickup_notice
from lockers.personal import mask_phone, mask_tracking, normalize_phone, normalize_tracking

log = logging.getLogger(__name__)

SIZES = ("S", "M", "L", "XL")
CODE_DIGITS = 8
LIVE_STATES = ("depositing", "stored", "picking_up")


@dataclass(frozen=True)
class CompartmentSpec:
    """One compartment of the wall as configured: its label, where its lock is, its size."""

    label: str
    bank: str
    board: int
    channel: int
    size: str

    @property
    def address(self) -> DoorAddress:
        return DoorAddress(self.bank, self.board, self.channel)


@dataclass(frozen=True)
class CustodySettings:
    """Times are in seconds unless named otherwise."""

    station_name: str = "社区邮政服务点"
    station_address: str = ""
    free_storage_hours: float = 24.0
    deposit_open_timeout: float = 20.0
    deposit_close_timeout: float = 300.0
    pickup_open_timeout: float = 60.0
    wrong_code_limit: int = 5
    wrong_code_pause: float = 30.0
    login_failure_limit: int = 10
    login_lock_seconds: float = 1800.0
    uncommanded_grace: float = 3.0
    notice_retry_delays: tuple[float, ...] = (2.0, 10.0, 60.0, 300.0)


@dataclass(frozen=True)
class FlowEvent:
    """Something a screen may want to show. ``kind`` is ``<flow>.<what>``; no personal data inside."""

    kind: str
    parcel_id: int | None = None
    compartment: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DoorTicket:
    """A flow that has just asked a door to open."""

    parcel_id: int
    compartment: str
    size: str


@dataclass
class _Tracker:
    kind: str  # "deposit" | "pickup"
    parcel_id: int
    spec: CompartmentSpec
    open_deadline: float
    close_deadline: float | None
    seen_open: bool = False


class Custody:
    """The custody service. Use ``await start()`` / ``await stop()``."""

    def __init__(self, *, db: Database, keys: DeviceKeys, layout: list[CompartmentSpec],
                 doors: DoorMonitor, sms: SmsGateway, settings: CustodySettings | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.keys = keys
        self.layout = {spec.label: spec for spec in layout}
        self._by_address = {spec.address: spec for spec in layout}
        self.doors = doors
        self.sms = sms
        self.settings = settings or CustodySettings()
        self._now = clock
        self._mono = monotonic
        self._trackers: dict[int, _Tracker] = {}
        self._last_unlock: dict[DoorAddress, float] = {}
        self._subscribers: set[asyncio.Queue[FlowEvent]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._door_queue: asyncio.Queue[DoorChange] | None = None
        self._lock = asyncio.Lock()  # one flow step at a time
        self.ready = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Sync the layout, read every door, reconcile with the database, then start watching.

        Start-up never pulses a lock.
        """
        await self.db.write(self._sync_layout)
        await self.doors.scan()
        await self._reconcile()
        self._door_queue = self.doors.subscribe()
        await self.doors.start()
        self._spawn(self._watch_doors(), "custody-doors")
        self._spawn(self._tick(), "custody-tick")
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.doors.stop()
        if self._door_queue is not None:
            self.doors.unsubscribe(self._door_queue)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("custody task %s failed", task.get_name(), exc_info=task.exception())

    def subscribe(self) -> asyncio.Queue[FlowEvent]:
        queue: asyncio.Queue[FlowEvent] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[FlowEvent]) -> None:
        self._subscribers.discard(queue)

    def _emit(self, event: FlowEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _sync_layout(self, conn: sqlite3.Connection) -> None:
        for spec in self.layout.values():
            if spec.size not in SIZES:
                raise InvalidInput("size", f"compartment {spec.label} has unknown size {spec.size!r}")
            row = conn.execute("SELECT id FROM compartments WHERE label = ?", (spec.label,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO compartments (label, bank, board, channel, size) VALUES (?, ?, ?, ?, ?)",
                    (spec.label, spec.bank, spec.board, spec.channel, spec.size),
                )
                journal.append(conn, at=self._now(), kind="compartment_added", actor="system",
                               compartment=spec.label, size=spec.size)
            else:
                conn.execute("UPDATE compartments SET bank = ?, board = ?, channel = ?, size = ? WHERE id = ?",
                             (spec.bank, spec.board, spec.channel, spec.size, row["id"]))

    # ------------------------------------------------------------------ couriers

    async def login(self, login: str, pin: str) -> Courier:
        s = self.settings

        def tx(conn: sqlite3.Connection) -> Courier | None:
            return accounts.authenticate(conn, login=login, pin=pin, now=self._now(),
                                         failure_limit=s.login_failure_limit, lock_seconds=s.login_lock_seconds)

        courier = await self.db.write(tx)
        if courier is None:
            raise LoginFailed("unknown courier or wrong PIN")
        return courier

    # ------------------------------------------------------------------ deposit

    def _fits(self, spec: CompartmentSpec) -> bool:
        """A compartment may be assigned only when its door reads closed and no item is detected."""
        reading = self.doors.reading(spec.address)
        return reading.door is DoorState.CLOSED and reading.item is not True

    async def start_deposit(self, courier: Courier, *, tracking: str, phone: str, size: str,
                            consent: bool) -> DoorTicket:
        """Reserve the smallest free compartment that fits, commit, then open its door."""
        tracking = normalize_tracking(tracking)
        phone = normalize_phone(phone)
        if size not in SIZES:
            raise InvalidInput("size", f"size must be one of {', '.join(SIZES)}")
        if not consent:
            raise ConsentMissing("the recipient has not agreed to locker delivery")
        usable = [label for label, spec in self.layout.items() if self._fits(spec)]
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[int, str, str]:
            dup = conn.execute(
                "SELECT 1 FROM parcels WHERE tracking_no = ? AND state IN (?, ?, ?)", (tracking, *LIVE_STATES)
            ).fetchone()
            if dup:
                raise InvalidInput("tracking", "this parcel is already in the locker")
            marks = ",".join("?" * len(usable)) or "NULL"
            row = conn.execute(
                f"""SELECT id, label, size FROM compartments
                    WHERE state = 'free' AND label IN ({marks})
                      AND CASE size WHEN 'S' THEN 0 WHEN 'M' THEN 1 WHEN 'L' THEN 2 ELSE 3 END >= ?
                    ORDER BY CASE size WHEN 'S' THEN 0 WHEN 'M' THEN 1 WHEN 'L' THEN 2 ELSE 3 END, label
                    LIMIT 1""",
                (*usable, SIZES.index(size)),
            ).fetchone()
            if row is None:
                raise NoCompartmentFree(f"no free compartment of size {size} or larger")
            cur = conn.execute(
                """INSERT INTO parcels (tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size,
                                        consent, compartment_id, state, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, 'recipient_agreed', ?, 'depositing', ?)""",
                (tracking, courier.id, self.keys.encrypt("phone", phone), self.keys.mac("phone", phone),
                 mask_phone(phone), size, row["id"], now),
            )
            parcel_id = int(cur.lastrowid)
            conn.execute("UPDATE compartments SET state = 'reserved' WHERE id = ?", (row["id"],))
            conn.execute(
                "INSERT INTO door_intents (compartment_id, parcel_id, purpose, created_at) VALUES (?, ?, 'deposit', ?)",
                (row["id"], parcel_id, now),
            )
            journal.append(conn, at=now, kind="deposit_started", actor=f"courier:{courier.login}",
                           compartment=row["label"], parcel_id=parcel_id, tracking=tracking,
                           phone=mask_phone(phone), size=size, consent="recipient_agreed")
            return parcel_id, row["label"], row["size"]

        async with self._lock:
            parcel_id, label, comp_size = await self.db.write(tx)
            spec = self.layout[label]
            mono = self._mono()
            self._trackers[parcel_id] = _Tracker(
                "deposit", parcel_id, spec, open_deadline=mono + self.settings.deposit_open_timeout,
                close_deadline=mono + self.settings.deposit_close_timeout)
            await self._pulse(spec, parcel_id)
        return DoorTicket(parcel_id, label, comp_size)

    async def cancel_deposit(self, courier: Courier, parcel_id: int) -> str:
        """The courier gives up. Nothing is stored; the compartment is freed (and reassigned only
        once its door reads closed and empty). Returns the compartment label."""
        async with self._lock:
            row = await self.db.read(lambda c: c.execute(
                "SELECT p.*, c.label FROM parcels p JOIN compartments c ON c.id = p.compartment_id WHERE p.id = ?",
                (parcel_id,)).fetchone())
            if row is None or row["courier_id"] != courier.id:
                raise NotAllowed("not your deposit")
            if row["state"] != "depositing":
                raise FlowConflict(f"this deposit is already {row['state']}")
            await self._end_deposit(parcel_id, "cancelled_by_courier", actor=f"courier:{courier.login}")
            return row["label"]

    async def _end_deposit(self, parcel_id: int, reason: str, *, actor: str = "system",
                           compartment_state: str = "free") -> None:
        tracker = self._trackers.pop(parcel_id, None)
        now = self._now()

        def tx(conn: sqlite3.Connection) -> str:
            row = conn.execute(
                "SELECT p.compartment_id, c.label FROM parcels p JOIN compartments c ON c.id = p.compartment_id"
                " WHERE p.id = ? AND p.state = 'depositing'", (parcel_id,)).fetchone()
            if row is None:
                return ""
            conn.execute("UPDATE parcels SET state = 'cancelled', ended_at = ? WHERE id = ?", (now, parcel_id))
            conn.execute("UPDATE compartments SET state = ? WHERE id = ?", (compartment_state, row["compartment_id"]))
            conn.execute("UPDATE door_intents SET outcome = COALESCE(outcome, ?), resolved_at = ?"
                         " WHERE parcel_id = ? AND resolved_at IS NULL",
                         ("opened" if tracker and tracker.seen_open else "not_opened", now, parcel_id))
            journal.append(conn, at=now, kind="deposit_cancelled", actor=actor, compartment=row["label"],
                           parcel_id=parcel_id, reason=reason)
            return row["label"]

        label = await self.db.write(tx)
        if label:
            self._emit(FlowEvent("deposit.cancelled", parcel_id, label, {"reason": reason}))

    async def _store(self, tracker: _Tracker) -> None:
        now = self._now()
        free_until = now + self.settings.free_storage_hours * 3600

        def tx(conn: sqlite3.Connection) -> str:
            code = self._new_code(conn)
            conn.execute(
                "UPDATE parcels SET state = 'stored', code_hmac = ?, stored_at = ?, free_until = ? WHERE id = ?",
                (self.keys.mac("code", code), now, free_until, tracker.parcel_id))
            conn.execute("UPDATE compartments SET state = 'occupied' WHERE label = ?", (tracker.spec.label,))
            conn.execute("UPDATE door_intents SET resolved_at = ? WHERE parcel_id = ? AND resolved_at IS NULL",
                         (now, tracker.parcel_id))
            conn.execute("INSERT INTO notices (parcel_id, kind, status, created_at) VALUES (?, 'pickup', 'pending', ?)",
                         (tracker.parcel_id, now))
            journal.append(conn, at=now, kind="deposit_stored", actor="system", compartment=tracker.spec.label,
                           parcel_id=tracker.parcel_id, free_until=free_until)
            return code

        code = await self.db.write(tx)
        self._emit(FlowEvent("deposit.stored", tracker.parcel_id, tracker.spec.label))
        self._spawn(self._send_notice(tracker.parcel_id, code), f"notice-{tracker.parcel_id}")

    def _new_code(self, conn: sqlite3.Connection) -> str:
        for _ in range(100):
            code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
            taken = conn.execute("SELECT 1 FROM parcels WHERE code_hmac = ? AND state IN ('stored', 'picking_up')",
                                 (self.keys.mac("code", code),)).fetchone()
            if not taken:
                return code
        raise RuntimeError("could not draw a unique pickup code")  # 100 collisions: impossible in practice

    # ------------------------------------------------------------------ notices

    async def _send_notice(self, parcel_id: int, code: str) -> None:
        row = await self.db.read(lambda c: c.execute(
            "SELECT p.phone_enc, p.phone_masked, p.free_until, p.tracking_no, c.label FROM parcels p"
            " JOIN compartments c ON c.id = p.compartment_id WHERE p.id = ?", (parcel_id,)).fetchone())
        phone = self.keys.decrypt("phone", row["phone_enc"])
        text, params = pickup_notice(station=self.settings.station_name, address=self.settings.station_address,
                                     compartment=row["label"], code=code, free_until=row["free_until"],
                                     tracking=row["tracking_no"])
        message = SmsMessage(phone=phone, phone_masked=row["phone_masked"], template="pickup_notice",
                             text=text, params=params)
        delays = (0.0, *self.settings.notice_retry_delays)
        for attempt, delay in enumerate(delays, start=1):
            await asyncio.sleep(delay)
            try:
                await self.sms.send(message)
            except HalError as err:
                log.warning("pickup notice for parcel %d failed (attempt %d): %s", parcel_id, attempt, err)
                await self.db.write(lambda c: c.execute(
                    "UPDATE notices SET attempts = attempts + 1 WHERE parcel_id = ? AND status = 'pending'",
                    (parcel_id,)))
                continue
            now = self._now()

            def sent(conn: sqlite3.Connection) -> None:
                conn.execute("UPDATE notices SET status = 'sent', sent_at = ?, attempts = attempts + 1"
                             " WHERE parcel_id = ? AND status = 'pending'", (now, parcel_id))
                journal.append(conn, at=now, kind="notice_sent", actor="system", compartment=row["label"],
                               parcel_id=parcel_id, to=row["phone_masked"], attempts=attempt)

            await self.db.write(sent)
            self._emit(FlowEvent("notice.sent", parcel_id, row["label"]))
            return
        now = self._now()

        def failed(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE notices SET status = 'failed' WHERE parcel_id = ? AND status = 'pending'",
                         (parcel_id,))
            journal.append(conn, at=now, kind="notice_failed", actor="system", compartment=row["label"],
                           parcel_id=parcel_id, to=row["phone_masked"])

        await self.db.write(failed)
        self._emit(FlowEvent("notice.failed", parcel_id, row["label"]))

    async def resend_notice(self, courier: Courier, parcel_id: int) -> None:
        """A courier re-sends the notice of their own stored parcel: a fresh code replaces the old one
        (the old one is only known to the recipient, never to us)."""
        now = self._now()

        def tx(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT courier_id, state FROM parcels WHERE id = ?", (parcel_id,)).fetchone()
            if row is None or row["courier_id"] != courier.id:
                raise NotAllowed("not your parcel")
            if row["state"] != "stored":
                raise FlowConflict(f"the parcel is {row['state']}")
            code = self._reissue(conn, parcel_id, now, actor=f"courier:{courier.login}")
            return code

        code = await self.db.write(tx)
        self._spawn(self._send_notice(parcel_id, code), f"notice-{parcel_id}")

    def _reissue(self, conn: sqlite3.Connection, parcel_id: int, now: float, *, actor: str) -> str:
        code = self._new_code(conn)
        conn.execute("UPDATE parcels SET code_hmac = ? WHERE id = ?", (self.keys.mac("code", code), parcel_id))
        conn.execute("UPDATE notices SET status = 'failed' WHERE parcel_id = ? AND status = 'pending'", (parcel_id,))
        conn.execute("INSERT INTO notices (parcel_id, kind, status, created_at) VALUES (?, 'pickup', 'pending', ?)",
                     (parcel_id, now))
        journal.append(conn, at=now, kind="code_reissued", actor=actor, parcel_id=parcel_id)
        return code

    # ------------------------------------------------------------------ pickup

    async def keypad_pause_left(self) -> float:
        """Seconds the keypad stays paused after too many wrong codes (0 if it is not)."""
        row = await self.db.read(lambda c: c.execute(
            "SELECT value FROM counters WHERE name = 'pickup.paused_until'").fetchone())
        return max(0.0, (row[0] if row else 0.0) - self._now())

    async def pickup(self, code: str) -> DoorTicket:
        """Open the door of the parcel this code belongs to. Wrong codes are counted and persisted."""
        s = self.settings
        now = self._now()
        code = (code or "").strip()
        code_mac = self.keys.mac("code", code) if code.isdigit() and len(code) == CODE_DIGITS else None

        def tx(conn: sqlite3.Connection) -> tuple[str, Any]:
            def counter(name: str) -> float:
                row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
                return row[0] if row else 0.0

            def put(name: str, value: float) -> None:
                conn.execute("INSERT INTO counters (name, value) VALUES (?, ?)"
                             " ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))

            paused_until = counter("pickup.paused_until")
            if now < paused_until:
                return "paused", paused_until - now
            row = None
            if code_mac is not None:
                row = conn.execute(
                    "SELECT p.id, p.state, c.label, c.size FROM parcels p JOIN compartments c"
                    " ON c.id = p.compartment_id WHERE p.code_hmac = ? AND p.state IN ('stored', 'picking_up')",
                    (code_mac,)).fetchone()
            if row is None:
                streak = int(counter("pickup.wrong_streak")) + 1
                paused = streak >= s.wrong_code_limit
                put("pickup.wrong_streak", 0 if paused else streak)
                if paused:
                    put("pickup.paused_until", now + s.wrong_code_pause)
                journal.append(conn, at=now, kind="pickup_wrong_code", actor="resident", streak=streak,
                               paused=paused)
                return ("paused", s.wrong_code_pause) if paused else ("wrong", s.wrong_code_limit - streak)
            put("pickup.wrong_streak", 0)
            if row["state"] == "picking_up":
                return "busy", (row["id"], row["label"], row["size"])
            conn.execute("UPDATE parcels SET state = 'picking_up' WHERE id = ?", (row["id"],))
            conn.execute(
                "INSERT INTO door_intents (compartment_id, parcel_id, purpose, created_at)"
                " SELECT compartment_id, id, 'pickup', ? FROM parcels WHERE id = ?", (now, row["id"]))
            journal.append(conn, at=now, kind="pickup_started", actor="resident", compartment=row["label"],
                           parcel_id=row["id"])
            return "open", (row["id"], row["label"], row["size"])

        async with self._lock:
            outcome, value = await self.db.write(tx)
            if outcome == "paused":
                raise KeypadPaused(value)
            if outcome == "wrong":
                raise WrongCode(int(value))
            parcel_id, label, size = value
            if outcome == "open":
                spec = self.layout[label]
                self._trackers[parcel_id] = _Tracker(
                    "pickup", parcel_id, spec, open_deadline=self._mono() + s.pickup_open_timeout,
                    close_deadline=None)
                await self._pulse(spec, parcel_id)
        return DoorTicket(parcel_id, label, size)

    async def _pulse(self, spec: CompartmentSpec, parcel_id: int) -> None:
        """One unlock pulse after the intent is committed. A failure to send is an unknown outcome:
        the tracker keeps watching the door and times out if it never opens."""
        self._last_unlock[spec.address] = self._mono()
        # A door already reading open (a broken sensor, a door never shut) is still pulsed.
        tracker = self._trackers.get(parcel_id)
        if tracker is not None and self.doors.reading(spec.address).door is DoorState.OPEN:
            tracker.seen_open = True
        try:
            await self.doors.unlock(spec.address)
        except HalError as err:
            log.error("unlock of %s could not be sent: %s", spec.label, err)
            await self.db.write(lambda c: journal.append(
                c, at=self._now(), kind="unlock_not_sent", actor="system", compartment=spec.label,
                parcel_id=parcel_id, error=type(err).__name__))
            if tracker is not None:
                self._trackers.pop(parcel_id, None)
                if tracker.kind == "deposit":
                    await self._end_deposit(parcel_id, "lock_bus_error")
                else:
                    await self._pickup_back_to_stored(tracker, "lock_bus_error")
            raise DoorUnavailable(f"the lock of {spec.label} did not take the command") from err

    async def _collected(self, tracker: _Tracker) -> None:
        now = self._now()

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE parcels SET state = 'collected', code_hmac = NULL, ended_at = ? WHERE id = ?",
                         (now, tracker.parcel_id))
            conn.execute("UPDATE compartments SET state = 'free' WHERE label = ? AND state = 'occupied'",
                         (tracker.spec.label,))
            conn.execute("UPDATE door_intents SET resolved_at = ? WHERE parcel_id = ? AND resolved_at IS NULL",
                         (now, tracker.parcel_id))
            journal.append(conn, at=now, kind="collected", actor="resident", compartment=tracker.spec.label,
                           parcel_id=tracker.parcel_id)

        await self.db.write(tx)
        self._emit(FlowEvent("pickup.collected", tracker.parcel_id, tracker.spec.label))

    async def _pickup_back_to_stored(self, tracker: _Tracker, reason: str) -> None:
        now = self._now()

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE parcels SET state = 'stored' WHERE id = ? AND state = 'picking_up'",
                         (tracker.parcel_id,))
            conn.execute("UPDATE door_intents SET outcome = COALESCE(outcome, ?), resolved_at = ?"
                         " WHERE parcel_id = ? AND resolved_at IS NULL",
                         ("opened" if tracker.seen_open else "not_opened", now, tracker.parcel_id))
            journal.append(conn, at=now, kind=f"pickup_{reason}", actor="system", compartment=tracker.spec.label,
                           parcel_id=tracker.parcel_id)

        await self.db.write(tx)
        self._emit(FlowEvent(f"pickup.{reason}", tracker.parcel_id, tracker.spec.label))

    # ------------------------------------------------------------------ watching doors

    async def _watch_doors(self) -> None:
        assert self._door_queue is not None
        while True:
            change = await self._door_queue.get()
            async with self._lock:
                await self._on_change(change)

    async def _on_change(self, change: DoorChange) -> None:
        spec = self._by_address.get(change.address)
        if spec is None:
            return
        self._emit(FlowEvent("door.changed", None, spec.label,
                             {"door": change.after.door.value, "item": change.after.item}))
        tracker = next((t for t in self._trackers.values() if t.spec.label == spec.label), None)
        after, before = change.after, change.before
        if tracker is None:
            recent = self._mono() - self._last_unlock.get(change.address, -1e9) < self.settings.uncommanded_grace
            if before.door is DoorState.CLOSED and after.door is DoorState.OPEN and not recent:
                await self._uncommanded_open(spec)
            return
        if after.door is DoorState.OPEN and not tracker.seen_open:
            tracker.seen_open = True
            now = self._now()
            await self.db.write(lambda c: (
                c.execute("UPDATE door_intents SET outcome = 'opened' WHERE parcel_id = ? AND resolved_at IS NULL",
                          (tracker.parcel_id,)),
                journal.append(c, at=now, kind="door_opened", actor="system", compartment=spec.label,
                               parcel_id=tracker.parcel_id, purpose=tracker.kind)))
            self._emit(FlowEvent(f"{tracker.kind}.door_open", tracker.parcel_id, spec.label))
        elif after.door is DoorState.CLOSED and tracker.seen_open:
            self._trackers.pop(tracker.parcel_id, None)
            if tracker.kind == "deposit":
                if after.item is False:
                    await self._end_deposit(tracker.parcel_id, "closed_empty")
                else:
                    await self._store(tracker)
            else:
                if after.item is True:
                    await self._pickup_back_to_stored(tracker, "not_taken")
                else:
                    await self._collected(tracker)

    async def _uncommanded_open(self, spec: CompartmentSpec) -> None:
        now = self._now()

        def tx(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT state FROM compartments WHERE label = ?", (spec.label,)).fetchone()
            state = row["state"] if row else "free"
            if state == "occupied":
                conn.execute("UPDATE compartments SET state = 'check_required' WHERE label = ?", (spec.label,))
            journal.append(conn, at=now, kind="door_opened_uncommanded", actor="system", compartment=spec.label,
                           compartment_state=state)
            return state

        state = await self.db.write(tx)
        log.warning("ALARM: door %s opened without a command (compartment was %s)", spec.label, state)
        self._emit(FlowEvent("alarm.uncommanded_open", None, spec.label, {"was": state}))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            mono = self._mono()
            async with self._lock:
                for tracker in list(self._trackers.values()):
                    if not tracker.seen_open and mono > tracker.open_deadline:
                        self._trackers.pop(tracker.parcel_id, None)
                        if tracker.kind == "deposit":
                            await self._end_deposit(tracker.parcel_id, "door_not_opened",
                                                    compartment_state="check_required")
                        else:
                            await self._pickup_back_to_stored(tracker, "door_not_opened")
                    elif tracker.close_deadline is not None and mono > tracker.close_deadline:
                        self._trackers.pop(tracker.parcel_id, None)
                        await self._end_deposit(tracker.parcel_id, "door_not_closed")

    # ------------------------------------------------------------------ start-up reconciliation

    async def _reconcile(self) -> None:
        """Compare the database with what the doors say, after a restart or a power cut.

        Interrupted deposits are cancelled (their compartment needs a check unless it reads closed
        and empty); interrupted pickups whose door is open are watched to the end, otherwise the
        parcel waits again with its code still valid; notices that were never sent get a fresh code.
        """
        now = self._now()
        readings = {spec.label: self.doors.reading(spec.address) for spec in self.layout.values()}
        resumed: list[_Tracker] = []

        def tx(conn: sqlite3.Connection) -> list[int]:
            conn.execute("UPDATE door_intents SET outcome = 'unknown', resolved_at = ? WHERE resolved_at IS NULL"
                         " AND outcome IS NULL AND parcel_id IN (SELECT id FROM parcels WHERE state = 'depositing')",
                         (now,))
            for row in conn.execute("SELECT p.id, c.label, c.id AS cid FROM parcels p JOIN compartments c"
                                    " ON c.id = p.compartment_id WHERE p.state = 'depositing'").fetchall():
                reading = readings.get(row["label"])
                clean = reading is not None and reading.door is DoorState.CLOSED and reading.item is False
                conn.execute("UPDATE parcels SET state = 'cancelled', ended_at = ? WHERE id = ?", (now, row["id"]))
                conn.execute("UPDATE compartments SET state = ? WHERE id = ?",
                             ("free" if clean else "check_required", row["cid"]))
                journal.append(conn, at=now, kind="deposit_interrupted", actor="system", compartment=row["label"],
                               parcel_id=row["id"], door=reading.door.value if reading else "unknown")
            for row in conn.execute("SELECT p.id, c.label FROM parcels p JOIN compartments c"
                                    " ON c.id = p.compartment_id WHERE p.state = 'picking_up'").fetchall():
                reading = readings.get(row["label"])
                spec = self.layout.get(row["label"])
                if reading is not None and reading.door is DoorState.OPEN and spec is not None:
                    resumed.append(_Tracker("pickup", row["id"], spec, open_deadline=0.0, close_deadline=None,
                                            seen_open=True))
                    journal.append(conn, at=now, kind="pickup_resumed", actor="system", compartment=row["label"],
                                   parcel_id=row["id"])
                else:
                    conn.execute("UPDATE parcels SET state = 'stored' WHERE id = ?", (row["id"],))
                    conn.execute("UPDATE door_intents SET outcome = COALESCE(outcome, 'unknown'), resolved_at = ?"
                                 " WHERE parcel_id = ? AND resolved_at IS NULL", (now, row["id"]))
                    journal.append(conn, at=now, kind="pickup_interrupted", actor="system",
                                   compartment=row["label"], parcel_id=row["id"])
            for row in conn.execute("SELECT p.id, c.label, c.id AS cid FROM parcels p JOIN compartments c"
                                    " ON c.id = p.compartment_id WHERE p.state = 'stored'").fetchall():
                reading = readings.get(row["label"])
                if reading is not None and reading.door is DoorState.OPEN:
                    conn.execute("UPDATE compartments SET state = 'check_required' WHERE id = ?", (row["cid"],))
                    journal.append(conn, at=now, kind="door_open_at_start", actor="system",
                                   compartment=row["label"], parcel_id=row["id"])
            pending = [r[0] for r in conn.execute(
                "SELECT DISTINCT n.parcel_id FROM notices n JOIN parcels p ON p.id = n.parcel_id"
                " WHERE n.status = 'pending' AND p.state = 'stored'")]
            return pending

        pending = await self.db.write(tx)
        for tracker in resumed:
            self._trackers[tracker.parcel_id] = tracker
        for parcel_id in pending:
            code = await self.db.write(lambda c, pid=parcel_id: self._reissue(c, pid, now, actor="system"))
            self._spawn(self._send_notice(parcel_id, code), f"notice-{parcel_id}")

    # ------------------------------------------------------------------ views

    async def compartments(self, courier: Courier | None = None) -> list[dict[str, Any]]:
        """Every compartment with its live door state. Parcel details only for the courier who owns
        them; phone numbers only masked."""
        rows = await self.db.read(lambda c: c.execute(
            "SELECT c.label, c.size, c.state, p.id AS parcel_id, p.state AS parcel_state, p.tracking_no,"
            " p.courier_id, p.phone_masked, p.stored_at, p.free_until FROM compartments c"
            " LEFT JOIN parcels p ON p.compartment_id = c.id AND p.state IN ('depositing', 'stored', 'picking_up')"
            " ORDER BY c.label").fetchall())
        out = []
        for row in rows:
            spec = self.layout.get(row["label"])
            reading = self.doors.reading(spec.address) if spec else None
            item: dict[str, Any] = {
                "label": row["label"], "size": row["size"], "state": row["state"],
                "door": reading.door.value if reading else "unknown",
                "item": reading.item if reading else None, "parcel": None,
            }
            if row["parcel_id"] is not None:
                own = courier is not None and row["courier_id"] == courier.id
                item["parcel"] = {
                    "id": row["parcel_id"] if own else None,
                    "state": row["parcel_state"],
                    "tracking": row["tracking_no"] if own else mask_tracking(row["tracking_no"]),
                    "phone": row["phone_masked"] if own else None,
                    "stored_at": row["stored_at"], "free_until": row["free_until"], "own": own,
                }
            out.append(item)
        return out

    async def parcel_state(self, parcel_id: int) -> str | None:
        row = await self.db.read(lambda c: c.execute("SELECT state FROM parcels WHERE id = ?",
                                                     (parcel_id,)).fetchone())
        return row["state"] if row else None

    def door_of(self, label: str) -> str:
        spec = self.layout.get(label)
        return self.doors.reading(spec.address).door.value if spec else "unknown"
