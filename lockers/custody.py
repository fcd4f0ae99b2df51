"""Custody: who holds each parcel, in which compartment, and every door movement that changes it.

Rules this module keeps:

* A custody change is committed (``synchronous=FULL``) before the door command is sent, together
  with a door *intent* row, so a restarted process always knows what it was about to do.
* A door is "opened" only when the status poll shows it open; an unlock acknowledgement is never
  proof. Unlocks are never retried automatically.
* A parcel is stored only when its door was seen open and then closed with the item sensor showing
  the parcel (or, on boards without item sensors, closed). It is collected or returned only when its
  door was seen open and then closed with the item gone.
* Pickup codes are 8 digits from ``secrets``, QR tokens 128 bits; both unique among live parcels,
  kept only as keyed HMACs, and dead once the parcel leaves the resident's hands. Failed codes are
  logged in the database: a per-keypad pause after a streak, and a station-wide hourly budget, both
  survive a restart.
* Phone numbers are stored AES-GCM encrypted, looked up by keyed HMAC, and shown masked.
* Deposits need the recipient's consent or the sender's choice of the locker as the address (R1).
* After a pickup door opens, the resident may refuse the parcel and put it back (R5).
* Storage is free for a stated period; a fee after it is shown before anything is charged (R8).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hal.errors import HalError
from hal.lockbank import DoorState, UnlockReply
from hal.sms import SmsGateway, SmsMessage
from lockers import accounts, journal
from lockers.accounts import Courier
from lockers.crash import crashpoint
from lockers.db import Database
from lockers.doors import DoorAddress, DoorChange, DoorMonitor
from lockers.errors import (
    ConsentMissing,
    DoorUnavailable,
    FeeDue,
    FlowConflict,
    InvalidInput,
    KeypadPaused,
    LoginFailed,
    NoCompartmentFree,
    NotAllowed,
    UnknownToken,
    WrongCode,
)
from lockers.keys import DeviceKeys
from lockers.notices import pickup_notice, reminder_notice
from lockers.personal import mask_phone, mask_tracking, normalize_phone, normalize_tracking

log = logging.getLogger(__name__)

SIZES = ("S", "M", "L", "XL")
CODE_DIGITS = 8
TOKEN_PREFIX = "PK1-"
TOKEN_BYTES = 16  # 128 bits (T-D1 asks for at least 128)
LIVE_STATES = ("depositing", "stored", "picking_up", "refused", "retrieving")
REFUSE_REASONS = ("damaged", "late", "short", "wrong_item", "other")
#: why a collecting courier refuses an outbound item at inspection (R14, R15)
INSPECTION_REASONS = ("prohibited", "not_as_declared", "badly_packed", "over_limits", "other")


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
    """Times are in seconds unless named otherwise; money in fen (0.01 yuan)."""

    station_name: str = "社区邮政服务点"
    station_address: str = ""
    pickup_link: str = ""  # e.g. "https://post.example.cn/p/{token}"; empty: the token itself is sent
    free_storage_hours: float = 24.0
    fee_per_day_fen: int = 0  # per started day after the free period; 0: storage is always free
    fee_cap_fen: int = 300
    reminder_before_hours: float = 4.0
    return_after_hours: float = 72.0  # then the parcel shows in its courier's retrieval list
    deposit_open_timeout: float = 20.0
    deposit_close_timeout: float = 300.0
    pickup_open_timeout: float = 60.0
    door_left_open_alarm: float = 60.0
    door_left_open_repeat: float = 3600.0
    wrong_code_limit: int = 5
    wrong_code_pause: float = 30.0
    station_failures_per_hour: int = 20
    guessing_alarm_failures: int = 10
    guessing_alarm_window: float = 600.0
    login_failure_limit: int = 10
    login_lock_seconds: float = 1800.0
    uncommanded_grace: float = 3.0
    collect_carriers: tuple[str, ...] = ()  # carriers whose couriers collect outbound mail; empty: all
    notice_retry_delays: tuple[float, ...] = (2.0, 10.0, 60.0, 300.0)
    housekeeping_interval: float = 60.0


def guessing_risk(settings: CustodySettings, live_parcels: int, days: float = 7.0) -> float:
    """Probability that someone guessing at the station-wide cap, all day every day, opens any
    parcel within ``days`` (T-D1): 1 - (1 - live/10^digits)^(cap x hours)."""
    p = live_parcels / 10 ** CODE_DIGITS
    guesses = settings.station_failures_per_hour * 24 * days
    return 1 - (1 - p) ** guesses


def storage_fee(settings: CustodySettings, free_until: float | None, now: float) -> int:
    """Fee in fen due at ``now``: nothing within the free period, then per started day, capped."""
    if free_until is None or now <= free_until or settings.fee_per_day_fen <= 0:
        return 0
    days = math.ceil((now - free_until) / 86400)
    return min(settings.fee_cap_fen, days * settings.fee_per_day_fen)


#: how long a fee ticket (a pickup code found right, fee unpaid) stays good for paying and opening
FEE_TICKET_SECONDS = 600.0
FEE_PURPOSE = "storage_fee"


def fee_reference(parcel_id: int, settings: CustodySettings, free_until: float | None, now: float) -> str:
    """The payment reference of the fee due now: ``p<parcel>d<started days>``. Paying it once covers
    the fee up to that day; a later day's fee is a new reference, so no fee is ever charged twice."""
    days = 0 if free_until is None or now <= free_until else math.ceil((now - free_until) / 86400)
    return f"p{parcel_id}d{days}"


