"""Posting a parcel at the kiosk: real-name ID, a waybill that fills itself, weighing, a label.

One posting at a time runs on the kiosk (there is one card reader, one scale, one label printer).
Its steps, each committed before the next thing happens:

``notice`` (why the card is read, what is kept, for how long: T-E4, shown before the reader is
asked for anything) -> ``card`` (the reader is read only now; the number is checked, age decides the
large-print mode, the photo is dropped unread) -> ``recipient`` (a pasted or dictated line fills
the fields; a returning resident's recent recipients are offered, looked up by keyed HMAC) ->
``item`` (category, quantity, the self-declaration against the prohibited-items catalogue, R15) ->
``weigh`` (only a stable weight is taken; the tariff prices it; the price and the dispatch promise
are shown before anything is charged) -> ``paying`` (the payment step, an interface; the demo's is
"pay at the counter") -> ``printing`` (the waybill number, an UPU S10 identifier, is drawn from the
station's block and committed first; the label is rendered once and printed when the printer is
ready; paper out or cover open is shown and the job waits) -> the drop-off door (custody) -> done.

Posting is refused while the surveillance camera is down (R4, T-H5); pickups are not affected.

Personal data: the ID number, sender and recipient are AES-GCM encrypted under the device key,
the ID number looked up only by keyed HMAC, shown and journaled only masked; a posting that ends
before it is paid keeps none of it; completed postings lose it after ``id_retention_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hal.codes import s10_check_digit
from hal.errors import HalError
from hal.idcard import mask_address, mask_name
from lockers import journal
from lockers.address import Address, parse_contact_line
from lockers.address import warm_up as address_warm_up
from lockers.catalogue import check_item
from lockers.crash import crashpoint
from lockers.custody import SIZES, Custody, DoorTicket
from lockers.db import Database
from lockers.dispatch import DispatchSchedule
from lockers.errors import CustodyError, FlowConflict, InvalidInput
from lockers.identity import IdentityRefused, PostingIdentity, identity_from_card
from lockers.keys import DeviceKeys
from lockers.payments import WALLET_NAMES_ZH, PaymentDesk, PaymentError, PaymentResult
from lockers.station_ledger import fen_text
from lockers.label import LabelData, label_png, render_label, render_receipt
from lockers.personal import mask_phone, normalize_phone
from lockers.print_jobs import print_when_ready
from lockers.tariff import Quote, Tariff

log = logging.getLogger(__name__)

NOTICE_VERSION = "2026-12-05"
#: the step the screen shows for each stored state of a posting
LIVE_STATES = ("reading_card", "drafting", "priced", "paid", "printed")


class PostingUnavailable(CustodyError):
    """Posting cannot start: the surveillance camera is down (R4), or a device it needs is missing."""

    code = "posting_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"posting is not available: {reason}")
        self.reason = reason


class PostingRefused(CustodyError):
    """The posting ended because a rule says no: an invalid or expired ID, a prohibited item."""

    code = "posting_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(f"posting refused: {reason}")
        self.reason = reason


# -- the payment step ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentOutcome:
    """What the payment step says. ``paid``: the money is in. ``due_at_counter``: the resident pays
    the station staff (the demo's only method until payments land). ``failed``: nothing was taken."""

    state: str  # paid | due_at_counter | failed
    method: str
    reference: str | None = None
    reason: str | None = None


class PaymentStep(Protocol):
    """How a posting is paid for. The posting flow calls ``pay`` once per posting, with the amount
    shown to the resident; the label prints only when it returns ``paid`` or ``due_at_counter``."""

    method: str

    async def pay(self, posting_id: int, amount_fen: int) -> PaymentOutcome: ...


class PayAtCounter:
    """The resident pays the staff at the counter; the posting records the amount due there."""

    method = "counter"

    async def pay(self, posting_id: int, amount_fen: int) -> PaymentOutcome:
        return PaymentOutcome("due_at_counter", self.method, reference=f"counter-{posting_id}")


# -- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostingSettings:
    """``serial_first`` .. ``serial_last``: the block of S10 serials this station may issue (given
    by the postal operator so stations never collide)."""

    tariff: Tariff
    schedule: DispatchSchedule
    service_indicator: str = "CP"
    country: str = "CN"
    serial_first: int = 10_000_000
    serial_last: int = 99_999_999
    tracking_url: str = "https://track.example.cn/{waybill}"
    service_name: str = "标准快递"
    station_name: str = "社区邮政服务点"
    card_timeout: float = 90.0
    weigh_timeout: float = 120.0
    idle_timeout: float = 180.0  # an unpaid posting nobody touches this long is cancelled
    #: offer "pay at the counter" (the label prints and the staff take the money); a station that
    #: takes payment codes usually turns it off, so no label leaves the kiosk unpaid
    pay_at_counter: bool = True
    elderly_age: int = 60
    id_retention_days: float = 7.0
    history_days: float = 180.0  # a returning resident's recent recipients and phone are offered this long
    default_size: str = "M"
    recent_recipients: int = 3


# -- what the screen shows -------------------------------------------------------------------------


@dataclass
class _Live:
    """The posting on the kiosk now: what is not in the database (tasks, device status)."""

    posting_id: int
    touched: float
    message: str | None = None  # a status key for the screen: card_unreadable, printer_paper_out ...
    printer: dict[str, Any] | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    weighing: asyncio.Task[Any] | None = None
    elderly: bool = False  # the card said 60 or more: large print follows the resident to the door
    ticket: DoorTicket | None = None
    #: paying by a scanned code: None (not chosen), "scan" (waiting for the code), "charging" (the
    #: pay call and its queries are under way), "failed" (nothing kept: scan again or go back)
    paying: str | None = None
    pay_reason: str | None = None  # why the last attempt failed (a protocol or error code, no data)


class PostingDesk:
    """The posting flow. ``reader``, ``scale``, ``label_printer`` and ``receipt_printer`` are hal
    devices (or None when the station has none); ``surveillance`` answers whether the camera works."""

    def __init__(self, *, db: Database, keys: DeviceKeys, custody: Custody, settings: PostingSettings,
                 reader: Any = None, scale: Any = None, label_printer: Any = None, receipt_printer: Any = None,
                 surveillance: Callable[[], Awaitable[tuple[bool, str]]] | None = None,
                 payment: PaymentStep | None = None, payments: PaymentDesk | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.keys = keys
        self.custody = custody
        self.settings = settings
        self.reader = reader
        self.scale = scale
        self.label_printer = label_printer
        self.receipt_printer = receipt_printer
        self.surveillance = surveillance
        self.payment = payment or PayAtCounter()
        self.payments = payments  # paying by a scanned payment code (None: the station takes none)
        #: called in the transaction that accepts a paid posting (commission accrual, say)
        self.on_paid: Callable[[sqlite3.Connection, sqlite3.Row], None] | None = None
        self._now = clock
        self._mono = monotonic
        self.live: _Live | None = None
        self._listeners: set[Callable[[dict[str, Any]], None]] = set()
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self._follow: asyncio.Task[None] | None = None
        self._reprints: asyncio.Task[None] | None = None
        self.last_refusal: dict[str, Any] | None = None
        self.on_door: Callable[[DoorTicket], None] | None = None  # the kiosk shows the drop-off door
        self.read_calls = 0  # how many times the card reader was asked for a card (T-E4 tests)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Postings a power cut interrupted before payment are cancelled and lose their personal
        data. A paid posting whose label was not printed gets its label now, when the printer is
        ready (the resident has gone: the staff hand it over; the journal says what happened)."""
        now = self._now()

        def tx(conn: sqlite3.Connection) -> tuple[int, list[int]]:
            rows = conn.execute("SELECT id FROM postings WHERE state IN ('reading_card', 'drafting', 'priced')"
                                ).fetchall()
            for row in rows:
                self._end(conn, row["id"], "cancelled", "interrupted", now)
            self._purge(conn, now)
            unprinted = [r["id"] for r in conn.execute("SELECT id FROM postings WHERE state = 'paid'")]
            return len(rows), unprinted

        await asyncio.to_thread(address_warm_up)  # the parser's region data, off the event loop
        interrupted, unprinted = await self.db.write(tx)
        if interrupted:
            log.info("%d unfinished postings were cancelled at start-up", interrupted)
        if unprinted and self.label_printer is not None:
            self._reprints = asyncio.create_task(self._print_left(unprinted), name="posting-reprints")
        self._watch = asyncio.create_task(self._housekeeping(), name="posting-housekeeping")
        self._follow = asyncio.create_task(self._follow_doors(self.custody.subscribe()), name="posting-doors")

    async def stop(self) -> None:
        for task in (self._watch, self._follow, self._reprints):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.live:
            for task in list(self.live.tasks):
                task.cancel()

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.add(listener)

    def _changed(self) -> None:
        view = self.view_sync()
        for listener in list(self._listeners):
            listener(view)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        assert self.live is not None
        task = asyncio.create_task(coro, name=name)
        live = self.live
        live.tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            live.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("posting task %s failed", t.get_name(), exc_info=t.exception())

        task.add_done_callback(done)
        return task

    # ---------------------------------------------------------------- checks

    async def availability(self) -> tuple[bool, str | None]:
        """Whether a posting may start now, and why not (a reason key)."""
        if self.reader is None or self.scale is None or self.label_printer is None:
            return False, "devices_missing"
        if self.surveillance is None:
            return False, "camera_down"
        try:
            ok, _detail = await self.surveillance()
        except Exception:  # a camera check that itself fails is a camera that is down
            log.exception("surveillance check failed")
            ok = False
        return (True, None) if ok else (False, "camera_down")

    # ---------------------------------------------------------------- steps

    async def begin(self, *, agreed: bool) -> dict[str, Any]:
        """The resident read the notice and agreed: journal it, then (only then) read the card."""
        if not agreed:
            raise InvalidInput("agreed", "the notice must be agreed to before the ID card is read")
        async with self._lock:
            if self.live is not None:
                raise FlowConflict("a posting is already under way")
            ok, reason = await self.availability()
            if not ok:
                now = self._now()
                await self.db.write(lambda c: journal.append(c, at=now, kind="posting_refused_unavailable",
                                                             actor="system", reason=reason))
                raise PostingUnavailable(reason or "unknown")
            now = self._now()

            def tx(conn: sqlite3.Connection) -> int:
                cur = conn.execute("INSERT INTO postings (state, notice_version, created_at) VALUES"
                                   " ('reading_card', ?, ?)", (NOTICE_VERSION, now))
                posting_id = int(cur.lastrowid)
                journal.append(conn, at=now, kind="posting_notice_agreed", actor="resident", posting_id=posting_id,
                               notice=NOTICE_VERSION)
                return posting_id

            posting_id = await self.db.write(tx)
            crashpoint("posting.agreed")
            self.live = _Live(posting_id, self._mono())
            self._spawn(self._read_card(posting_id), f"posting-{posting_id}-card")
        self._changed()
        return await self.view()

    async def _read_card(self, posting_id: int) -> None:
        """Ask the reader until a card is read or the time is up. A card taken away mid-read, or one
        the reader cannot read, is asked for again with a message on screen."""
        deadline = self._mono() + self.settings.card_timeout
        while self._mono() < deadline:
            self.read_calls += 1
            try:
                card = await self.reader.read_card(timeout=min(2.0, max(0.1, deadline - self._mono())))
            except HalError as err:
                log.info("ID card read failed: %s", type(err).__name__)
                self._message("card_unreadable")
                await asyncio.sleep(0.5)
                continue
            finally:
                with contextlib.suppress(Exception):
                    self.reader.take_photo()  # the photo is dropped here, never looked at or stored
            if card is None:
                continue
            await self._identified(posting_id, card)
            return
        await self.cancel(reason="no_card")

    async def _identified(self, posting_id: int, card: Any) -> None:
        today = dt.datetime.fromtimestamp(self._now(), self.settings.schedule.tz).date()
        try:
            who = identity_from_card(card, today, elderly_age=self.settings.elderly_age)
        except IdentityRefused as err:
            await self._refuse(posting_id, f"id_{err.reason}")
            return
        await self._record_identity(posting_id, who)

    async def _record_identity(self, posting_id: int, who: PostingIdentity) -> None:
        now = self._now()
        id_mac = self.keys.mac("id_number", who.id_number)
        sender = {"name": who.name, "address": who.address or "", "phone": ""}

        def tx(conn: sqlite3.Connection) -> None:
            previous = conn.execute("SELECT sender_enc FROM postings WHERE id_hmac = ? AND sender_enc IS NOT NULL"
                                    " AND id != ? ORDER BY id DESC LIMIT 1", (id_mac, posting_id)).fetchone()
            if previous is not None:  # a returning resident: their phone is remembered
                sender["phone"] = json.loads(self.keys.decrypt("sender", previous["sender_enc"])).get("phone", "")
            conn.execute(
                "UPDATE postings SET state = 'drafting', id_type = ?, id_enc = ?, id_hmac = ?, id_masked = ?,"
                " sender_enc = ?, sender_masked = ?, elderly = ? WHERE id = ? AND state = 'reading_card'",
                (who.id_type, self.keys.encrypt("id_number", who.id_number), id_mac, who.masked_number,
                 self.keys.encrypt("sender", json.dumps(sender, ensure_ascii=False)),
                 _masked_person(sender), int(who.elderly), posting_id))
            journal.append(conn, at=now, kind="posting_identified", actor="resident", posting_id=posting_id,
                           id_type=who.id_type, id_number=who.masked_number, elderly=who.elderly)

        await self.db.write(tx)
        crashpoint("posting.identified")
        if self.live and self.live.posting_id == posting_id:
            self.live.elderly = who.elderly
        self._message(None)

    async def parse(self, text: str) -> dict[str, Any]:
        """The fields a pasted or dictated line gives (shown to the resident, who typed them, in
        editable fields; nothing is stored until ``set_recipient``)."""
        self._touch()
        parsed = parse_contact_line(text)
        return {"name": parsed.name, "phone": parsed.phone, "province": parsed.address.province,
                "city": parsed.address.city, "district": parsed.address.district,
                "street": parsed.address.street, "missing": list(parsed.missing)}

    async def recent_recipients(self) -> list[dict[str, Any]]:
        """The resident's last few recipients (keyed by the ID number's HMAC), masked, with an index
        to pick one by."""
        posting = await self._row()
        if posting is None or posting["id_hmac"] is None:
            return []
        rows = await self.db.read(lambda c: c.execute(
            "SELECT id, recipient_enc FROM postings WHERE id_hmac = ? AND id != ? AND recipient_enc IS NOT NULL"
            " AND state IN ('paid', 'printed', 'in_locker', 'collected') ORDER BY id DESC LIMIT 20",
            (posting["id_hmac"], posting["id"])).fetchall())
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for row in rows:
            person = json.loads(self.keys.decrypt("recipient", row["recipient_enc"]))
            key = (person["name"], person["phone"])
            if key in seen:
                continue
            seen.add(key)
            out.append({"from_posting": row["id"], "name": mask_name(person["name"]),
                        "phone": mask_any_phone(person["phone"]) if person["phone"] else "",
                        "place": f"{person['province']}{person['city']}{person['district']}"})
            if len(out) >= self.settings.recent_recipients:
                break
        return out

    async def set_recipient(self, *, name: str, phone: str, province: str, city: str, district: str, street: str,
                            sender_phone: str | None = None, from_posting: int | None = None) -> dict[str, Any]:
        """Save the waybill's people. ``from_posting``: reuse the recipient of one of the resident's
        earlier postings (offered by ``recent_recipients``). ``sender_phone`` None keeps the one
        remembered from an earlier posting."""
        posting = await self._live_row("drafting")
        if from_posting is not None:
            person = await self._earlier_recipient(posting, from_posting)
        else:
            person = {"name": name.strip(), "phone": phone, "province": province.strip(), "city": city.strip(),
                      "district": district.strip(), "street": street.strip()}
        if not person["name"] or len(person["name"]) > 40:
            raise InvalidInput("recipient_name", "the recipient's name is missing")
        try:
            person["phone"] = normalize_any_phone(person["phone"])
        except InvalidInput:
            raise InvalidInput("recipient_phone", "the recipient's phone number is not right") from None
        if not person["province"] or not person["street"]:
            raise InvalidInput("recipient_address", "the recipient's address needs a province and a street")
        try:
            self.settings.tariff.zone_of(person["province"])
        except InvalidInput:
            raise InvalidInput("recipient_address", "this kiosk cannot post to that province") from None
        sender = json.loads(self.keys.decrypt("sender", posting["sender_enc"]))
        if sender_phone:
            try:
                sender["phone"] = normalize_phone(sender_phone)
            except InvalidInput:
                raise InvalidInput("sender_phone", "the sender's phone number is not right") from None
        if not sender["phone"]:
            raise InvalidInput("sender_phone", "the sender's phone number is missing")

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE postings SET recipient_enc = ?, recipient_masked = ?, dest_province = ?,"
                         " dest_city = ?, sender_enc = ?, sender_masked = ? WHERE id = ?",
                         (self.keys.encrypt("recipient", json.dumps(person, ensure_ascii=False)),
                          _masked_person(person), person["province"], person["city"],
                          self.keys.encrypt("sender", json.dumps(sender, ensure_ascii=False)),
                          _masked_person(sender), posting["id"]))

        await self.db.write(tx)
        self._touch()
        self._changed()
        return await self.view()

    async def _earlier_recipient(self, posting: sqlite3.Row, earlier: int) -> dict[str, str]:
        row = await self.db.read(lambda c: c.execute(
            "SELECT recipient_enc FROM postings WHERE id = ? AND id_hmac = ? AND recipient_enc IS NOT NULL",
            (earlier, posting["id_hmac"])).fetchone())
        if row is None:
            raise InvalidInput("from_posting", "not one of your earlier recipients")
        return json.loads(self.keys.decrypt("recipient", row["recipient_enc"]))

    async def set_item(self, *, category: str, quantity: int, declared: bool, size: str | None = None
                       ) -> dict[str, Any]:
        """The item and the self-declaration. A prohibited category ends the posting with the reason."""
        posting = await self._live_row("drafting")
        if posting["recipient_enc"] is None:
            raise FlowConflict("the recipient comes first")
        size = size or self.settings.default_size
        if size not in SIZES:
            raise InvalidInput("size", f"size must be one of {', '.join(SIZES)}")
        verdict = check_item(category, quantity, declared)
        if not verdict.ok:
            if verdict.reason_code in ("declaration_missing", "quantity", "unknown_category"):
                raise InvalidInput(verdict.reason_code, f"item not accepted: {verdict.reason_code}")
            await self._refuse(posting["id"], f"item_{verdict.reason_code}", prohibited=verdict.prohibited_class)
            raise PostingRefused(verdict.reason_code or "prohibited")
        now = self._now()
        await self.db.write(lambda c: (
            c.execute("UPDATE postings SET category = ?, quantity = ?, size = ? WHERE id = ?",
                      (category, quantity, size, posting["id"])),
            journal.append(c, at=now, kind="posting_declared", actor="resident", posting_id=posting["id"],
                           category=category, quantity=quantity, declared=True)))
        self._touch()
        self._start_weighing(posting["id"])
        self._changed()
        return await self.view()

    def _start_weighing(self, posting_id: int) -> None:
        """One weighing at a time: a new one replaces the one running."""
        assert self.live is not None
        if self.live.weighing is not None:
            self.live.weighing.cancel()
        self.live.weighing = self._spawn(self._weigh(posting_id), f"posting-{posting_id}-weigh")

    async def weigh_again(self) -> dict[str, Any]:
        posting = await self._live_row("drafting", "priced")
        await self.db.write(lambda c: c.execute(
            "UPDATE postings SET state = 'drafting', weight_g = NULL, zone = NULL, price_fen = NULL WHERE id = ?",
            (posting["id"],)))
        self._start_weighing(posting["id"])
        self._changed()
        return await self.view()

    async def _weigh(self, posting_id: int) -> None:
        """Wait for a stable weight on the scale; price it; show price and dispatch promise."""
        deadline = self._mono() + self.settings.weigh_timeout
        while self._mono() < deadline:
            try:
                weight = await self.scale.read_stable(timeout=min(5.0, max(0.1, deadline - self._mono())))
            except HalError as err:
                kind = type(err).__name__
                self._message("scale_overload" if "Overload" in kind else "scale_waiting")
                await asyncio.sleep(0.3)
                continue
            if weight.grams is None or weight.grams <= 0:
                self._message("scale_empty")
                await asyncio.sleep(0.3)
                continue
            await self._priced(posting_id, int(weight.grams))
            return
        self._message("scale_timeout")

    async def _priced(self, posting_id: int, grams: int) -> None:
        posting = await self._row()
        if posting is None or posting["id"] != posting_id:
            return
        try:
            quote: Quote = self.settings.tariff.quote(grams, posting["dest_province"])
        except InvalidInput:
            self._message("too_heavy")
            return
        leaves = self.settings.schedule.promise(dt.datetime.fromtimestamp(self._now(), self.settings.schedule.tz))
        await self.db.write(lambda c: c.execute(
            "UPDATE postings SET state = 'priced', weight_g = ?, zone = ?, price_fen = ?, leaves_at = ?"
            " WHERE id = ? AND state = 'drafting'",
            (grams, quote.zone, quote.price_fen, leaves.next_collection.timestamp(), posting_id)))
        self._message(None)

    async def confirm(self) -> dict[str, Any]:
        """The resident accepts the price shown: pay, then draw the waybill number, then print."""
        async with self._lock:
            posting = await self._live_row("priced")
            if not self.settings.pay_at_counter:
                raise FlowConflict("this kiosk takes payment codes only")
            if self.live is not None and self.live.paying == "charging":
                raise FlowConflict("a payment is under way")
            await self.db.read(self._serial_left)  # never take money for a label that cannot be made
            outcome = await self.payment.pay(posting["id"], posting["price_fen"])
            now = self._now()
            if outcome.state not in ("paid", "due_at_counter"):
                await self.db.write(lambda c: journal.append(
                    c, at=now, kind="posting_payment_failed", actor="system", posting_id=posting["id"],
                    method=outcome.method, reason=outcome.reason))
                self._message("payment_failed")
                return await self.view()

            def tx(conn: sqlite3.Connection) -> str:
                waybill = self._next_waybill(conn)
                conn.execute("UPDATE postings SET state = 'paid', payment_method = ?, payment_state = ?, paid_at = ?,"
                             " waybill = ? WHERE id = ? AND state = 'priced'",
                             (outcome.method, outcome.state, now, waybill, posting["id"]))
                journal.append(conn, at=now, kind="posting_paid", actor="resident", posting_id=posting["id"],
                               tracking=waybill, amount_fen=posting["price_fen"], method=outcome.method,
                               payment=outcome.state)
                if self.on_paid is not None:
                    self.on_paid(conn, conn.execute("SELECT * FROM postings WHERE id = ?", (posting["id"],)).fetchone())
                return waybill

            await self.db.write(tx)
            crashpoint("posting.paid")
            self._spawn(self._print(posting["id"]), f"posting-{posting['id']}-print")
        self._changed()
        return await self.view()

    # ---------------------------------------------------------------- paying by payment code

    def payment_methods(self) -> dict[str, bool]:
        """What the price screen offers: ``code`` (a payment code, when the station takes them and the
        network is up) and ``counter``."""
        return {"code": self.payments is not None and self.payments.is_online(),
                "counter": self.settings.pay_at_counter}

    async def choose_code_payment(self) -> dict[str, Any]:
        """The resident chose to pay with their phone: the screen asks for the payment code. With
        no network no paid flow starts (T-F2): the resident is told, nothing is kept."""
        async with self._lock:
            await self._live_row("priced")
            assert self.live is not None
            if self.payments is None:
                raise PostingUnavailable("payments_unavailable")
            if not self.payments.is_online():
                self.live.paying, self.live.pay_reason = None, "payments_offline"
                self._message("payments_offline")
                return await self.view()
            await self.db.read(self._serial_left)  # never take money for a label that cannot be made
            if self.live.paying != "charging":
                self.live.paying, self.live.pay_reason = "scan", None
        self._message(None)
        return await self.view()

    async def back_to_price(self) -> dict[str, Any]:
        """Leave the payment-code screen (not while a charge is under way)."""
        async with self._lock:
            await self._live_row("priced")
            assert self.live is not None
            if self.live.paying == "charging":
                raise FlowConflict("a payment is under way")
            self.live.paying = self.live.pay_reason = None
        self._message(None)
        return await self.view()

    async def take_payment_code(self, auth_code: str) -> None:
        """A payment code read while the screen asks for one: charge it in the background (the pay
        call, its queries every 5 s and, if need be, the reverse take up to about 45 s). The label
        prints only when the payment is confirmed; the code itself is kept in memory only."""
        async with self._lock:
            posting = await self._live_row("priced")
            assert self.live is not None and self.payments is not None
            if self.live.paying not in ("scan", "failed"):
                raise FlowConflict("the screen does not ask for a payment code now")
            self.live.paying, self.live.pay_reason = "charging", None
            self._spawn(self._charge(posting["id"], posting["price_fen"], auth_code),
                        f"posting-{posting['id']}-charge")
        self._message(None)

    async def _charge(self, posting_id: int, amount_fen: int, auth_code: str) -> None:
        assert self.payments is not None
        live = self.live
        try:
            result = await self.payments.pay(
                "posting", str(posting_id), amount_fen, auth_code, subject=f"{self.settings.service_name}",
                on_paid=lambda conn, order: self._accept_paid(conn, posting_id, order))
        except PaymentError as err:
            if live is self.live and live is not None:
                live.paying, live.pay_reason = "failed", err.code
            self._message("payment_failed")
            return
        if live is not self.live or live is None:
            return  # the screen moved on; a paid posting still prints (start-up reprints it)
        if not result.paid:
            live.paying = "failed"
            # a charge whose reverse is still open: no new code for this posting until it is settled
            live.pay_reason = {"retry": "payment_unsettled", "refunded": "payment_refunded"}.get(
                result.state, result.reason or result.state)
            self._message("payment_failed")
            return
        live.paying = None
        self._message(None)
        await self._print(posting_id)

    def _accept_paid(self, conn: sqlite3.Connection, posting_id: int, order: PaymentResult) -> None:
        """In the transaction that commits the payment: draw the waybill number and accept the
        posting. A posting that is no longer waiting for payment refuses, and the money goes back."""
        waybill = self._next_waybill(conn)
        now = self._now()
        cur = conn.execute(
            "UPDATE postings SET state = 'paid', payment_method = ?, payment_state = 'paid', paid_at = ?, waybill = ?"
            " WHERE id = ? AND state = 'priced'", (order.channel, now, waybill, posting_id))
        if cur.rowcount != 1:
            raise FlowConflict("the posting is no longer waiting for payment")
        journal.append(conn, at=now, kind="posting_paid", actor="resident", posting_id=posting_id, tracking=waybill,
                       amount_fen=order.amount_fen, method=order.channel, payment="paid", order_no=order.order_no)
        if self.on_paid is not None:
            self.on_paid(conn, conn.execute("SELECT * FROM postings WHERE id = ?", (posting_id,)).fetchone())

    def _serial_left(self, conn: sqlite3.Connection) -> int:
        """The next serial of the station's block; ``PostingUnavailable`` when it is used up."""
        row = conn.execute("SELECT value FROM counters WHERE name = 'posting.waybill_serial'").fetchone()
        serial = int(row[0]) + 1 if row else self.settings.serial_first
        if serial > self.settings.serial_last:
            raise PostingUnavailable("waybill_numbers_used_up")
        return serial

    def _next_waybill(self, conn: sqlite3.Connection) -> str:
        """The next S10 number of the station's block; the counter moves in the same transaction."""
        s = self.settings
        serial = self._serial_left(conn)
        conn.execute("INSERT INTO counters (name, value) VALUES ('posting.waybill_serial', ?)"
                     " ON CONFLICT(name) DO UPDATE SET value = excluded.value", (serial,))
        digits = f"{serial:08d}"
        return f"{s.service_indicator}{digits}{s10_check_digit(digits)}{s.country}"

    async def label_data(self, posting_id: int | None = None) -> LabelData:
        """The label's content, decrypted in memory only."""
        row = await self._row(posting_id)
        if row is None or row["waybill"] is None:
            raise FlowConflict("this posting has no waybill yet")
        sender = json.loads(self.keys.decrypt("sender", row["sender_enc"]))
        person = json.loads(self.keys.decrypt("recipient", row["recipient_enc"]))
        s = self.settings
        tz = s.schedule.tz
        leaves = dt.datetime.fromtimestamp(row["leaves_at"], tz) if row["leaves_at"] else None
        return LabelData(
            waybill=row["waybill"], service=s.service_name,
            sort_code=" ".join(p.removesuffix("省").removesuffix("市") for p in (person["province"], person["city"],
                                                                                person["district"]) if p),
            recipient_name=person["name"], recipient_phone=person["phone"],
            recipient_address=Address(person["province"], person["city"], person["district"],
                                      person["street"]).one_line(),
            sender_name=sender["name"], sender_phone=sender["phone"], sender_address=sender["address"],
            contents=row["category"], quantity=row["quantity"], weight_g=row["weight_g"], price_fen=row["price_fen"],
            posted_at=dt.datetime.fromtimestamp(row["paid_at"] or row["created_at"], tz),
            tracking_url=s.tracking_url.format(waybill=row["waybill"]), real_name_checked=row["id_enc"] is not None,
            station=s.station_name,
            dispatch_text=leaves.strftime("%m-%d %H:%M") if leaves else "",
            payment_text=await self._payment_text(row))

    async def receipt_for(self, waybill: str) -> dict[str, Any] | None:
        """The on-screen payment receipt of the posting with this waybill (None: not paid by code)."""
        row = await self.db.read(lambda c: c.execute("SELECT * FROM postings WHERE waybill = ?", (waybill,)).fetchone())
        if row is None or self.payments is None or row["payment_method"] not in WALLET_NAMES_ZH:
            return None
        order = await self.payments.order_for("posting", str(row["id"]))
        return self._receipt_view(row, order) if order is not None and order.paid else None

    def _receipt_view(self, row: sqlite3.Row, order: PaymentResult) -> dict[str, Any]:
        """The on-screen receipt: what was paid, how, the order number, and the same as a QR code
        to keep (no personal data: no name, phone or payment code)."""
        import base64

        from hal.codes import CHANNEL_NAMES
        from lockers.queue import qr_png

        text = (f"{self.settings.station_name} 寄件付款凭证 运单号 {row['waybill']} 金额 {fen_text(order.amount_fen)} 元 "
                f"{WALLET_NAMES_ZH[order.channel]} 尾号{order.last4} 单号 {order.order_no}")
        return {"order_no": order.order_no, "amount_fen": order.amount_fen, "last4": order.last4,
                "channel": order.channel, "wallet_zh": WALLET_NAMES_ZH[order.channel],
                "wallet_en": CHANNEL_NAMES[order.channel], "text": text,
                "qr_png": base64.b64encode(qr_png(text, module=4)).decode("ascii")}

    async def _payment_text(self, row: sqlite3.Row) -> str:
        """The receipt's payment line: the wallet, the code's last 4 digits and the order number."""
        if self.payments is None or row["payment_method"] not in WALLET_NAMES_ZH:
            return "柜台付款" if row["payment_state"] == "due_at_counter" else ""
        order = await self.payments.order_for("posting", str(row["id"]))
        if order is None or not order.paid:
            return ""
        return f"{WALLET_NAMES_ZH[order.channel]} 尾号{order.last4} 单号 {order.order_no}"

    async def label_preview(self, posting_id: int | None = None) -> bytes:
        """The label as PNG: the same image the printer gets."""
        return label_png(render_label(await self.label_data(posting_id)))

    async def _print(self, posting_id: int, *, then_dropoff: bool = True) -> None:
        data = await self.label_data(posting_id)
        image = render_label(data)

        async def status(st: Any) -> None:
            if self.live:
                self.live.printer = {"ready": st.ready, "paper_out": st.paper_out, "cover_open": st.cover_open}
            self._message(None if st.ready else ("printer_paper_out" if st.paper_out else
                                                 "printer_cover_open" if st.cover_open else "printer_offline"))
            if not st.ready:
                now = self._now()
                await self.db.write(lambda c: journal.append(
                    c, at=now, kind="label_printer_not_ready", actor="system", posting_id=posting_id,
                    paper_out=st.paper_out, cover_open=st.cover_open))

        try:
            await print_when_ready(self.label_printer, image, on_status=status)
        except Exception as err:  # the job was not (fully) sent: staff reprint; never sent twice here
            log.error("label for posting %d not printed: %s", posting_id, type(err).__name__)
            self._message("printer_failed")
            return
        now = self._now()
        await self.db.write(lambda c: (
            c.execute("UPDATE postings SET state = 'printed', printed_at = ? WHERE id = ? AND state = 'paid'",
                      (now, posting_id)),
            journal.append(c, at=now, kind="label_printed", actor="system", posting_id=posting_id,
                           tracking=data.waybill)))
        crashpoint("posting.printed")
        self._message(None)
        if self.receipt_printer is not None and then_dropoff:  # after a restart the resident has gone
            self._spawn(self._receipt(data), f"posting-{posting_id}-receipt")
        if then_dropoff:
            await self.dropoff()

    async def _print_left(self, posting_ids: list[int]) -> None:
        """Labels of paid postings a restart interrupted, one after the other, each once."""
        for posting_id in posting_ids:
            await self._print(posting_id, then_dropoff=False)

    async def _receipt(self, data: LabelData) -> None:
        """The resident's receipt, in the printer's own Chinese text and barcodes (a printer without
        them gets the same receipt as one raster image). A receipt printer that fails costs nothing
        but the receipt."""
        try:
            status = await self.receipt_printer.status()
            if not status.ready:
                log.warning("receipt not printed: the receipt printer is not ready")
                return
            try:
                await asyncio.wait_for(self.receipt_printer.print_job(receipt_parts(data)), timeout=30)
            except ValueError:  # a code too wide for this paper: the raster receipt scales to it
                await asyncio.wait_for(self.receipt_printer.print_image(render_receipt(data)), timeout=30)
        except Exception as err:
            log.warning("receipt not printed: %s", type(err).__name__)

    async def dropoff(self) -> DoorTicket | None:
        """Open an outbound compartment for the labelled parcel (again, after a door that was not
        used)."""
        posting = await self._live_row("printed")
        sender = json.loads(self.keys.decrypt("sender", posting["sender_enc"]))
        try:
            ticket = await self.custody.start_dropoff(posting["id"], waybill=posting["waybill"],
                                                      phone=sender["phone"], size=posting["size"])
        except CustodyError as err:
            self._message(f"dropoff_{err.code}")
            return None
        assert self.live is not None
        self.live.ticket = ticket
        self._message(None)
        if self.on_door is not None:
            self.on_door(ticket)
        return ticket

    async def cancel(self, *, reason: str = "cancelled_by_resident") -> None:
        """The resident gives up (or walked away). Before payment: the posting ends and keeps no
        personal data. After payment it cannot be cancelled here: the staff handle it."""
        async with self._lock:
            posting = await self._row()
            if posting is None:
                self.live = None
                return
            if posting["state"] not in ("reading_card", "drafting", "priced"):
                raise FlowConflict("a paid posting is finished by the staff at the counter")
            if self.live is not None and self.live.paying == "charging":
                raise FlowConflict("a payment is under way: wait for its answer")
            now = self._now()
            await self.db.write(lambda c: self._end(c, posting["id"], "cancelled", reason, now))
            self._clear()
        self._changed()

    async def _refuse(self, posting_id: int, reason: str, prohibited: str | None = None) -> None:
        now = self._now()
        await self.db.write(lambda c: self._end(c, posting_id, "refused", reason, now, prohibited=prohibited))
        if self.live and self.live.posting_id == posting_id:
            self.live.message = reason
            refused_view = {"step": "refused", "reason": reason, "prohibited": prohibited}
            for listener in list(self._listeners):
                listener(refused_view)
            self._clear()
            self.last_refusal = refused_view

    def finished(self) -> None:
        """The drop-off is over (the parcel is in, or the screen moved on): the kiosk is free."""
        self._clear()
        self._changed()

    def _clear(self) -> None:
        live, self.live = self.live, None
        if live:
            current = asyncio.current_task()
            for task in list(live.tasks):
                if task is not current:
                    task.cancel()

    def _end(self, conn: sqlite3.Connection, posting_id: int, state: str, reason: str, now: float,
             **detail: Any) -> None:
        """End a posting that was never paid: nothing personal is kept (the consent and the reason
        stay in the journal)."""
        conn.execute("UPDATE postings SET state = ?, end_reason = ?, ended_at = ?, id_enc = NULL, id_hmac = NULL,"
                     " sender_enc = NULL, recipient_enc = NULL, shredded_at = ? WHERE id = ?",
                     (state, reason, now, now, posting_id))
        journal.append(conn, at=now, kind=f"posting_{state}", actor="system", posting_id=posting_id, reason=reason,
                       **detail)

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        """Real-name data leaves the device after ``id_retention_days`` (T-E2): the encrypted ID
        number goes. The waybill's people (and the keyed HMAC that finds a returning resident's
        recent recipients) go after ``history_days``. The masked forms, the waybill number and the
        journal stay."""
        s = self.settings
        cur = conn.execute("UPDATE postings SET id_enc = NULL, shredded_at = ? WHERE id_enc IS NOT NULL"
                           " AND paid_at IS NOT NULL AND paid_at < ?", (now, now - s.id_retention_days * 86400))
        old = conn.execute("UPDATE postings SET id_hmac = NULL, sender_enc = NULL, recipient_enc = NULL"
                           " WHERE sender_enc IS NOT NULL AND paid_at IS NOT NULL AND paid_at < ?"
                           " AND state NOT IN ('paid', 'printed', 'in_locker')",
                           (now - max(s.history_days, s.id_retention_days) * 86400,))
        return cur.rowcount + old.rowcount

    async def _follow_doors(self, queue: asyncio.Queue[Any]) -> None:
        """The drop-off door: stored ends the posting on the kiosk; a door closed empty or never
        opened leaves it waiting (the screen offers the door again)."""
        while True:
            event = await queue.get()
            live = self.live
            if live is None or live.ticket is None or event.parcel_id != live.ticket.parcel_id:
                continue
            if event.kind == "posting.stored":
                self.finished()
            elif event.kind == "posting.cancelled":
                live.ticket = None
                self._message("dropoff_not_stored")

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            try:
                live = self.live
                if (live is not None and live.paying != "charging"
                        and self._mono() - live.touched > self.settings.idle_timeout):
                    row = await self._row()
                    if row is not None and row["state"] in ("reading_card", "drafting", "priced"):
                        await self.cancel(reason="idle")
                now = self._now()
                await self.db.write(lambda c: self._purge(c, now))
            except Exception:
                log.exception("posting housekeeping failed")

    # ---------------------------------------------------------------- views

    def _touch(self) -> None:
        if self.live:
            self.live.touched = self._mono()

    def _message(self, key: str | None) -> None:
        if self.live:
            self.live.message = key
        self._changed()

    async def _row(self, posting_id: int | None = None) -> sqlite3.Row | None:
        pid = posting_id if posting_id is not None else (self.live.posting_id if self.live else None)
        if pid is None:
            return None
        return await self.db.read(lambda c: c.execute("SELECT * FROM postings WHERE id = ?", (pid,)).fetchone())

    async def _live_row(self, *states: str) -> sqlite3.Row:
        row = await self._row()
        if row is None:
            raise FlowConflict("no posting is under way")
        if row["state"] not in states:
            raise FlowConflict(f"the posting is {row['state']}")
        self._touch()
        return row

    def view_sync(self) -> dict[str, Any]:
        live = self.live
        return {"active": live is not None, "posting_id": live.posting_id if live else None,
                "message": live.message if live else None, "printer": live.printer if live else None,
                "compartment": live.ticket.compartment if live and live.ticket else None}

    async def view(self) -> dict[str, Any]:
        """What the posting screen shows now: masked, never the ID number or a full phone."""
        out = self.view_sync()
        row = await self._row()
        if row is None:
            out["step"] = "notice"
            return out
        state = row["state"]
        step = {"reading_card": "card", "priced": "price", "paid": "printing", "printed": "dropoff",
                "in_locker": "done"}.get(state, state)
        if state == "drafting":
            step = "recipient" if row["recipient_enc"] is None else ("item" if row["category"] is None else "weigh")
        live = self.live
        if state == "priced" and live is not None and live.paying is not None:
            step = "paying"
        out["paying"] = live.paying if live else None
        out["pay_reason"] = live.pay_reason if live else None
        out["methods"] = self.payment_methods()
        sender = json.loads(row["sender_masked"]) if row["sender_masked"] else None
        out.update({
            "step": step, "state": state, "elderly": bool(row["elderly"]), "id_masked": row["id_masked"],
            "sender": sender, "recipient": json.loads(row["recipient_masked"]) if row["recipient_masked"] else None,
            "category": row["category"], "quantity": row["quantity"], "size": row["size"],
            "weight_g": row["weight_g"], "zone": row["zone"], "price_fen": row["price_fen"], "waybill": row["waybill"],
            "payment": row["payment_state"], "leaves_at": row["leaves_at"],
        })
        if self.payments is not None and row["payment_method"] in WALLET_NAMES_ZH and row["waybill"]:
            order = await self.payments.order_for("posting", str(row["id"]))
            if order is not None and order.paid:
                out["receipt"] = self._receipt_view(row, order)
        if row["leaves_at"] is not None:
            promise = self.settings.schedule.promise(
                dt.datetime.fromtimestamp(row["paid_at"] or self._now(), self.settings.schedule.tz))
            out["promise"] = {"next_collection": promise.next_collection.isoformat(timespec="minutes"),
                              "same_day": promise.leaves_same_day,
                              "regional_by": promise.regional_centre_by.isoformat(timespec="minutes")
                              if promise.regional_centre_by else None}
        return out


def _masked_person(person: dict[str, str]) -> str:
    """The masked JSON kept beside the encrypted record: name 张*, phone 138****5678, the place
    down to the district (the street is kept only encrypted)."""
    return json.dumps({
        "name": mask_name(person.get("name") or "") or "",
        "phone": mask_any_phone(person["phone"]) if person.get("phone") else "",
        "place": ("".join(person.get(k, "") for k in ("province", "city", "district")) if "province" in person
                  else mask_address(person.get("address")) or ""),
    }, ensure_ascii=False)


_LANDLINE = re.compile(r"(0\d{2,3})-?(\d{7,8})")


def normalize_any_phone(raw: str) -> str:
    """A mainland mobile (11 digits) or a landline with its area code (``0571-88886666``)."""
    try:
        return normalize_phone(raw)
    except InvalidInput:
        match = _LANDLINE.fullmatch(re.sub(r"[\s()（）]", "", raw or ""))
        if match is None:
            raise
        return f"{match.group(1)}-{match.group(2)}"


def mask_any_phone(phone: str) -> str:
    """``138****5678`` for a mobile, ``0571-****6666`` for a landline (R10)."""
    if "-" in phone:
        area, number = phone.split("-", 1)
        return f"{area}-{'*' * (len(number) - 4)}{number[-4:]}"
    return mask_phone(phone)


def receipt_parts(data: LabelData) -> list[Any]:
    """The posting receipt as text lines (Chinese through the printer's FS & mode), a native Code 128
    of the waybill and a native QR for tracking. Names and phones masked (R10); no ID number."""
    from hal.printer import Code128, QrCode

    yuan = f"{data.price_fen // 100}.{data.price_fen % 100:02d} 元"  # "¥" (U+00A5) is not in GBK
    lines = [data.station, f"寄件回执  {data.posted_at:%Y-%m-%d %H:%M}", f"运单号 {data.waybill}",
             f"寄往 {data.sort_code}", f"收件人 {mask_name(data.recipient_name)} {mask_any_phone(data.recipient_phone)}",
             f"寄件人 {mask_name(data.sender_name)} {mask_any_phone(data.sender_phone)}",
             f"物品 {data.contents} x{data.quantity}  重量 {data.weight_g / 1000:.3f} kg", f"邮费 {yuan}"]
    if data.payment_text:
        lines.append(f"支付 {data.payment_text}")
    if data.dispatch_text:
        lines.append(f"揽收 {data.dispatch_text}")
    return [*lines, Code128(data.waybill), QrCode(data.tracking_url), "请保留本回执，扫码查询物流。"]
