"""One life of the service for the crash test (T-A1): the real custody stack plus the people using it.

:func:`run` is what a zygote child runs (see ``zygote.py``). It assembles the station the way
``postkiosk.service.Station.start`` does, minus the web app: ``Config`` -> ``lock_bank`` over
``socket://`` to the wall process, ``Database`` on a real file, ``DeviceKeys`` beside it,
``DoorMonitor``, the webhook SMS gateway (the driver plays the residents' phones), ``Custody`` with
short timeouts. ``Custody.start()`` reconciles whatever the previous (killed) life left behind; a
quick check then asserts that reconciliation left nothing dangling, and a seeded workload runs:
couriers depositing, residents picking up with codes and QR tokens (and some wrong codes), refusing
at the open door, couriers taking back refused and expired parcels, residents dropping off outbound
mail (a posting the kiosk has paid and labelled), couriers collecting it with an inspection at the
open door, technician opens, and the person at the wall putting parcels in, taking them out and
closing doors through the wall's HTTP API.

The random choices are seeded (``spec["seed"]``); timing is real, so a life is not bit-for-bit
repeatable. The process ends when the driver kills it, when it kills itself at a crashpoint
(``POSTKIOSK_CRASH_AT``), or after ``spec["steps"]`` actions (a clean stop).

Exit codes: 0 clean stop; 70 an unexpected exception (a finding: the traceback is in the child
log). What reconciliation left dangling is appended to ``spec["findings"]`` (JSON lines).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

import httpx

from hal.codes import make_s10
from hal.lockbank import lock_bank
from hal.sms import sms_gateway
from lockers.accounts import Courier
from lockers.custody import (
    INSPECTION_REASONS,
    REFUSE_REASONS,
    SIZES,
    CompartmentSpec,
    Custody,
    CustodySettings,
    FlowEvent,
)
from lockers.db import Database
from lockers.doors import DoorMonitor
from lockers.errors import CustodyError
from lockers.keys import DeviceKeys
from postkiosk.config import Config

log = logging.getLogger("crash.workload")

REFUSED = object()  # a custody call refused for a domain reason

EXIT_OK = 0
EXIT_ERROR = 70

#: door poll pause (Station uses DoorMonitor's default of 50 ms; shorter keeps a life short)
POLL_INTERVAL = 0.02
#: how long a person waits for the kiosk to report their door open, or a flow to finish
OPEN_WAIT = 1.0
FINISH_WAIT = 1.0

#: which flows a life favours; named crash plans pick the flow that reaches their point
FOCUS_WEIGHTS: dict[str | None, dict[str, float]] = {
    None: {"deposit": 4, "pickup": 4, "retrieve": 1.5, "technician": 1, "wrong_code": 0.4, "vandal": 0.15,
           "jam": 0.15, "tidy": 0.5, "dropoff": 1.5, "collect": 2},
    "deposit": {"deposit": 8, "pickup": 1, "retrieve": 0.5, "technician": 0.3, "tidy": 0.5},
    "pickup": {"deposit": 3, "pickup": 6, "retrieve": 0.3, "technician": 0.2, "tidy": 0.5},
    "retrieve": {"deposit": 3, "pickup": 2, "retrieve": 6, "technician": 0.2, "tidy": 0.5},
    "technician": {"deposit": 1, "pickup": 1, "retrieve": 0.3, "technician": 8, "tidy": 0.5},
    "dropoff": {"dropoff": 8, "collect": 1, "deposit": 1, "pickup": 0.5, "technician": 0.2, "tidy": 0.5},
    "collect": {"dropoff": 3, "collect": 6, "deposit": 1, "pickup": 0.5, "technician": 0.2, "tidy": 0.5},
    "deposit_only": {"deposit": 1},
}  # "stock" (see Life.stock) deposits and drops off, the ordinary way; "idle" only starts (reconciles) and stops

#: what the kiosk's notice is versioned as (lockers.posting.NOTICE_VERSION; that module is not imported
#: here: it pulls in the address data and the label renderer, which no life needs)
NOTICE_VERSION = "2026-12-05"
#: the S10 service indicator of the workload's waybills (the serial is the posting id: unique per epoch)
WAYBILL_SERVICE = "KA"


def custody_settings(cfg: Config) -> CustodySettings:
    """The configured settings with timeouts short enough for thousands of lives. Reminders fall due
    one second after storing and parcels count as expired (retrievable) after two seconds."""
    base = cfg.custody_settings()
    return dataclasses.replace(
        base,
        free_storage_hours=base.reminder_before_hours + 1 / 3600,
        return_after_hours=2 / 3600,
        deposit_open_timeout=0.6,
        deposit_close_timeout=2.0,
        pickup_open_timeout=0.6,
        door_left_open_alarm=1.0,
        notice_retry_delays=(0.05, 0.1),
        wrong_code_pause=0.3,
        station_failures_per_hour=1_000_000,
        housekeeping_interval=0.5,
    )


def station_config(spec: dict[str, Any]) -> Config:
    return Config(database={"path": spec["db"]},
                  sms={"backend": "webhook", "url": spec["sms_url"], "timeout": 2.0},
                  banks=[{"name": "A", "url": spec["bus"]}])


class Events:
    """Every FlowEvent of this life, numbered, so a person can wait for one that may already have
    happened (``since`` = :attr:`seq` read before the action)."""

    def __init__(self, custody: Custody) -> None:
        self._queue = custody.subscribe()
        self.history: deque[tuple[int, FlowEvent]] = deque(maxlen=500)
        self.seq = 0
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pump(), name="crash-events")

    async def _pump(self) -> None:
        while True:
            event = await self._queue.get()
            self.seq += 1
            self.history.append((self.seq, event))
            self._changed.set()

    def _find(self, kinds: set[str], label: str | None, since: int) -> FlowEvent | None:
        for seq, event in self.history:
            if seq > since and event.kind in kinds and (label is None or event.compartment == label):
                return event
        return None

    async def wait(self, kinds: set[str], label: str | None, since: int, timeout: float) -> FlowEvent | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self._find(kinds, label, since)
            if found is not None:
                return found
            left = deadline - loop.time()
            if left <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


class Life:
    """The people at the station during one life of the service."""

    def __init__(self, spec: dict[str, Any], custody: Custody, layout: list[CompartmentSpec],
                 couriers: list[Courier], wall: httpx.AsyncClient, phone: httpx.AsyncClient) -> None:
        self.spec = spec
        self.custody = custody
        self.layout = {s.label: s for s in layout}
        self.labels = sorted(self.layout)
        self.couriers = couriers
        self.wall = wall
        self.phone = phone
        self.events = Events(custody)
        self.refusals: dict[str, int] = {}

    # -- the person at the wall -------------------------------------------------------------

    async def hand(self, label: str, action: str) -> bool:
        spec = self.layout[label]
        response = await self.wall.post(f"/sim/api/{spec.bank}/{spec.board}/{spec.channel}/{action}")
        return response.status_code == 200

    async def pause(self, rnd: random.Random, top: float = 0.03) -> None:
        await asyncio.sleep(rnd.uniform(0.0, top))

    async def attempt(self, what: str, call: Awaitable[Any]) -> Any:
        """A custody call that may be refused for a domain reason (counted, not an error):
        its result, or :data:`REFUSED`."""
        try:
            return await call
        except CustodyError as err:
            key = f"{what}:{type(err).__name__}"
            self.refusals[key] = self.refusals.get(key, 0) + 1
            return REFUSED

    def door_open(self, label: str) -> bool:
        return self.custody.door_of(label) == "open"

    # -- flows ------------------------------------------------------------------------------

    async def deposit(self, rnd: random.Random, *, store: bool = False) -> None:
        """A courier deposits; ``store``: the ordinary way (door opens, parcel in, door shut)."""
        courier = rnd.choice(self.couriers)
        tracking = f"{rnd.choice(('SF', 'YT', 'ZTO', 'JD', 'EMS'))}{rnd.randrange(10 ** 11, 10 ** 12)}"
        phone = f"1{rnd.randint(3, 9)}{rnd.randrange(10 ** 9):09d}"
        size = rnd.choices(SIZES, weights=(5, 3, 2, 1))[0]
        consent = rnd.random() < 0.85
        since = self.events.seq
        ticket = await self.attempt("deposit", self.custody.start_deposit(
            courier, tracking=tracking, phone=phone, size=size, consent=consent, locker_is_address=not consent))
        if ticket is REFUSED:
            return
        label = ticket.compartment
        choice = 0.5 if store else rnd.random()
        if choice < 0.04:  # the courier gives up at once
            await self.attempt("cancel", self.custody.cancel_deposit(courier, ticket.parcel_id))
            if await self.events.wait({"deposit.door_open"}, label, since, 0.3) or self.door_open(label):
                await self.pause(rnd)
                await self.hand(label, "close")
            return
        if not await self.events.wait({"deposit.door_open"}, label, since, OPEN_WAIT):
            return
        await self.pause(rnd)
        if choice < 0.80:
            await self.hand(label, "put")
            await self.pause(rnd)
            if not store and rnd.random() < 0.03:
                return  # walks away with the door open: the close deadline cancels the deposit
            await self.hand(label, "close")
            if await self.events.wait({"deposit.stored", "deposit.cancelled"}, label, since, FINISH_WAIT):
                if store or rnd.random() < 0.5:
                    await self.events.wait({"notice.sent", "notice.failed"}, label, since, 0.5)
        elif choice < 0.90:
            await self.hand(label, "close")  # closed empty: nothing stored
            await self.events.wait({"deposit.cancelled"}, label, since, FINISH_WAIT)
        else:
            await self.attempt("cancel", self.custody.cancel_deposit(courier, ticket.parcel_id))
            await self.pause(rnd)
            await self.hand(label, "close")

    async def codes(self) -> dict[str, dict[str, str]]:
        response = await self.phone.get("/codes")
        response.raise_for_status()
        return response.json()

    async def wrong_code(self, rnd: random.Random) -> None:
        await self.attempt("pickup", self.custody.pickup(f"{rnd.randrange(10 ** 8):08d}"))

    async def pickup(self, rnd: random.Random) -> None:
        codes = await self.codes()
        if not codes:
            await self.deposit(rnd)
            return
        label = rnd.choice(sorted(codes))
        entry = codes[label]
        since = self.events.seq
        if rnd.random() < 0.4:
            ticket = await self.attempt("pickup", self.custody.pickup(token=entry["token"]))
        else:
            ticket = await self.attempt("pickup", self.custody.pickup(entry["code"]))
        if ticket is REFUSED:
            return
        label = ticket.compartment
        if not await self.events.wait({"pickup.door_open"}, label, since, OPEN_WAIT):
            return
        await self.pause(rnd)
        choice = rnd.random()
        if choice < 0.70:
            await self.hand(label, "take")
            await self.pause(rnd)
            await self.hand(label, "close")
            await self.events.wait({"pickup.collected", "pickup.not_taken"}, label, since, FINISH_WAIT)
        elif choice < 0.88:
            await self.attempt("refuse", self.custody.refuse(ticket.parcel_id, rnd.choice(REFUSE_REASONS)))
            await self.pause(rnd)
            await self.hand(label, "close")
            await self.events.wait({"pickup.refused", "pickup.collected", "pickup.not_taken"}, label, since,
                                   FINISH_WAIT)
        else:
            await self.hand(label, "close")  # looked, left it there
            await self.events.wait({"pickup.not_taken"}, label, since, FINISH_WAIT)

    async def retrieve(self, rnd: random.Random) -> None:
        couriers = list(self.couriers)
        rnd.shuffle(couriers)
        for courier in couriers:
            listed = await self.custody.retrievals(courier)
            if listed:
                break
        else:
            await self.deposit(rnd)
            return
        item = rnd.choice(listed)
        since = self.events.seq
        ticket = await self.attempt("retrieve", self.custody.start_retrieval(courier, item["parcel_id"]))
        if ticket is REFUSED:
            return
        label = ticket.compartment
        if not await self.events.wait({"retrieve.door_open"}, label, since, OPEN_WAIT):
            return
        await self.pause(rnd)
        if rnd.random() < 0.85:
            await self.hand(label, "take")
            await self.pause(rnd)
        await self.hand(label, "close")
        await self.events.wait({"retrieve.returned", "retrieve.not_taken"}, label, since, FINISH_WAIT)

    async def printed_posting(self, rnd: random.Random) -> tuple[int, str, str]:
        """A posting as ``PostingDesk`` leaves it once the label is printed: paid, labelled, waiting
        for the drop-off door. Half the time one left 'printed' by a drop-off that was interrupted
        (cancelled, or reconciled after a kill) is taken again, as the kiosk offers the door again.
        Returns (posting id, waybill, size)."""
        now = time.time()
        reuse = rnd.random() < 0.5

        def tx(conn: sqlite3.Connection) -> tuple[int, str, str]:
            if reuse:
                row = conn.execute(
                    "SELECT s.id, s.waybill, s.size FROM postings s WHERE s.state = 'printed' AND NOT EXISTS"
                    " (SELECT 1 FROM parcels p WHERE p.posting_id = s.id AND p.state IN"
                    " ('depositing', 'stored', 'retrieving')) ORDER BY s.id LIMIT 1").fetchone()
                if row is not None:
                    return int(row[0]), str(row[1]), str(row[2])
            size = rnd.choices(SIZES, weights=(5, 3, 2, 1))[0]
            province, city = rnd.choice((("广东省", "深圳市"), ("浙江省", "杭州市"), ("四川省", "成都市")))
            cur = conn.execute(
                "INSERT INTO postings (state, notice_version, created_at, dest_province, dest_city, category,"
                " quantity, size, weight_g, zone, price_fen, payment_method, payment_state, paid_at, printed_at)"
                " VALUES ('printed', ?, ?, ?, ?, 'documents', 1, ?, ?, '1', 1200, 'counter', 'paid', ?, ?)",
                (NOTICE_VERSION, now, province, city, size, rnd.randrange(50, 5000), now, now))
            posting_id = int(cur.lastrowid)
            waybill = make_s10(WAYBILL_SERVICE, f"{posting_id:08d}")
            conn.execute("UPDATE postings SET waybill = ? WHERE id = ?", (waybill, posting_id))
            return posting_id, waybill, size

        return await self.custody.db.write(tx)

    async def dropoff(self, rnd: random.Random, *, store: bool = False) -> None:
        """A resident puts a posted parcel into an outbound compartment; ``store``: the ordinary way.
        Otherwise they may close the door on an empty compartment, put it in and walk away with the
        door open, or give up and leave without touching the open door (the close deadline cancels
        the drop-off; the posting waits 'printed' for another try)."""
        posting_id, waybill, size = await self.printed_posting(rnd)
        phone = f"1{rnd.randint(3, 9)}{rnd.randrange(10 ** 9):09d}"
        since = self.events.seq
        ticket = await self.attempt("dropoff", self.custody.start_dropoff(posting_id, waybill=waybill, phone=phone,
                                                                          size=size))
        if ticket is REFUSED:
            return
        label = ticket.compartment
        choice = 0.5 if store else rnd.random()
        if choice < 0.03:
            return  # gives up before the door even opens
        if not await self.events.wait({"posting.door_open"}, label, since, OPEN_WAIT):
            return
        await self.pause(rnd)
        if choice < 0.82:
            await self.hand(label, "put")
            await self.pause(rnd)
            if not store and rnd.random() < 0.03:
                return  # walks away with the door open: the close deadline cancels the drop-off
            await self.hand(label, "close")
            await self.events.wait({"posting.stored", "posting.cancelled"}, label, since, FINISH_WAIT)
        elif choice < 0.94:
            await self.hand(label, "close")  # closed empty: nothing stored
            await self.events.wait({"posting.cancelled"}, label, since, FINISH_WAIT)
        # else: gives up at the open door; the close deadline cancels it and someone tidies the door

    async def collect(self, rnd: random.Random) -> None:
        """A courier collects outbound mail: opens its door, sometimes records the inspection (passed,
        or refused with a reason), then takes the item and shuts the door, or leaves it in."""
        couriers = list(self.couriers)
        rnd.shuffle(couriers)
        for courier in couriers:
            listed = await self.custody.collections(courier)
            if listed:
                break
        else:
            await self.dropoff(rnd, store=True)
            return
        item = rnd.choice(listed)
        since = self.events.seq
        ticket = await self.attempt("collect", self.custody.start_collection(courier, item["parcel_id"]))
        if ticket is REFUSED:
            return
        label = ticket.compartment
        if not await self.events.wait({"collect.door_open"}, label, since, OPEN_WAIT):
            return
        await self.pause(rnd)
        verdict = rnd.random()
        if verdict < 0.5:
            await self.attempt("inspect", self.custody.record_inspection(courier, ticket.parcel_id, passed=True))
        elif verdict < 0.65:
            reason = "prohibited" if rnd.random() < 0.7 else rnd.choice(INSPECTION_REASONS)
            await self.attempt("inspect", self.custody.record_inspection(courier, ticket.parcel_id, passed=False,
                                                                         reason=reason))
        await self.pause(rnd)
        if rnd.random() < 0.85:
            await self.hand(label, "take")
            await self.pause(rnd)
        await self.hand(label, "close")
        await self.events.wait({"collect.dispatched", "collect.not_taken"}, label, since, FINISH_WAIT)

    async def technician(self, rnd: random.Random) -> None:
        label = rnd.choice(self.labels)
        was_open = self.door_open(label)
        since = self.events.seq
        done = await self.attempt("technician", self.custody.technician_open(
            "technician:90001", label, rnd.choice(("inspection", "sensor check", "cleaning"))))
        if done is REFUSED:  # the door is in use
            return
        if not was_open and not await self.events.wait({"technician.door_open"}, label, since, OPEN_WAIT):
            return
        await self.pause(rnd)
        await self.hand(label, "close")
        await self.events.wait({"technician.opened"}, label, since, FINISH_WAIT)

    async def vandal(self, rnd: random.Random) -> None:
        """A door pulled open without any command (a forced door): an alarm, never a custody change."""
        label = rnd.choice(self.labels)
        if self.door_open(label):
            return
        await self.hand(label, "open")
        await self.pause(rnd, 0.1)
        await self.hand(label, "close")

    async def jam(self, rnd: random.Random) -> None:
        """A stuck lock: the next deposit may get a door that never opens."""
        free = [r["label"] for r in await self.custody.compartments() if r["state"] == "free"]
        if not free:
            return
        label = rnd.choice(free[:6])
        await self.hand(label, "jam")
        try:
            await self.deposit(rnd)
        finally:
            await self.hand(label, "unjam")

    async def tidy(self, rnd: random.Random) -> None:
        """Someone walks along the wall and shuts what is open. A pickup or retrieval the restarted
        service resumed (its door still open) is finished the way a person would: mostly taken."""
        rows = await self.custody.compartments()
        for row in rows:
            if row["door"] != "open":
                continue
            label = row["label"]
            parcel = row["parcel"] or {}
            if parcel.get("state") in ("picking_up", "retrieving") and rnd.random() < 0.7:
                await self.hand(label, "take")
            await self.pause(rnd, 0.01)
            await self.hand(label, "close")

    # -- one life ---------------------------------------------------------------------------

    async def stock(self, rnd: random.Random, parcels: int, outbound: int = 0) -> None:
        """Fill the wall with waiting parcels and outbound mail (a new epoch starts with some, so that
        pickups, refusals, retrievals and collections have something to work on from the first kill)."""
        for _ in range(parcels):
            await self.deposit(rnd, store=True)
        for _ in range(outbound):
            await self.dropoff(rnd, store=True)

    async def actor(self, rnd: random.Random, steps: int) -> None:
        weights = FOCUS_WEIGHTS[self.spec.get("focus")]
        names = list(weights)
        for _ in range(steps):
            name = rnd.choices(names, weights=[weights[n] for n in names])[0]
            await getattr(self, name)(rnd)
            await self.pause(rnd, 0.02)


async def check_reconciled(db: Database, custody: Custody) -> list[str]:
    """What reconciliation must leave behind: no deposit in progress, and an unresolved intent only
    for a pickup or retrieval whose door is open (it is being watched to its end)."""

    def read(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
        depositing = conn.execute("SELECT id FROM parcels WHERE state = 'depositing'").fetchall()
        dangling = conn.execute(
            "SELECT i.id, i.purpose, p.state, c.label FROM door_intents i JOIN compartments c ON c.id = i.compartment_id"
            " LEFT JOIN parcels p ON p.id = i.parcel_id WHERE i.resolved_at IS NULL").fetchall()
        return depositing, dangling

    depositing, dangling = await db.read(read)
    problems = [f"parcel {row[0]} still depositing after reconciliation" for row in depositing]
    for intent, purpose, state, label in dangling:
        if state not in ("picking_up", "retrieving") or custody.door_of(label) != "open":
            problems.append(f"intent {intent} ({purpose}, {label}, parcel {state}) unresolved after reconciliation")
    return problems


async def sabotage(kind: str, db: Database, custody: Custody, layout: list[CompartmentSpec]) -> None:
    """Deliberate damage, to prove the driver notices (the harness must be able to fail)."""
    if kind == "db":  # a compartment marked occupied with nothing in it
        await db.write(lambda c: c.execute(
            "UPDATE compartments SET state = 'occupied' WHERE id = (SELECT id FROM compartments"
            " WHERE state = 'free' ORDER BY id DESC LIMIT 1)"))
    elif kind == "pulse":  # a door opened with no intent committed
        await custody.doors.unlock(layout[-1].address)
        await asyncio.sleep(0.05)
    elif kind == "journal":  # a journal row that does not chain
        await db.write(lambda c: c.execute(
            "INSERT INTO events (at, kind, actor, detail, prev_hash, hash) VALUES (0, 'forged', 'nobody', '{}', ?, ?)",
            ("0" * 64, "f" * 64)))
    elif kind == "posting":  # outbound mail marked collected with no parcel ever dispatched
        await db.write(lambda c: c.execute(
            "INSERT INTO postings (state, notice_version, created_at) VALUES ('collected', ?, 0)", (NOTICE_VERSION,)))
    else:
        raise ValueError(kind)


async def run(spec: dict[str, Any]) -> int:
    began = time.monotonic()
    cfg = station_config(spec)
    bank_cfg = cfg.banks[0]
    banks = {bank_cfg.name: lock_bank(bank_cfg.profile(bank_cfg.url))}
    db = Database(cfg.database.path, mounts=spec.get("mounts"))
    sms = sms_gateway("webhook", url=cfg.sms.url, timeout=cfg.sms.timeout)
    await db.open()
    for bank in banks.values():
        await bank.open()
    keys = DeviceKeys.load_or_create(cfg.database.resolved_key_file)
    layout = cfg.layout()
    custody = Custody(db=db, keys=keys, layout=layout, doors=DoorMonitor(banks, poll_interval=POLL_INTERVAL),
                      sms=sms, settings=custody_settings(cfg))
    await custody.start()
    problems = await check_reconciled(db, custody)
    if problems:  # reported to the driver through the findings file; the life goes on
        print("RECONCILIATION:", *problems, sep="\n  ", file=sys.stderr, flush=True)
        with open(spec["findings"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"trial": spec.get("trial"), "problems": problems}) + "\n")
    couriers = [Courier(r[0], r[1], r[2], r[3]) for r in await db.read(lambda c: c.execute(
        "SELECT id, login, name, carrier FROM accounts ORDER BY id").fetchall())]
    wall = httpx.AsyncClient(base_url=spec["wall_http"], timeout=5.0, verify=False)  # plain http
    phone = httpx.AsyncClient(base_url=spec["phone_url"], timeout=5.0, verify=False)
    life = Life(spec, custody, layout, couriers, wall, phone)
    print(f"ready after {(time.monotonic() - began) * 1000:.0f} ms", file=sys.stderr, flush=True)
    try:
        if spec.get("sabotage"):
            await sabotage(spec["sabotage"], db, custody, layout)
        elif spec.get("focus") == "idle":
            pass
        elif spec.get("focus") == "stock":
            rnd = random.Random(spec["seed"])
            await life.tidy(rnd)
            await life.stock(rnd, spec["steps"], spec.get("outbound") or 0)
        else:
            rnd = random.Random(spec["seed"])
            await life.tidy(rnd)
            actors = 2 if rnd.random() < 0.4 else 1  # sometimes two flows at once
            actors = spec.get("actors") or actors
            seeds = [rnd.randrange(2 ** 32) for _ in range(actors)]
            await asyncio.gather(*(life.actor(random.Random(s), spec["steps"]) for s in seeds))
        print(f"clean stop; refused by custody: {life.refusals}", file=sys.stderr, flush=True)
    finally:
        await life.events.close()
        await custody.stop()
        await db.close()
        for bank in banks.values():
            await bank.close()
        await sms.close()
        await wall.aclose()
        await phone.aclose()
    return EXIT_OK