def fee_outstanding(conn: sqlite3.Connection, settings: CustodySettings, parcel_id: int,
                    free_until: float | None, now: float) -> int:
    """The storage fee still to pay: the fee due now less every paid fee order of this parcel (the
    payment order in state ``paid`` is the record; a refunded one counts for nothing)."""
    fee = storage_fee(settings, free_until, now)
    if fee <= 0:
        return 0
    paid = conn.execute(
        "SELECT COALESCE(SUM(amount_fen), 0) FROM payment_orders WHERE purpose = ? AND state = 'paid'"
        " AND reference LIKE ?", (FEE_PURPOSE, f"p{parcel_id}d%")).fetchone()[0]
    return max(0, fee - int(paid))


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
    kind: str  # deposit | pickup | retrieve | technician
    parcel_id: int | None
    spec: CompartmentSpec
    open_deadline: float
    close_deadline: float | None
    seen_open: bool = False
    refuse_reason: str | None = None
    intent_id: int | None = None
    posting_id: int | None = None  # an outbound parcel: a resident's drop-off, a courier's collection
    courier: Courier | None = None  # who collects an outbound parcel
    inspection: str | None = None  # "passed", or why the collecting courier refused the item (R14, R15)

    @property
    def flow(self) -> str:
        """The name events of this flow carry: posting drop-offs and collections have their own."""
        if self.posting_id is not None:
            return {"deposit": "posting", "retrieve": "collect"}.get(self.kind, self.kind)
        return self.kind


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
        self._trackers: dict[str, _Tracker] = {}  # by compartment label: one flow per door
        self._last_unlock: dict[DoorAddress, float] = {}
        self._open_since: dict[str, float] = {}
        self._alarmed_at: dict[str, float] = {}
        self._subscribers: set[asyncio.Queue[FlowEvent]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._door_queue: asyncio.Queue[DoorChange] | None = None
        self._lock = asyncio.Lock()  # one flow step at a time
        self._fee_tickets: dict[str, tuple[int, float]] = {}  # ticket -> (parcel id, monotonic expiry)
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
        self._spawn(self._housekeeping(), "custody-housekeeping")
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

    # ------------------------------------------------------------------ accounts

    async def login(self, login: str, pin: str, *, roles: tuple[str, ...] = ("courier",)) -> Courier:
        """The account of ``login`` if ``pin`` (a PIN or password) is right and its role is in ``roles``."""
        s = self.settings

        def tx(conn: sqlite3.Connection) -> Courier | None:
            return accounts.authenticate(conn, login=login, pin=pin, now=self._now(), roles=roles,
                                         failure_limit=s.login_failure_limit, lock_seconds=s.login_lock_seconds)

        account = await self.db.write(tx)
        if account is None:
            raise LoginFailed("unknown login or wrong secret")
        return account

    # ------------------------------------------------------------------ deposit

    def _fits(self, spec: CompartmentSpec) -> bool:
        """A compartment may be assigned only when its door reads closed and no item is detected."""
        reading = self.doors.reading(spec.address)
        return reading.door is DoorState.CLOSED and reading.item is not True and spec.label not in self._trackers

    def _pick_compartment(self, conn: sqlite3.Connection, size: str) -> sqlite3.Row:
        """The smallest free compartment of ``size`` or larger whose door reads closed and empty."""
        usable = [label for label, spec in self.layout.items() if self._fits(spec)]
        row = conn.execute(
            f"""SELECT id, label, size FROM compartments
                WHERE state = 'free' AND label IN ({_marks(usable) or 'NULL'})
                  AND {_SIZE_RANK} >= ? ORDER BY {_SIZE_RANK}, label LIMIT 1""",
            (*usable, SIZES.index(size)),
        ).fetchone()
        if row is None:
            raise NoCompartmentFree(f"no free compartment of size {size} or larger")
        return row

    async def start_deposit(self, courier: Courier, *, tracking: str, phone: str, size: str,
                            consent: bool, locker_is_address: bool = False) -> DoorTicket:
        """Reserve the smallest free compartment that fits, commit, then open its door.

        ``consent``: the recipient agreed to locker delivery; ``locker_is_address``: the sender
        named this locker as the delivery address. One of the two is required (rules R1, R9).
        """
        tracking = normalize_tracking(tracking)
        phone = normalize_phone(phone)
        if size not in SIZES:
            raise InvalidInput("size", f"size must be one of {', '.join(SIZES)}")
        if not (consent or locker_is_address):
            raise ConsentMissing("the recipient has not agreed to locker delivery")
        basis = "recipient_agreed" if consent else "locker_is_address"
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[int, str, str]:
            dup = conn.execute(f"SELECT 1 FROM parcels WHERE tracking_no = ? AND state IN ({_marks(LIVE_STATES)})",
                               (tracking, *LIVE_STATES)).fetchone()
            if dup:
                raise InvalidInput("tracking", "this parcel is already in the locker")
            row = self._pick_compartment(conn, size)
            cur = conn.execute(
                """INSERT INTO parcels (tracking_no, courier_id, phone_enc, phone_hmac, phone_masked, size,
                                        consent, compartment_id, state, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'depositing', ?)""",
                (tracking, courier.id, self.keys.encrypt("phone", phone), self.keys.mac("phone", phone),
                 mask_phone(phone), size, basis, row["id"], now),
            )
            parcel_id = int(cur.lastrowid)
            conn.execute("UPDATE compartments SET state = 'reserved' WHERE id = ?", (row["id"],))
            _intent(conn, row["id"], parcel_id, "deposit", f"courier:{courier.login}", now)
            journal.append(conn, at=now, kind="deposit_started", actor=f"courier:{courier.login}",
                           compartment=row["label"], parcel_id=parcel_id, tracking=tracking,
                           phone=mask_phone(phone), size=size, consent=basis)
            return parcel_id, row["label"], row["size"]

        async with self._lock:
            parcel_id, label, comp_size = await self.db.write(tx)
            crashpoint("deposit.reserved")
            spec = self.layout[label]
            mono = self._mono()
            self._trackers[label] = _Tracker("deposit", parcel_id, spec,
                                             open_deadline=mono + self.settings.deposit_open_timeout,
                                             close_deadline=mono + self.settings.deposit_close_timeout)
            await self._pulse(self._trackers[label])
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
            await self._end_deposit(row["label"], parcel_id, "cancelled_by_courier", actor=f"courier:{courier.login}")
            return row["label"]

    async def _end_deposit(self, label: str, parcel_id: int, reason: str, *, actor: str = "system",
                           compartment_state: str = "free") -> None:
        tracker = self._trackers.pop(label, None)
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[bool, int | None]:
            row = conn.execute("SELECT compartment_id, posting_id FROM parcels WHERE id = ? AND state = 'depositing'",
                               (parcel_id,)).fetchone()
            if row is None:
                return False, None
            conn.execute("UPDATE parcels SET state = 'cancelled', ended_at = ? WHERE id = ?", (now, parcel_id))
            conn.execute("UPDATE compartments SET state = ? WHERE id = ?", (compartment_state, row["compartment_id"]))
            _resolve(conn, parcel_id, "opened" if tracker and tracker.seen_open else "not_opened", now)
            journal.append(conn, at=now, kind="dropoff_cancelled" if row["posting_id"] else "deposit_cancelled",
                           actor=actor, compartment=label, parcel_id=parcel_id, reason=reason,
                           posting_id=row["posting_id"])
            return True, row["posting_id"]

        done, posting_id = await self.db.write(tx)
        if done:
            crashpoint("deposit.cancelled")
            flow = "posting" if posting_id is not None else "deposit"
            self._emit(FlowEvent(f"{flow}.cancelled", parcel_id, label, {"reason": reason}))

    async def _store(self, tracker: _Tracker) -> None:
        if tracker.posting_id is not None:
            await self._store_outbound(tracker)
            return
        now = self._now()
        free_until = now + self.settings.free_storage_hours * 3600

        def tx(conn: sqlite3.Connection) -> tuple[str, str]:
            code, token = self._new_secrets(conn)
            conn.execute(
                "UPDATE parcels SET state = 'stored', code_hmac = ?, token_hmac = ?, stored_at = ?, free_until = ?"
                " WHERE id = ?", (self.keys.mac("code", code), self.keys.mac("token", token), now, free_until,
                                  tracker.parcel_id))
            conn.execute("UPDATE compartments SET state = 'occupied' WHERE label = ?", (tracker.spec.label,))
            _resolve(conn, tracker.parcel_id, "opened", now)
            conn.execute("INSERT INTO notices (parcel_id, kind, status, created_at) VALUES (?, 'pickup', 'pending', ?)",
                         (tracker.parcel_id, now))
            journal.append(conn, at=now, kind="deposit_stored", actor="system", compartment=tracker.spec.label,
                           parcel_id=tracker.parcel_id, free_until=free_until)
            return code, token

        code, token = await self.db.write(tx)
        crashpoint("deposit.stored")
        self._emit(FlowEvent("deposit.stored", tracker.parcel_id, tracker.spec.label))
        self._spawn(self._send_pickup_notice(tracker.parcel_id, code, token), f"notice-{tracker.parcel_id}")

    def _new_secrets(self, conn: sqlite3.Connection) -> tuple[str, str]:
        """A pickup code unique among live parcels, and a 128-bit QR token."""
        for _ in range(100):
            code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
            taken = conn.execute("SELECT 1 FROM parcels WHERE code_hmac = ? AND state IN ('stored', 'picking_up')",
                                 (self.keys.mac("code", code),)).fetchone()
            if not taken:
                token = TOKEN_PREFIX + base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode().rstrip("=")
                return code, token
        raise RuntimeError("could not draw a unique pickup code")  # 100 collisions: impossible in practice

    # ------------------------------------------------------------------ notices

    async def _parcel_contact(self, parcel_id: int) -> sqlite3.Row:
        return await self.db.read(lambda c: c.execute(
            "SELECT p.phone_enc, p.phone_masked, p.free_until, p.tracking_no, c.label FROM parcels p"
            " JOIN compartments c ON c.id = p.compartment_id WHERE p.id = ?", (parcel_id,)).fetchone())

    async def _send_pickup_notice(self, parcel_id: int, code: str, token: str) -> None:
        row = await self._parcel_contact(parcel_id)
        s = self.settings
        link = s.pickup_link.format(token=token) if s.pickup_link else token
        text, params = pickup_notice(station=s.station_name, address=s.station_address, compartment=row["label"],
                                     code=code, free_until=row["free_until"], tracking=row["tracking_no"],
                                     link=link, fee_per_day_fen=s.fee_per_day_fen, fee_cap_fen=s.fee_cap_fen)
        message = SmsMessage(phone=self.keys.decrypt("phone", row["phone_enc"]), phone_masked=row["phone_masked"],
                             template="pickup_notice", text=text, params=params)
        await self._deliver(parcel_id, row["label"], "pickup", message)

    async def _deliver(self, parcel_id: int, label: str, kind: str, message: SmsMessage) -> None:
        """Hand a message to the gateway, retrying with the configured delays; the outcome is journaled."""
        delays = (0.0, *self.settings.notice_retry_delays)
        for attempt, delay in enumerate(delays, start=1):
            await asyncio.sleep(delay)
            try:
                await self.sms.send(message)
            except HalError as err:
                log.warning("%s notice for parcel %d failed (attempt %d): %s", kind, parcel_id, attempt, err)
                await self.db.write(lambda c: c.execute(
                    "UPDATE notices SET attempts = attempts + 1 WHERE parcel_id = ? AND kind = ? AND status = 'pending'",
                    (parcel_id, kind)))
                continue
            if kind == "pickup":
                crashpoint("deposit.notice_accepted")
            now = self._now()

            def sent(conn: sqlite3.Connection) -> None:
                conn.execute("UPDATE notices SET status = 'sent', sent_at = ?, attempts = attempts + 1"
                             " WHERE parcel_id = ? AND kind = ? AND status = 'pending'", (now, parcel_id, kind))
                journal.append(conn, at=now, kind=f"{kind}_notice_sent", actor="system", compartment=label,
                               parcel_id=parcel_id, to=message.phone_masked, attempts=attempt)

            await self.db.write(sent)
            self._emit(FlowEvent("notice.sent", parcel_id, label, {"kind": kind}))
            return
        now = self._now()

        def failed(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE notices SET status = 'failed' WHERE parcel_id = ? AND kind = ? AND status = 'pending'",
                         (parcel_id, kind))
            journal.append(conn, at=now, kind=f"{kind}_notice_failed", actor="system", compartment=label,
                           parcel_id=parcel_id, to=message.phone_masked)

        await self.db.write(failed)
        self._emit(FlowEvent("notice.failed", parcel_id, label, {"kind": kind}))

    async def resend_notice(self, courier: Courier, parcel_id: int) -> None:
        """A courier re-sends the notice of their own stored parcel: a fresh code and token replace
        the old ones (those are known only to the recipient, never to us)."""
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[str, str]:
            row = conn.execute("SELECT courier_id, state FROM parcels WHERE id = ?", (parcel_id,)).fetchone()
            if row is None or row["courier_id"] != courier.id:
                raise NotAllowed("not your parcel")
            if row["state"] != "stored":
                raise FlowConflict(f"the parcel is {row['state']}")
            return self._reissue(conn, parcel_id, now, actor=f"courier:{courier.login}")

        code, token = await self.db.write(tx)
        self._spawn(self._send_pickup_notice(parcel_id, code, token), f"notice-{parcel_id}")

    def _reissue(self, conn: sqlite3.Connection, parcel_id: int, now: float, *, actor: str) -> tuple[str, str]:
        code, token = self._new_secrets(conn)
        conn.execute("UPDATE parcels SET code_hmac = ?, token_hmac = ? WHERE id = ?",
                     (self.keys.mac("code", code), self.keys.mac("token", token), parcel_id))
        conn.execute("UPDATE notices SET status = 'failed' WHERE parcel_id = ? AND kind = 'pickup'"
                     " AND status = 'pending'", (parcel_id,))
        conn.execute("INSERT INTO notices (parcel_id, kind, status, created_at) VALUES (?, 'pickup', 'pending', ?)",
                     (parcel_id, now))
        journal.append(conn, at=now, kind="code_reissued", actor=actor, parcel_id=parcel_id)
        return code, token

    async def _send_reminders(self) -> None:
        """A reminder before the free period ends (no code in it: we do not know the code)."""
        now = self._now()
        horizon = now + self.settings.reminder_before_hours * 3600
        due = await self.db.read(lambda c: c.execute(
            "SELECT id FROM parcels WHERE state = 'stored' AND reminded_at IS NULL AND free_until > ?"
            " AND free_until <= ?", (now, horizon)).fetchall())
        for (parcel_id,) in due:
            await self.db.write(lambda c, pid=parcel_id: (
                c.execute("UPDATE parcels SET reminded_at = ? WHERE id = ?", (now, pid)),
                c.execute("INSERT INTO notices (parcel_id, kind, status, created_at) VALUES (?, 'reminder', 'pending', ?)",
                          (pid, now))))
            row = await self._parcel_contact(parcel_id)
            s = self.settings
            text, params = reminder_notice(station=s.station_name, compartment=row["label"],
                                           free_until=row["free_until"], tracking=row["tracking_no"],
                                           fee_per_day_fen=s.fee_per_day_fen)
            message = SmsMessage(phone=self.keys.decrypt("phone", row["phone_enc"]),
                                 phone_masked=row["phone_masked"], template="reminder", text=text, params=params)
            self._spawn(self._deliver(parcel_id, row["label"], "reminder", message), f"reminder-{parcel_id}")

    # ------------------------------------------------------------------ pickup

    async def keypad_pause_left(self) -> float:
        """Seconds the keypad stays paused after too many wrong codes (0 if it is not)."""
        return await self.db.read(lambda c: self._pause_left(c, self._now()))

    def _pause_left(self, conn: sqlite3.Connection, now: float) -> float:
        s = self.settings
        row = conn.execute("SELECT value FROM counters WHERE name = 'pickup.paused_until'").fetchone()
        streak_pause = (row[0] if row else 0.0) - now
        window = conn.execute("SELECT COUNT(*), MIN(at) FROM code_failures WHERE at > ?", (now - 3600,)).fetchone()
        budget_pause = (window[1] + 3600 - now) if window[0] >= s.station_failures_per_hour else 0.0
        return max(0.0, streak_pause, budget_pause)

    async def pickup(self, code: str | None = None, *, token: str | None = None) -> DoorTicket:
        """Open the door of the parcel this code (typed) or token (scanned) belongs to.

        Wrong codes are counted: a per-keypad pause after a streak, and a station-wide budget per
        hour, both persisted. Tokens have 128 bits and are not rate-limited. A fee due after the
        free period raises ``FeeDue`` before anything moves.
        """
        s = self.settings
        now = self._now()
        if token is not None:
            token = token.strip().upper()
            secret_col, secret_mac = "token_hmac", self.keys.mac("token", token)
        else:
            code = (code or "").strip()
            ok = code.isdigit() and len(code) == CODE_DIGITS
            secret_col, secret_mac = "code_hmac", (self.keys.mac("code", code) if ok else None)

        def tx(conn: sqlite3.Connection) -> tuple[str, Any]:
            if token is None:
                paused = self._pause_left(conn, now)
                if paused > 0:
                    return "paused", paused
            row = None
            if secret_mac is not None:
                row = conn.execute(
                    "SELECT p.id, p.state, p.free_until, c.label, c.size FROM parcels p JOIN compartments c"
                    f" ON c.id = p.compartment_id WHERE p.{secret_col} = ? AND p.state IN ('stored', 'picking_up')",
                    (secret_mac,)).fetchone()
            if row is None:
                if token is not None:
                    return "unknown_token", None
                return self._count_failure(conn, now)
            _put(conn, "pickup.wrong_streak", 0)
            if row["state"] == "picking_up":
                return "busy", (row["id"], row["label"], row["size"])
            fee = fee_outstanding(conn, s, row["id"], row["free_until"], now)
            if fee > 0:
                journal.append(conn, at=now, kind="fee_shown", actor="resident", compartment=row["label"],
                               parcel_id=row["id"], fee_fen=fee)
                return "fee", (fee, row["free_until"], row["id"],
                               fee_reference(row["id"], s, row["free_until"], now))
            return self._start_pickup(conn, row, now, by="token" if token else "code")

        async with self._lock:
            outcome, value = await self.db.write(tx)
            if outcome == "paused":
                raise KeypadPaused(value)
            if outcome == "wrong":
                raise WrongCode(int(value))
            if outcome == "alarm":
                self._emit(FlowEvent("alarm.code_guessing", None, None, {"failures": value[1]}))
                log.warning("ALARM: %d wrong pickup codes in %.0f s", value[1], s.guessing_alarm_window)
                raise WrongCode(int(value[0]))
            if outcome == "unknown_token":
                raise UnknownToken("no parcel here for this QR code")
            if outcome == "fee":
                fee, free_until, fee_parcel, reference = value
                ticket = secrets.token_urlsafe(16)
                self._fee_tickets = {t: v for t, v in self._fee_tickets.items() if v[1] > self._mono()}
                self._fee_tickets[ticket] = (fee_parcel, self._mono() + FEE_TICKET_SECONDS)
                raise FeeDue(fee, free_until, ticket, reference)
            parcel_id, label, size = value
            if outcome == "open":
                crashpoint("pickup.intent")
                spec = self.layout[label]
                self._trackers[label] = _Tracker("pickup", parcel_id, spec,
                                                 open_deadline=self._mono() + s.pickup_open_timeout,
                                                 close_deadline=None)
                await self._pulse(self._trackers[label])
        return DoorTicket(parcel_id, label, size)

    def _start_pickup(self, conn: sqlite3.Connection, row: sqlite3.Row, now: float, *, by: str) -> tuple[str, Any]:
        """Mark the parcel ``picking_up`` and write the door intent (before any pulse)."""
        conn.execute("UPDATE parcels SET state = 'picking_up' WHERE id = ?", (row["id"],))
        cid = conn.execute("SELECT compartment_id FROM parcels WHERE id = ?", (row["id"],)).fetchone()[0]
        _intent(conn, cid, row["id"], "pickup", "resident", now)
        journal.append(conn, at=now, kind="pickup_started", actor="resident", compartment=row["label"],
                       parcel_id=row["id"], by=by)
        return "open", (row["id"], row["label"], row["size"])

    def fee_ticket_parcel(self, ticket: str) -> int | None:
        """The parcel a fee ticket (from :class:`FeeDue`) stands for, while it is good; else None."""
        entry = self._fee_tickets.get(ticket)
        if entry is None or entry[1] <= self._mono():
            return None
        return entry[0]

    def fee_paid_recorder(self, ticket: str) -> Callable[[sqlite3.Connection, Any], None]:
        """For ``PaymentDesk.pay(on_paid=...)``: journals the paid fee in the payment's transaction.
        Refuses (and so has the money returned) when the ticket is no longer good or the parcel has
        left meanwhile."""
        parcel_id = self.fee_ticket_parcel(ticket)

        def record(conn: sqlite3.Connection, order: Any) -> None:
            row = conn.execute("SELECT state FROM parcels WHERE id = ?", (parcel_id,)).fetchone()
            if parcel_id is None or row is None or row["state"] != "stored":
                raise FlowConflict("the parcel is no longer waiting for this fee")
            journal.append(conn, at=self._now(), kind="fee_paid", actor="resident", parcel_id=parcel_id,
                           fee_fen=order.amount_fen, order_no=order.order_no)

        return record

    async def pickup_paid(self, ticket: str) -> DoorTicket:
        """Open the door of the parcel a fee ticket stands for, once no fee is outstanding (the fee
        was paid: the resident does not type the code again). The ticket is used up."""
        s = self.settings
        parcel_id = self.fee_ticket_parcel(ticket)
        if parcel_id is None:
            raise FlowConflict("this fee ticket is not valid (enter the pickup code again)")
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[str, Any]:
            row = conn.execute(
                "SELECT p.id, p.state, p.free_until, c.label, c.size FROM parcels p JOIN compartments c"
                " ON c.id = p.compartment_id WHERE p.id = ? AND p.state = 'stored'", (parcel_id,)).fetchone()
            if row is None:
                return "gone", None
            fee = fee_outstanding(conn, s, row["id"], row["free_until"], now)
            if fee > 0:
                return "fee", (fee, row["free_until"])
            return self._start_pickup(conn, row, now, by="fee_paid")

        async with self._lock:
            outcome, value = await self.db.write(tx)
            if outcome == "gone":
                self._fee_tickets.pop(ticket, None)
                raise FlowConflict("the parcel is no longer in the locker")
            if outcome == "fee":
                raise FeeDue(value[0], value[1], ticket, None)
            self._fee_tickets.pop(ticket, None)
            parcel_id, label, size = value
            crashpoint("pickup.intent")
            spec = self.layout[label]
            self._trackers[label] = _Tracker("pickup", parcel_id, spec,
                                             open_deadline=self._mono() + s.pickup_open_timeout, close_deadline=None)
            await self._pulse(self._trackers[label])
        return DoorTicket(parcel_id, label, size)

    def _count_failure(self, conn: sqlite3.Connection, now: float) -> tuple[str, Any]:
        """A wrong code: log it, pause the keypad after a streak, raise the guessing alarm."""
        s = self.settings
        row = conn.execute("SELECT value FROM counters WHERE name = 'pickup.wrong_streak'").fetchone()
        streak = int(row[0] if row else 0) + 1
        paused = streak >= s.wrong_code_limit
        _put(conn, "pickup.wrong_streak", 0 if paused else streak)
        if paused:
            _put(conn, "pickup.paused_until", now + s.wrong_code_pause)
        conn.execute("INSERT INTO code_failures (at) VALUES (?)", (now,))
        conn.execute("DELETE FROM code_failures WHERE at < ?", (now - 86400,))
        recent = conn.execute("SELECT COUNT(*) FROM code_failures WHERE at > ?",
                              (now - s.guessing_alarm_window,)).fetchone()[0]
        journal.append(conn, at=now, kind="pickup_wrong_code", actor="resident", streak=streak, paused=paused)
        left = s.wrong_code_limit - streak
        if recent == s.guessing_alarm_failures:
            journal.append(conn, at=now, kind="alarm_code_guessing", actor="system", failures=recent,
                           window_s=s.guessing_alarm_window)
            if not paused:
                return "alarm", (left, recent)
        return ("paused", s.wrong_code_pause) if paused else ("wrong", left)

    async def refuse(self, parcel_id: int, reason: str) -> str:
        """The resident inspects the parcel at the open door and refuses it (rule R5): once they put
        it back and close the door, it is flagged refused for its courier. Returns the label."""
        if reason not in REFUSE_REASONS:
            raise InvalidInput("reason", f"reason must be one of {', '.join(REFUSE_REASONS)}")
        async with self._lock:
            tracker = next((t for t in self._trackers.values()
                            if t.kind == "pickup" and t.parcel_id == parcel_id), None)
            if tracker is None or not tracker.seen_open:
                raise FlowConflict("the door of this parcel is not open")
            tracker.refuse_reason = reason
            now = self._now()
            await self.db.write(lambda c: journal.append(
                c, at=now, kind="refusal_requested", actor="resident", compartment=tracker.spec.label,
                parcel_id=parcel_id, reason=reason))
            self._emit(FlowEvent("pickup.refusing", parcel_id, tracker.spec.label, {"reason": reason}))
            return tracker.spec.label

    # ------------------------------------------------------------------ courier retrieval

    async def retrievals(self, courier: Courier) -> list[dict[str, Any]]:
        """The courier's parcels to take back: refused ones, and those past the return deadline."""
        limit = self._now() - self.settings.return_after_hours * 3600
        rows = await self.db.read(lambda c: c.execute(
            "SELECT p.id, p.tracking_no, p.state, p.refuse_reason, p.stored_at, c.label FROM parcels p"
            " JOIN compartments c ON c.id = p.compartment_id WHERE p.courier_id = ?"
            " AND (p.state = 'refused' OR (p.state = 'stored' AND p.stored_at < ?)) ORDER BY c.label",
            (courier.id, limit)).fetchall())
        return [{"parcel_id": r["id"], "compartment": r["label"], "tracking": r["tracking_no"],
                 "reason": "refused" if r["state"] == "refused" else "expired",
                 "refuse_reason": r["refuse_reason"], "stored_at": r["stored_at"]} for r in rows]

    async def start_retrieval(self, courier: Courier, parcel_id: int) -> DoorTicket:
        """Open the compartment of one of the courier's refused or expired parcels."""
        listed = {r["parcel_id"]: r for r in await self.retrievals(courier)}
        if parcel_id not in listed:
            raise NotAllowed("not one of your parcels to take back")
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[str, str]:
            row = conn.execute("SELECT p.state, p.compartment_id, c.label, c.size FROM parcels p JOIN compartments c"
                               " ON c.id = p.compartment_id WHERE p.id = ?", (parcel_id,)).fetchone()
            if row["state"] not in ("refused", "stored"):
                raise FlowConflict(f"the parcel is {row['state']}")
            conn.execute("UPDATE parcels SET state = 'retrieving' WHERE id = ?", (parcel_id,))
            _intent(conn, row["compartment_id"], parcel_id, "retrieve", f"courier:{courier.login}", now)
            journal.append(conn, at=now, kind="retrieval_started", actor=f"courier:{courier.login}",
                           compartment=row["label"], parcel_id=parcel_id, reason=listed[parcel_id]["reason"])
            return row["label"], row["size"]

        async with self._lock:
            label, size = await self.db.write(tx)
            crashpoint("retrieve.intent")
            self._trackers[label] = _Tracker("retrieve", parcel_id, self.layout[label],
                                             open_deadline=self._mono() + self.settings.pickup_open_timeout,
                                             close_deadline=None)
            await self._pulse(self._trackers[label])
        return DoorTicket(parcel_id, label, size)

    # ------------------------------------------------------------------ outbound mail (postings)

    async def start_dropoff(self, posting_id: int, *, waybill: str, phone: str, size: str) -> DoorTicket:
        """A resident's paid, labelled parcel goes into an outbound compartment: reserve the smallest
        free one that fits, commit the parcel (no courier, no pickup code) and the intent, then open.

        ``phone`` is the sender's: staff can reach them if the collecting courier refuses the item.
        The parcel is stored when the door is seen closed with it inside; the posting then reads
        ``in_locker``.
        """
        phone = normalize_phone(phone)
        if size not in SIZES:
            raise InvalidInput("size", f"size must be one of {', '.join(SIZES)}")
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[int, str, str]:
            posting = conn.execute("SELECT state FROM postings WHERE id = ?", (posting_id,)).fetchone()
            if posting is None or posting["state"] != "printed":
                raise FlowConflict("this posting is not waiting to be put in the locker")
            live = conn.execute(f"SELECT 1 FROM parcels WHERE posting_id = ? AND state IN ({_marks(LIVE_STATES)})",
                                (posting_id, *LIVE_STATES)).fetchone()
            if live:
                raise FlowConflict("this posting is already in the locker")
            row = self._pick_compartment(conn, size)
            cur = conn.execute(
                """INSERT INTO parcels (tracking_no, courier_id, posting_id, phone_enc, phone_hmac, phone_masked,
                                        size, consent, compartment_id, state, created_at)
                   VALUES (?, NULL, ?, ?, ?, ?, ?, 'sender_posted', ?, 'depositing', ?)""",
                (waybill, posting_id, self.keys.encrypt("phone", phone), self.keys.mac("phone", phone),
                 mask_phone(phone), size, row["id"], now),
            )
            parcel_id = int(cur.lastrowid)
            conn.execute("UPDATE compartments SET state = 'reserved' WHERE id = ?", (row["id"],))
            _intent(conn, row["id"], parcel_id, "deposit", "resident", now)
            journal.append(conn, at=now, kind="dropoff_started", actor="resident", compartment=row["label"],
                           parcel_id=parcel_id, posting_id=posting_id, tracking=waybill, size=size)
            return parcel_id, row["label"], row["size"]

        async with self._lock:
            parcel_id, label, comp_size = await self.db.write(tx)
            crashpoint("dropoff.reserved")
            mono = self._mono()
            tracker = _Tracker("deposit", parcel_id, self.layout[label],
                               open_deadline=mono + self.settings.deposit_open_timeout,
                               close_deadline=mono + self.settings.deposit_close_timeout, posting_id=posting_id)
            self._trackers[label] = tracker
            await self._pulse(tracker)
        return DoorTicket(parcel_id, label, comp_size)

    async def _store_outbound(self, tracker: _Tracker) -> None:
        now = self._now()

        def tx(conn: sqlite3.Connection) -> dict[str, Any]:
            conn.execute("UPDATE parcels SET state = 'stored', stored_at = ? WHERE id = ?", (now, tracker.parcel_id))
            conn.execute("UPDATE compartments SET state = 'occupied' WHERE label = ?", (tracker.spec.label,))
            conn.execute("UPDATE postings SET state = 'in_locker' WHERE id = ? AND state = 'printed'",
                         (tracker.posting_id,))
            _resolve(conn, tracker.parcel_id, "opened", now)
            journal.append(conn, at=now, kind="dropoff_stored", actor="resident", compartment=tracker.spec.label,
                           parcel_id=tracker.parcel_id, posting_id=tracker.posting_id)
            row = conn.execute("SELECT waybill, leaves_at FROM postings WHERE id = ?", (tracker.posting_id,)).fetchone()
            return {"posting_id": tracker.posting_id, "waybill": row["waybill"], "leaves_at": row["leaves_at"]}

        detail = await self.db.write(tx)
        crashpoint("dropoff.stored")
        self._emit(FlowEvent("posting.stored", tracker.parcel_id, tracker.spec.label, detail))

    def _may_collect(self, courier: Courier) -> bool:
        allowed = self.settings.collect_carriers
        return not allowed or courier.carrier in allowed

    async def collections(self, courier: Courier) -> list[dict[str, Any]]:
        """Outbound parcels waiting for collection, for couriers of the carriers that collect mail
        here (every courier when none is configured). No sender or recipient details: the waybill,
        the compartment, where it goes, its weight."""
        if not self._may_collect(courier):
            return []
        rows = await self.db.read(lambda c: c.execute(
            "SELECT p.id, p.tracking_no, p.stored_at, c.label, s.dest_province, s.dest_city, s.weight_g,"
            " s.category, s.quantity, s.payment_state FROM parcels p JOIN compartments c ON c.id = p.compartment_id"
            " JOIN postings s ON s.id = p.posting_id WHERE p.state = 'stored' AND p.posting_id IS NOT NULL"
            " ORDER BY p.stored_at").fetchall())
        return [{"parcel_id": r["id"], "compartment": r["label"], "waybill": r["tracking_no"],
                 "destination": f"{r['dest_province'] or ''} {r['dest_city'] or ''}".strip(),
                 "weight_g": r["weight_g"], "category": r["category"], "quantity": r["quantity"],
                 "payment": r["payment_state"], "stored_at": r["stored_at"]} for r in rows]

    async def start_collection(self, courier: Courier, parcel_id: int) -> DoorTicket:
        """Open the compartment of an outbound parcel for a courier who collects it. The courier
        inspects the item at the open door (``record_inspection``); closing the door with the
        compartment empty hands it over."""
        listed = {r["parcel_id"] for r in await self.collections(courier)}
        if parcel_id not in listed:
            raise NotAllowed("not an outbound parcel you may collect")
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[str, str, int]:
            row = conn.execute("SELECT p.state, p.posting_id, p.compartment_id, c.label, c.size FROM parcels p"
                               " JOIN compartments c ON c.id = p.compartment_id WHERE p.id = ?",
                               (parcel_id,)).fetchone()
            if row["state"] != "stored":
                raise FlowConflict(f"the parcel is {row['state']}")
            conn.execute("UPDATE parcels SET state = 'retrieving' WHERE id = ?", (parcel_id,))
            _intent(conn, row["compartment_id"], parcel_id, "retrieve", f"courier:{courier.login}", now)
            journal.append(conn, at=now, kind="collection_started", actor=f"courier:{courier.login}",
                           compartment=row["label"], parcel_id=parcel_id, posting_id=row["posting_id"])
            return row["label"], row["size"], row["posting_id"]

        async with self._lock:
            label, size, posting_id = await self.db.write(tx)
            crashpoint("collect.intent")
            tracker = _Tracker("retrieve", parcel_id, self.layout[label],
                               open_deadline=self._mono() + self.settings.pickup_open_timeout,
                               close_deadline=None, posting_id=posting_id, courier=courier)
            self._trackers[label] = tracker
            await self._pulse(tracker)
        return DoorTicket(parcel_id, label, size)

    async def record_inspection(self, courier: Courier, parcel_id: int, *, passed: bool,
                                reason: str | None = None) -> str:
        """The collecting courier inspected the item at the open door (收寄验视). Passed: it leaves
        with them when the door closes empty. Refused (a prohibited or mismatched item): it leaves
        with them too, for the counter, and the posting is marked refused with the reason."""
        if not passed and reason not in INSPECTION_REASONS:
            raise InvalidInput("reason", f"reason must be one of {', '.join(INSPECTION_REASONS)}")
        async with self._lock:
            tracker = next((t for t in self._trackers.values()
                            if t.kind == "retrieve" and t.parcel_id == parcel_id and t.posting_id is not None), None)
            if tracker is None or tracker.courier is None or tracker.courier.id != courier.id:
                raise FlowConflict("you are not collecting this parcel")
            if not tracker.seen_open:
                raise FlowConflict("the door of this parcel is not open yet")
            tracker.inspection = "passed" if passed else str(reason)
            now = self._now()
            await self.db.write(lambda c: (
                c.execute("UPDATE postings SET inspection = ? WHERE id = ?", (tracker.inspection, tracker.posting_id)),
                journal.append(c, at=now, kind="inspection_recorded", actor=f"courier:{courier.login}",
                               compartment=tracker.spec.label, parcel_id=parcel_id, posting_id=tracker.posting_id,
                               result=tracker.inspection)))
            self._emit(FlowEvent("collect.inspected", parcel_id, tracker.spec.label, {"result": tracker.inspection}))
            return tracker.spec.label

    async def _dispatched(self, tracker: _Tracker) -> None:
        """An outbound parcel left with the collecting courier."""
        now = self._now()
        inspection = tracker.inspection or "not_recorded"
        posting_state = "inspection_refused" if inspection not in ("passed", "not_recorded") else "collected"
        courier_id = tracker.courier.id if tracker.courier else None
        actor = f"courier:{tracker.courier.login}" if tracker.courier else "courier"

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE parcels SET state = 'dispatched', courier_id = COALESCE(?, courier_id), ended_at = ?"
                         " WHERE id = ?", (courier_id, now, tracker.parcel_id))
            conn.execute("UPDATE compartments SET state = 'free' WHERE label = ? AND state = 'occupied'",
                         (tracker.spec.label,))
            conn.execute("UPDATE postings SET state = ?, end_reason = ?, ended_at = ? WHERE id = ?",
                         (posting_state, None if posting_state == "collected" else inspection, now,
                          tracker.posting_id))
            _resolve(conn, tracker.parcel_id, "opened", now)
            journal.append(conn, at=now, kind="dispatched", actor=actor, compartment=tracker.spec.label,
                           parcel_id=tracker.parcel_id, posting_id=tracker.posting_id, inspection=inspection)

        await self.db.write(tx)
        crashpoint("collect.dispatched")
        self._emit(FlowEvent("collect.dispatched", tracker.parcel_id, tracker.spec.label,
                             {"inspection": inspection}))

    # ------------------------------------------------------------------ technician

    async def technician_open(self, actor: str, label: str, reason: str) -> None:
        """Open one door for maintenance. Journaled with who and why; custody does not change, and
        the open is not an alarm. (Opening every door at once lives only in the maintenance module.)"""
        if label not in self.layout:
            raise InvalidInput("compartment", f"no compartment {label}")
        if not reason.strip():
            raise InvalidInput("reason", "a technician open needs a reason")
        if label in self._trackers:
            raise FlowConflict(f"compartment {label} is in use")
        now = self._now()

        def tx(conn: sqlite3.Connection) -> int:
            cid = conn.execute("SELECT id FROM compartments WHERE label = ?", (label,)).fetchone()[0]
            intent = _intent(conn, cid, None, "technician", actor, now)
            journal.append(conn, at=now, kind="technician_open", actor=actor, compartment=label, reason=reason)
            return intent

        async with self._lock:
            intent_id = await self.db.write(tx)
            crashpoint("technician.intent")
            tracker = _Tracker("technician", None, self.layout[label], open_deadline=self._mono() + 30.0,
                               close_deadline=None, intent_id=intent_id)
            self._trackers[label] = tracker
            await self._pulse(tracker)

    async def clear_check(self, actor: str, label: str, note: str) -> str:
        """A technician inspected a compartment flagged "check required" and found it in order.

        Its door must read closed. It becomes occupied again if a parcel still belongs in it
        (stored or refused), otherwise free. Journaled with who and what they found; the history of
        why it was flagged stays in the journal (an insider hiding a theft behind "fault" is the
        case this guards against).
        """
        if label not in self.layout:
            raise InvalidInput("compartment", f"no compartment {label}")
        if not note.strip():
            raise InvalidInput("note", "say what the inspection found")
        if self.doors.reading(self.layout[label].address).door is not DoorState.CLOSED:
            raise FlowConflict(f"the door of {label} does not read closed")
        now = self._now()

        def tx(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT id, state FROM compartments WHERE label = ?", (label,)).fetchone()
            if row["state"] != "check_required":
                raise FlowConflict(f"compartment {label} is {row['state']}, not waiting for a check")
            parcel = conn.execute("SELECT id, state FROM parcels WHERE compartment_id = ? AND state IN"
                                  " ('stored', 'refused')", (row["id"],)).fetchone()
            state = "occupied" if parcel else "free"
            conn.execute("UPDATE compartments SET state = ? WHERE id = ?", (state, row["id"]))
            journal.append(conn, at=now, kind="check_cleared", actor=actor, compartment=label,
                           parcel_id=parcel["id"] if parcel else None, now_state=state, note=note)
            return state

        async with self._lock:
            return await self.db.write(tx)

    # ------------------------------------------------------------------ doors

    async def _pulse(self, tracker: _Tracker) -> None:
        """One unlock pulse after the intent is committed. A failure to send is an unknown outcome:
        the flow ends and the door keeps being watched."""
        spec = tracker.spec
        self._last_unlock[spec.address] = self._mono()
        # A door already reading open (a broken sensor, a door never shut) is still pulsed.
        if self.doors.reading(spec.address).door is DoorState.OPEN:
            tracker.seen_open = True
        try:
            reply = await self.doors.unlock(spec.address)
        except HalError as err:
            log.error("unlock of %s could not be sent: %s", spec.label, err)
            error = type(err).__name__
            await self.db.write(lambda c: journal.append(
                c, at=self._now(), kind="unlock_not_sent", actor="system", compartment=spec.label,
                parcel_id=tracker.parcel_id, error=error))
            await self._abandon(tracker, "lock_bus_error")
            raise DoorUnavailable(f"the lock of {spec.label} did not take the command") from err
        crashpoint(f"{tracker.kind}.unlock_sent")
        if reply is UnlockReply.REFUSED and not tracker.seen_open:
            # the board says it did not pulse: no need to wait for a door that will not open
            await self.db.write(lambda c: journal.append(
                c, at=self._now(), kind="unlock_refused_by_board", actor="system", compartment=spec.label,
                parcel_id=tracker.parcel_id))
            await self._abandon(tracker, "lock_bus_error")
            raise DoorUnavailable(f"the board of {spec.label} refused the unlock")

    async def _abandon(self, tracker: _Tracker, reason: str) -> None:
        """A flow whose door never opened (or whose unlock never left): undo what it reserved."""
        self._trackers.pop(tracker.spec.label, None)
        if tracker.kind == "deposit":
            state = "check_required" if reason == "door_not_opened" else "free"
            await self._end_deposit(tracker.spec.label, tracker.parcel_id, reason, compartment_state=state)
        elif tracker.kind in ("pickup", "retrieve"):
            await self._back_to_waiting(tracker, reason)
        else:
            await self._resolve_technician(tracker, "not_opened")

    async def _back_to_waiting(self, tracker: _Tracker, reason: str) -> None:
        """The parcel waits again as before (stored, or refused), its code still valid."""
        now = self._now()

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE parcels SET state = CASE WHEN refuse_reason IS NULL THEN 'stored' ELSE 'refused' END"
                         " WHERE id = ? AND state IN ('picking_up', 'retrieving')", (tracker.parcel_id,))
            _resolve(conn, tracker.parcel_id, "opened" if tracker.seen_open else "not_opened", now)
            journal.append(conn, at=now, kind=f"{tracker.kind}_{reason}", actor="system",
                           compartment=tracker.spec.label, parcel_id=tracker.parcel_id)

        await self.db.write(tx)
        self._emit(FlowEvent(f"{tracker.flow}.{reason}", tracker.parcel_id, tracker.spec.label))

    async def _finish(self, tracker: _Tracker, item: bool | None) -> None:
        """The door closed after having been seen open: decide what the closing meant."""
        self._trackers.pop(tracker.spec.label, None)
        if tracker.kind == "deposit":
            if item is False:
                await self._end_deposit(tracker.spec.label, tracker.parcel_id, "closed_empty")
            else:
                await self._store(tracker)
        elif tracker.kind == "pickup":
            if tracker.refuse_reason and item is not False:
                await self._refused(tracker)
            elif item is True:
                await self._back_to_waiting(tracker, "not_taken")
            else:
                await self._leaves(tracker, "collected", "resident", "pickup.collected")
        elif tracker.kind == "retrieve":
            if item is True:
                await self._back_to_waiting(tracker, "not_taken")
            elif tracker.posting_id is not None:
                await self._dispatched(tracker)
            else:
                await self._leaves(tracker, "returned", "courier", "retrieve.returned")
        else:
            await self._resolve_technician(tracker, "opened")

    async def _leaves(self, tracker: _Tracker, state: str, actor: str, event: str) -> None:
        """The parcel left the locker (collected by the resident, returned to the courier)."""
        now = self._now()

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(f"UPDATE parcels SET state = '{state}', code_hmac = NULL, token_hmac = NULL, ended_at = ?"
                         " WHERE id = ?", (now, tracker.parcel_id))
            conn.execute("UPDATE compartments SET state = 'free' WHERE label = ? AND state = 'occupied'",
                         (tracker.spec.label,))
            _resolve(conn, tracker.parcel_id, "opened", now)
            journal.append(conn, at=now, kind=state, actor=actor, compartment=tracker.spec.label,
                           parcel_id=tracker.parcel_id)

        await self.db.write(tx)
        crashpoint(event)
        self._emit(FlowEvent(event, tracker.parcel_id, tracker.spec.label))

    async def _refused(self, tracker: _Tracker) -> None:
        now = self._now()

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE parcels SET state = 'refused', refuse_reason = ?, code_hmac = NULL, token_hmac = NULL"
                         " WHERE id = ?", (tracker.refuse_reason, tracker.parcel_id))
            _resolve(conn, tracker.parcel_id, "opened", now)
            journal.append(conn, at=now, kind="refused", actor="resident", compartment=tracker.spec.label,
                           parcel_id=tracker.parcel_id, reason=tracker.refuse_reason)

        await self.db.write(tx)
        crashpoint("pickup.refused")
        self._emit(FlowEvent("pickup.refused", tracker.parcel_id, tracker.spec.label,
                             {"reason": tracker.refuse_reason}))

    async def _resolve_technician(self, tracker: _Tracker, outcome: str) -> None:
        now = self._now()
        await self.db.write(lambda c: c.execute(
            "UPDATE door_intents SET outcome = COALESCE(outcome, ?), resolved_at = ? WHERE id = ?",
            (outcome, now, tracker.intent_id)))
        self._emit(FlowEvent(f"technician.{outcome}", None, tracker.spec.label))

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
        after, before = change.after, change.before
        if after.door is DoorState.OPEN:
            self._open_since.setdefault(spec.label, self._mono())
        else:
            self._open_since.pop(spec.label, None)
            self._alarmed_at.pop(spec.label, None)
        self._emit(FlowEvent("door.changed", None, spec.label, {"door": after.door.value, "item": after.item}))
        tracker = self._trackers.get(spec.label)
        if tracker is None:
            recent = self._mono() - self._last_unlock.get(change.address, -1e9) < self.settings.uncommanded_grace
            if before.door is DoorState.CLOSED and after.door is DoorState.OPEN and not recent:
                await self._uncommanded_open(spec)
            return
        if after.door is DoorState.OPEN and not tracker.seen_open:
            tracker.seen_open = True
            now = self._now()

            def opened(c: sqlite3.Connection) -> None:
                c.execute("UPDATE door_intents SET outcome = 'opened' WHERE resolved_at IS NULL AND"
                          " (id = ? OR (? IS NOT NULL AND parcel_id = ?))",
                          (tracker.intent_id, tracker.parcel_id, tracker.parcel_id))
                journal.append(c, at=now, kind="door_opened", actor="system", compartment=spec.label,
                               parcel_id=tracker.parcel_id, purpose=tracker.kind)

            await self.db.write(opened)
            crashpoint(f"{tracker.kind}.door_open_recorded")
            self._emit(FlowEvent(f"{tracker.flow}.door_open", tracker.parcel_id, spec.label))
        elif after.door is DoorState.CLOSED and tracker.seen_open:
            await self._finish(tracker, after.item)

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
            await self.check_deadlines()

    async def check_deadlines(self) -> None:
        """End flows whose door never opened or never closed in time; raise door-left-open alarms.
        Runs four times a second; tests with a fake clock call it directly."""
        mono = self._mono()
        async with self._lock:
            for tracker in list(self._trackers.values()):
                if not tracker.seen_open and mono > tracker.open_deadline:
                    await self._abandon(tracker, "door_not_opened")
                elif tracker.close_deadline is not None and mono > tracker.close_deadline:
                    await self._end_deposit(tracker.spec.label, tracker.parcel_id, "door_not_closed")
            await self._door_left_open_alarms(mono)

    async def _door_left_open_alarms(self, mono: float) -> None:
        """A door open longer than the limit raises an alarm, repeated while it stays open (T-C3)."""
        s = self.settings
        for label, since in list(self._open_since.items()):
            last = self._alarmed_at.get(label)
            if mono - since < s.door_left_open_alarm or (last is not None and mono - last < s.door_left_open_repeat):
                continue
            self._alarmed_at[label] = mono
            now = self._now()
            await self.db.write(lambda c, lb=label, t=since: journal.append(
                c, at=now, kind="alarm_door_left_open", actor="system", compartment=lb, open_s=round(mono - t)))
            log.warning("ALARM: door %s open for %.0f s", label, mono - since)
            self._emit(FlowEvent("alarm.door_left_open", None, label, {"seconds": round(mono - since)}))

    async def _housekeeping(self) -> None:
        while True:
            try:
                await self._send_reminders()
            except Exception:  # a failed round is logged and tried again next time
                log.exception("housekeeping round failed")
            await asyncio.sleep(self.settings.housekeeping_interval)

    # ------------------------------------------------------------------ start-up reconciliation

    async def _reconcile(self) -> None:
        """Compare the database with what the doors say, after a restart or a power cut.

        Interrupted deposits are cancelled (their compartment needs a check unless it reads closed
        and empty); interrupted pickups and retrievals whose door is open are watched to the end,
        otherwise the parcel waits again with its code still valid; notices that were never sent get
        a fresh code. No lock is pulsed.
        """
        now = self._now()
        readings = {spec.label: self.doors.reading(spec.address) for spec in self.layout.values()}
        resumed: list[_Tracker] = []

        def tx(conn: sqlite3.Connection) -> list[int]:
            for row in conn.execute("SELECT p.id, c.label, c.id AS cid FROM parcels p JOIN compartments c"
                                    " ON c.id = p.compartment_id WHERE p.state = 'depositing'").fetchall():
                reading = readings.get(row["label"])
                clean = reading is not None and reading.door is DoorState.CLOSED and reading.item is False
                conn.execute("UPDATE parcels SET state = 'cancelled', ended_at = ? WHERE id = ?", (now, row["id"]))
                conn.execute("UPDATE compartments SET state = ? WHERE id = ?",
                             ("free" if clean else "check_required", row["cid"]))
                journal.append(conn, at=now, kind="deposit_interrupted", actor="system", compartment=row["label"],
                               parcel_id=row["id"], door=reading.door.value if reading else "unknown")
            for row in conn.execute("SELECT p.id, p.state, p.posting_id, c.label FROM parcels p JOIN compartments c"
                                    " ON c.id = p.compartment_id WHERE p.state IN ('picking_up', 'retrieving')"
                                    ).fetchall():
                kind = "pickup" if row["state"] == "picking_up" else "retrieve"
                reading = readings.get(row["label"])
                spec = self.layout.get(row["label"])
                if reading is not None and reading.door is DoorState.OPEN and spec is not None:
                    # an outbound parcel's collection resumes as a collection: it ends 'dispatched'
                    resumed.append(_Tracker(kind, row["id"], spec, open_deadline=0.0, close_deadline=None,
                                            seen_open=True, posting_id=row["posting_id"],
                                            courier=_collector(conn, row["id"]) if row["posting_id"] else None,
                                            inspection=_inspection(conn, row["posting_id"])))
                    journal.append(conn, at=now, kind=f"{kind}_resumed", actor="system", compartment=row["label"],
                                   parcel_id=row["id"])
                else:
                    conn.execute("UPDATE parcels SET state = CASE WHEN refuse_reason IS NULL THEN 'stored'"
                                 " ELSE 'refused' END WHERE id = ?", (row["id"],))
                    if reading is None or reading.door is DoorState.UNKNOWN:  # cannot see the door: a check
                        conn.execute("UPDATE compartments SET state = 'check_required' WHERE label = ?",
                                     (row["label"],))
                    journal.append(conn, at=now, kind=f"{kind}_interrupted", actor="system",
                                   compartment=row["label"], parcel_id=row["id"],
                                   door=reading.door.value if reading else "unknown")
            for row in conn.execute("SELECT p.id, c.label, c.id AS cid FROM parcels p JOIN compartments c"
                                    " ON c.id = p.compartment_id WHERE p.state IN ('stored', 'refused')").fetchall():
                reading = readings.get(row["label"])
                if reading is not None and reading.door is DoorState.OPEN:
                    conn.execute("UPDATE compartments SET state = 'check_required' WHERE id = ? AND state = 'occupied'",
                                 (row["cid"],))
                    journal.append(conn, at=now, kind="door_open_at_start", actor="system",
                                   compartment=row["label"], parcel_id=row["id"])
            # every intent not being watched to its end is resolved; what nobody saw is "unknown"
            watched = [t.parcel_id for t in resumed]
            conn.execute("UPDATE door_intents SET outcome = COALESCE(outcome, 'unknown'), resolved_at = ?"
                         f" WHERE resolved_at IS NULL AND (parcel_id IS NULL OR parcel_id NOT IN ({_marks(watched)}))",
                         (now, *watched))
            pending = [r[0] for r in conn.execute(
                "SELECT DISTINCT n.parcel_id FROM notices n JOIN parcels p ON p.id = n.parcel_id"
                " WHERE n.status = 'pending' AND n.kind = 'pickup' AND p.state = 'stored'")]
            conn.execute("UPDATE notices SET status = 'failed' WHERE status = 'pending' AND kind = 'reminder'")
            return pending

        pending = await self.db.write(tx)
        for tracker in resumed:
            self._trackers[tracker.spec.label] = tracker
        for parcel_id in pending:
            code, token = await self.db.write(lambda c, pid=parcel_id: self._reissue(c, pid, now, actor="system"))
            self._spawn(self._send_pickup_notice(parcel_id, code, token), f"notice-{parcel_id}")

    # ------------------------------------------------------------------ views

    async def compartments(self, courier: Courier | None = None) -> list[dict[str, Any]]:
        """Every compartment with its live door state. Parcel details only for the courier who owns
        them; phone numbers only masked."""
        rows = await self.db.read(lambda c: c.execute(
            "SELECT c.label, c.size, c.state, p.id AS parcel_id, p.state AS parcel_state, p.tracking_no,"
            " p.courier_id, p.phone_masked, p.stored_at, p.free_until, p.refuse_reason FROM compartments c"
            f" LEFT JOIN parcels p ON p.compartment_id = c.id AND p.state IN ({_marks(LIVE_STATES)})"
            " ORDER BY c.label", LIVE_STATES).fetchall())
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
                    "refuse_reason": row["refuse_reason"] if own else None,
                    "stored_at": row["stored_at"], "free_until": row["free_until"], "own": own,
                }
            out.append(item)
        return out

    async def parcel_state(self, parcel_id: int, *, courier: Courier | None = None) -> str | None:
        """The parcel's state. Given a ``courier``, only their own parcels: another's (or none) is
        ``NotAllowed``, so couriers cannot probe each other's parcels."""
        row = await self.db.read(lambda c: c.execute("SELECT state, courier_id FROM parcels WHERE id = ?",
                                                     (parcel_id,)).fetchone())
        if courier is not None and (row is None or row["courier_id"] != courier.id):
            raise NotAllowed("not your parcel")
        return row["state"] if row else None

    def door_of(self, label: str) -> str:
        spec = self.layout.get(label)
        return self.doors.reading(spec.address).door.value if spec else "unknown"


_SIZE_RANK = "CASE size WHEN 'S' THEN 0 WHEN 'M' THEN 1 WHEN 'L' THEN 2 ELSE 3 END"


def _marks(values: tuple[str, ...] | list[str]) -> str:
    return ",".join("?" * len(values))


def _put(conn: sqlite3.Connection, name: str, value: float) -> None:
    conn.execute("INSERT INTO counters (name, value) VALUES (?, ?)"
                 " ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))


def _intent(conn: sqlite3.Connection, compartment_id: int, parcel_id: int | None, purpose: str, actor: str,
            now: float) -> int:
    cur = conn.execute("INSERT INTO door_intents (compartment_id, parcel_id, purpose, actor, created_at)"
                       " VALUES (?, ?, ?, ?, ?)", (compartment_id, parcel_id, purpose, actor, now))
    return int(cur.lastrowid)


def _inspection(conn: sqlite3.Connection, posting_id: int | None) -> str | None:
    """The inspection a courier recorded at the open door before a restart (kept on the posting)."""
    if posting_id is None:
        return None
    row = conn.execute("SELECT inspection FROM postings WHERE id = ?", (posting_id,)).fetchone()
    return row[0] if row else None


def _collector(conn: sqlite3.Connection, parcel_id: int) -> Courier | None:
    """The courier whose unresolved door intent opened this outbound parcel's door (a resumed collection)."""
    row = conn.execute("SELECT a.id, a.login, a.name, a.carrier FROM door_intents i JOIN accounts a"
                       " ON i.actor = 'courier:' || a.login WHERE i.parcel_id = ? AND i.resolved_at IS NULL"
                       " ORDER BY i.id DESC LIMIT 1", (parcel_id,)).fetchone()
    return Courier(row[0], row[1], row[2], row[3]) if row else None


def _resolve(conn: sqlite3.Connection, parcel_id: int | None, outcome: str, now: float) -> None:
    conn.execute("UPDATE door_intents SET outcome = COALESCE(outcome, ?), resolved_at = ?"
                 " WHERE parcel_id = ? AND resolved_at IS NULL", (outcome, now, parcel_id))
