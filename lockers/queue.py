"""The counter queue: numbered tickets per business day, residents of 60+ called first.

Service plan §1: residents aged 60 or more are served without queueing. The kiosk issues tickets;
a staff screen calls them; the kiosk home screen shows the number called and the expected wait.

Numbers: two lanes a day, ``A001``.. for normal tickets and ``P001``.. for priority tickets, each
restarting at 1 on every business day (the station's local date, Asia/Shanghai by default: a ticket
taken at 23:59 is yesterday's, one at 00:00 today's). 999 tickets per lane a day; the next is refused
(``QueueRefused("full")``). Tickets of past days still waiting or called are closed as ``expired`` the
first time the queue is touched on a new day.

Order: every waiting priority ticket before any normal one, first come first called within each
(ticket id, which is issue order; an ``A`` ticket raised to priority by staff keeps its number and
its place by issue time among the priority tickets).

States: ``waiting`` -> ``called`` (at a counter) -> ``served`` (the counter calls its next ticket, or
``finish``) or ``skipped`` (the resident did not come; a skipped ticket can be called again with
``recall``) -> ``expired`` (a past day's ticket left open).

Estimated wait (``estimated_wait``): people ahead x average service time / counters open. The average
is the mean of the last ``average_of_last`` service times of today (called -> served, each capped at
``max_sample_seconds`` so a ticket left open over lunch does not swamp it); with no served ticket today
it is ``default_service_seconds`` (180 s). Counters open: counters that called a ticket in the last
``counter_active_seconds`` (30 min), at least 1.

Priority by ID card (T-E4): the resident sees why the card is read (only to check age >= 60; nothing is
kept) and agrees; the agreement is journaled; only then is the reader asked for a card. The card goes
through :func:`lockers.identity.identity_from_card` for the age; nothing of it is stored, not even a
keyed hash: the ticket holds only the priority flag and the reason ``age_card``.

Tickets keep no personal data; every change is committed in SQLite and journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from hal.errors import HalError
from lockers import journal
from lockers.db import Database
from lockers.errors import CustodyError, InvalidInput
from lockers.identity import IdentityRefused, identity_from_card

log = logging.getLogger(__name__)

LANES = {False: "A", True: "P"}  # normal, priority
MAX_PER_LANE = 999
PRIORITY_REASONS = ("age_card", "staff")
NUMBER_RE = re.compile(r"[AP]\d{3}")
COUNTER_RE = re.compile(r"[\w\- ]{1,16}")  # "1", "窗口2", "counter-3": shown on the home screen

#: every outcome of a priority request by ID card (``AgeCheck.outcome``)
AGE_CHECK_OUTCOMES = ("priority", "not_elderly", "no_card", "card_refused", "card_rejected", "reader_failed",
                      "cancelled")


class QueueRefused(CustodyError):
    """The queue cannot do this. ``reason``: ``unknown_ticket`` (no such ticket today), ``full`` (999
    tickets in the lane today), ``not_waiting`` (the ticket was already called or is over),
    ``not_called`` (recall/skip of a ticket that is not called or skipped), ``no_reader`` (no ID card
    reader at this station), ``card_busy`` (a card is being read for another request)."""

    code = "queue_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(f"queue: {reason.replace('_', ' ')}")
        self.reason = reason


@dataclass(frozen=True)
class QueueSettings:
    """Times in seconds. ``tz``: the station's zone; the business day is its local date."""

    tz: ZoneInfo = ZoneInfo("Asia/Shanghai")
    default_service_seconds: float = 180.0
    average_of_last: int = 10
    max_sample_seconds: float = 1800.0
    counter_active_seconds: float = 1800.0
    card_timeout: float = 30.0
    elderly_age: int = 60
    station_name: str = "社区邮政服务点"
    qr_prefix: str = "postkiosk-queue:"
    print_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("default_service_seconds", "max_sample_seconds", "counter_active_seconds", "card_timeout",
                     "print_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"queue setting {name} must be a positive number of seconds")
        if not 1 <= self.average_of_last <= 1000:
            raise ValueError("queue setting average_of_last must be 1 to 1000 calls")
        if not isinstance(self.tz, dt.tzinfo):
            raise ValueError("queue setting tz must be a time zone (zoneinfo.ZoneInfo)")


@dataclass(frozen=True)
class Ticket:
    """One queue ticket. ``number`` (``A012``) is what the resident holds; ``priority`` decides the
    order (it may be raised by staff on an ``A`` ticket); ``reason`` says why it is priority."""

    id: int
    day: str
    number: str
    priority: bool
    reason: str | None
    state: str
    taken_at: float
    called_at: float | None = None
    counter: str | None = None
    calls: int = 0

    def public(self) -> dict[str, Any]:
        return {"number": self.number, "day": self.day, "priority": self.priority, "reason": self.reason,
                "state": self.state, "taken_at": self.taken_at, "called_at": self.called_at,
                "counter": self.counter, "calls": self.calls}


@dataclass(frozen=True)
class AgeCheck:
    """The result of a priority request by ID card: ``outcome`` in :data:`AGE_CHECK_OUTCOMES`, the
    priority ticket when ``outcome == "priority"``, and for ``card_refused`` the
    :data:`lockers.identity.REFUSAL_REASONS` key (``expired`` ...)."""

    outcome: str
    ticket: Ticket | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class PrintOutcome:
    """``printed``: the ticket went to the printer. ``problem``: ``no_printer``, ``not_ready`` (with the
    printer's ``reasons``: paper_out, cover_open ...) or ``failed``."""

    printed: bool
    problem: str | None = None
    reasons: tuple[str, ...] = ()


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(row["id"], row["day"], row["number"], bool(row["priority"]), row["priority_reason"], row["state"],
                  row["taken_at"], row["called_at"], row["counter"], row["calls"])


def check_number(number: str) -> str:
    """``A012``-style ticket number, upper-cased; InvalidInput("ticket") otherwise."""
    clean = (number or "").strip().upper() if isinstance(number, str) else ""
    if not NUMBER_RE.fullmatch(clean):
        raise InvalidInput("ticket", "a ticket number is A or P and 3 digits")
    return clean


def check_counter(counter: str) -> str:
    clean = (counter or "").strip() if isinstance(counter, str) else ""
    if not COUNTER_RE.fullmatch(clean):
        raise InvalidInput("counter", "a counter name is 1 to 16 letters, digits, spaces or '-'")
    return clean


class QueueDesk:
    """The queue of one station. ``reader``: a ``hal.idcard.IdCardReader`` (None: priority by card is
    not offered, the resident asks the staff). ``receipt_printer``: a ``hal.printer.Printer`` (None:
    the ticket is only shown on screen). ``clock``: wall time in seconds (tests skip days with it)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time, settings: QueueSettings | None = None,
                 *, reader: Any = None, receipt_printer: Any = None) -> None:
        self.db = db
        self._now = clock
        self.settings = settings or QueueSettings()
        self.reader = reader
        self.receipt_printer = receipt_printer
        self._card_lock = asyncio.Lock()
        self._reading: asyncio.Task[AgeCheck] | None = None
        self.read_calls = 0  # how many times the reader was asked for a card (T-E4 tests)

    # ---------------------------------------------------------------- time

    def day_of(self, at: float) -> str:
        """The business day (``YYYY-MM-DD`` in the station's zone) of a wall-clock time."""
        return dt.datetime.fromtimestamp(at, self.settings.tz).date().isoformat()

    def _expire_past(self, conn: sqlite3.Connection, now: float, day: str) -> None:
        """Close tickets of past days that were never served (the queue starts empty every day)."""
        cur = conn.execute("UPDATE queue_tickets SET state = 'expired', ended_at = ? WHERE day < ?"
                           " AND state IN ('waiting', 'called')", (now, day))
        if cur.rowcount:
            journal.append(conn, at=now, kind="queue_expired", actor="system", tickets=cur.rowcount)

    # ---------------------------------------------------------------- tickets

    async def take(self, priority: bool, reason: str | None = None) -> Ticket:
        """Issue the next ticket of today in its lane. ``reason`` is ``age_card`` or ``staff`` for a
        priority ticket and None for a normal one (ValueError otherwise: callers decide priority)."""
        if priority and reason not in PRIORITY_REASONS:
            raise ValueError(f"a priority ticket needs a reason: {', '.join(PRIORITY_REASONS)}")
        if not priority and reason is not None:
            raise ValueError("a normal ticket has no priority reason")
        now = self._now()
        day, lane = self.day_of(now), LANES[bool(priority)]

        def tx(conn: sqlite3.Connection) -> Ticket:
            self._expire_past(conn, now, day)
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM queue_tickets WHERE day = ? AND lane = ?",
                               (day, lane)).fetchone()[0]
            if seq > MAX_PER_LANE:
                raise QueueRefused("full")
            number = f"{lane}{seq:03d}"
            cur = conn.execute("INSERT INTO queue_tickets (day, lane, seq, number, priority, priority_reason, taken_at)"
                               " VALUES (?, ?, ?, ?, ?, ?, ?)", (day, lane, seq, number, int(priority), reason, now))
            journal.append(conn, at=now, kind="queue_ticket_taken", actor="staff" if reason == "staff" else "resident",
                           ticket=number, priority=bool(priority), reason=reason)
            return _ticket(conn.execute("SELECT * FROM queue_tickets WHERE id = ?", (cur.lastrowid,)).fetchone())

        return await self.db.write(tx)

    async def ticket(self, number: str) -> Ticket:
        """Today's ticket ``number``; ``QueueRefused("unknown_ticket")`` when there is none."""
        number = check_number(number)
        day = self.day_of(self._now())
        row = await self.db.read(lambda c: c.execute("SELECT * FROM queue_tickets WHERE day = ? AND number = ?",
                                                     (day, number)).fetchone())
        if row is None:
            raise QueueRefused("unknown_ticket")
        return _ticket(row)

    # ---------------------------------------------------------------- staff

    async def call_next(self, counter: str, staff: str) -> Ticket | None:
        """End the ticket called at ``counter`` as served and call the next one (priority first, then
        normal, first come first called); None when nobody waits."""
        counter = check_counter(counter)
        now = self._now()
        day = self.day_of(now)

        def tx(conn: sqlite3.Connection) -> Ticket | None:
            self._expire_past(conn, now, day)
            self._release_counter(conn, counter, staff, now, day)
            row = conn.execute("SELECT * FROM queue_tickets WHERE day = ? AND state = 'waiting'"
                               " ORDER BY priority DESC, id LIMIT 1", (day,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE queue_tickets SET state = 'called', counter = ?, called_at = ?, calls = calls + 1"
                         " WHERE id = ?", (counter, now, row["id"]))
            journal.append(conn, at=now, kind="queue_called", actor=staff, ticket=row["number"], counter=counter,
                           priority=bool(row["priority"]), waited=round(now - row["taken_at"]))
            return self._row(conn, row["id"])

        return await self.db.write(tx)

    async def finish(self, counter: str, staff: str) -> Ticket | None:
        """End the ticket called at ``counter`` as served without calling another (a break, closing
        time). Returns the ticket served, or None."""
        counter = check_counter(counter)
        now = self._now()
        day = self.day_of(now)
        return await self.db.write(lambda conn: self._release_counter(conn, counter, staff, now, day))

    async def recall(self, number: str, counter: str, staff: str) -> Ticket:
        """Call a called or skipped ticket again (the resident did not come at once, or came back after
        being skipped). Another ticket called at ``counter`` ends as served."""
        number, counter = check_number(number), check_counter(counter)
        now = self._now()
        day = self.day_of(now)

        def tx(conn: sqlite3.Connection) -> Ticket:
            row = self._today(conn, day, number)
            if row["state"] not in ("called", "skipped"):
                raise QueueRefused("not_called")
            self._release_counter(conn, counter, staff, now, day, keep=row["id"])
            conn.execute("UPDATE queue_tickets SET state = 'called', counter = ?, called_at = ?, calls = calls + 1,"
                         " ended_at = NULL WHERE id = ?", (counter, now, row["id"]))
            journal.append(conn, at=now, kind="queue_recalled", actor=staff, ticket=number, counter=counter,
                           was=row["state"])
            return self._row(conn, row["id"])

        return await self.db.write(tx)

    async def skip(self, number: str, staff: str) -> Ticket:
        """The called resident did not come: the ticket is set aside (``recall`` brings it back)."""
        number = check_number(number)
        now = self._now()
        day = self.day_of(now)

        def tx(conn: sqlite3.Connection) -> Ticket:
            row = self._today(conn, day, number)
            if row["state"] != "called":
                raise QueueRefused("not_called")
            conn.execute("UPDATE queue_tickets SET state = 'skipped', ended_at = ? WHERE id = ?", (now, row["id"]))
            journal.append(conn, at=now, kind="queue_skipped", actor=staff, ticket=number, counter=row["counter"])
            return self._row(conn, row["id"])

        return await self.db.write(tx)

    async def override_priority(self, ticket_no: str, staff: str) -> Ticket:
        """Staff raise a waiting ticket to priority (a resident of 60+ without their card, a pregnant
        woman, a disability): the number stays, the place moves among the priority tickets by issue
        time. A ticket already priority is returned unchanged."""
        number = check_number(ticket_no)
        now = self._now()
        day = self.day_of(now)

        def tx(conn: sqlite3.Connection) -> Ticket:
            row = self._today(conn, day, number)
            if row["priority"]:
                return _ticket(row)
            if row["state"] != "waiting":
                raise QueueRefused("not_waiting")
            conn.execute("UPDATE queue_tickets SET priority = 1, priority_reason = 'staff' WHERE id = ?", (row["id"],))
            journal.append(conn, at=now, kind="queue_priority_override", actor=staff, ticket=number)
            return self._row(conn, row["id"])

        return await self.db.write(tx)

    def _today(self, conn: sqlite3.Connection, day: str, number: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM queue_tickets WHERE day = ? AND number = ?", (day, number)).fetchone()
        if row is None:
            raise QueueRefused("unknown_ticket")
        return row

    @staticmethod
    def _row(conn: sqlite3.Connection, ticket_id: int) -> Ticket:
        return _ticket(conn.execute("SELECT * FROM queue_tickets WHERE id = ?", (ticket_id,)).fetchone())

    @staticmethod
    def _release_counter(conn: sqlite3.Connection, counter: str, staff: str, now: float, day: str,
                         keep: int | None = None) -> Ticket | None:
        rows = conn.execute("SELECT * FROM queue_tickets WHERE day = ? AND state = 'called' AND counter = ?"
                            " AND id != ?", (day, counter, keep or 0)).fetchall()
        for row in rows:
            conn.execute("UPDATE queue_tickets SET state = 'served', ended_at = ? WHERE id = ?", (now, row["id"]))
            journal.append(conn, at=now, kind="queue_served", actor=staff, ticket=row["number"], counter=counter,
                           seconds=round(now - row["called_at"]))
        return QueueDesk._row(conn, rows[-1]["id"]) if rows else None

    # ---------------------------------------------------------------- what screens show

    async def serving(self) -> Ticket | None:
        """The ticket called last today (the number the home screen shows), or None."""
        day = self.day_of(self._now())
        row = await self.db.read(lambda c: c.execute(
            "SELECT * FROM queue_tickets WHERE day = ? AND state = 'called' ORDER BY called_at DESC, id DESC LIMIT 1",
            (day,)).fetchone())
        return _ticket(row) if row else None

    async def called(self) -> list[Ticket]:
        """Every ticket called now, one per counter at most, newest first."""
        day = self.day_of(self._now())
        rows = await self.db.read(lambda c: c.execute(
            "SELECT * FROM queue_tickets WHERE day = ? AND state = 'called' ORDER BY called_at DESC, id DESC",
            (day,)).fetchall())
        return [_ticket(r) for r in rows]

    async def waiting(self) -> dict[str, int]:
        """How many tickets wait today: ``{"priority": n, "normal": n, "total": n}``."""
        day = self.day_of(self._now())
        rows = await self.db.read(lambda c: c.execute(
            "SELECT priority, COUNT(*) FROM queue_tickets WHERE day = ? AND state = 'waiting' GROUP BY priority",
            (day,)).fetchall())
        counts = {bool(p): n for p, n in rows}
        return {"priority": counts.get(True, 0), "normal": counts.get(False, 0),
                "total": counts.get(True, 0) + counts.get(False, 0)}

    async def waiting_tickets(self, limit: int = 200) -> list[Ticket]:
        """Today's waiting tickets in calling order (for the staff screen)."""
        day = self.day_of(self._now())
        rows = await self.db.read(lambda c: c.execute(
            "SELECT * FROM queue_tickets WHERE day = ? AND state IN ('waiting', 'skipped')"
            " ORDER BY state = 'skipped', priority DESC, id LIMIT ?", (day, limit)).fetchall())
        return [_ticket(r) for r in rows]

    async def average_service_seconds(self) -> float:
        """Mean of today's last ``average_of_last`` service times (each capped), else the default."""
        s = self.settings
        day = self.day_of(self._now())
        rows = await self.db.read(lambda c: c.execute(
            "SELECT ended_at - called_at FROM queue_tickets WHERE day = ? AND state = 'served'"
            " AND called_at IS NOT NULL ORDER BY ended_at DESC, id DESC LIMIT ?", (day, s.average_of_last)).fetchall())
        samples = [min(max(0.0, r[0]), s.max_sample_seconds) for r in rows]
        return sum(samples) / len(samples) if samples else s.default_service_seconds

    async def open_counters(self) -> int:
        """Counters that called a ticket in the last ``counter_active_seconds``; at least 1."""
        now = self._now()
        since = now - self.settings.counter_active_seconds
        day = self.day_of(now)
        n = await self.db.read(lambda c: c.execute(
            "SELECT COUNT(DISTINCT counter) FROM queue_tickets WHERE day = ? AND called_at >= ?",
            (day, since)).fetchone()[0])
        return max(1, int(n))

    async def ahead_of(self, ticket: Ticket | None) -> int:
        """Waiting tickets that will be called before ``ticket`` (None: a normal ticket taken now)."""
        day = self.day_of(self._now())
        if ticket is None:
            sql, args = "SELECT COUNT(*) FROM queue_tickets WHERE day = ? AND state = 'waiting'", (day,)
        elif ticket.state != "waiting":
            return 0
        elif ticket.priority:
            sql = "SELECT COUNT(*) FROM queue_tickets WHERE day = ? AND state = 'waiting' AND priority = 1 AND id < ?"
            args = (day, ticket.id)
        else:
            sql = ("SELECT COUNT(*) FROM queue_tickets WHERE day = ? AND state = 'waiting'"
                   " AND (priority = 1 OR id < ?)")
            args = (day, ticket.id)
        return int(await self.db.read(lambda c: c.execute(sql, args).fetchone()[0]))

    async def estimated_wait(self, ticket: Ticket | None = None) -> int:
        """Seconds until ``ticket`` is likely called (0 for a ticket no longer waiting); None: a normal
        ticket taken now. People ahead x average service time / counters open, rounded up."""
        if ticket is not None and ticket.state != "waiting":
            return 0
        ahead = await self.ahead_of(ticket)
        average = await self.average_service_seconds()
        return math.ceil(ahead * average / await self.open_counters())

    async def board(self) -> dict[str, Any]:
        """What the home screen shows: the number called last and where, the waiting counts, and the
        expected wait of a normal ticket taken now (seconds)."""
        serving = await self.serving()
        return {"serving": serving.public() if serving else None, "waiting": await self.waiting(),
                "wait_seconds": await self.estimated_wait(None)}

    # ---------------------------------------------------------------- priority by ID card

    async def take_by_age_card(self, *, agreed: bool) -> AgeCheck:
        """A priority ticket for a resident whose ID card shows 60 or more. The resident agreed to the
        notice (why the card is read: only the age; nothing is kept): that is journaled first, and only
        then is the reader asked for a card (T-E4). Nothing of the card is kept or logged."""
        if not agreed:
            raise InvalidInput("agreed", "the notice must be agreed to before the ID card is read")
        if self.reader is None:
            raise QueueRefused("no_reader")
        if self._card_lock.locked():
            raise QueueRefused("card_busy")
        async with self._card_lock:
            now = self._now()
            await self.db.write(lambda c: journal.append(c, at=now, kind="queue_card_notice_agreed",
                                                         actor="resident"))
            self._reading = asyncio.create_task(self._read_age(), name="queue-age-card")
            try:
                check = await self._reading
            except asyncio.CancelledError:
                if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
                check = AgeCheck("cancelled")
            finally:
                self._reading = None
            if check.outcome == "elderly":
                check = AgeCheck("priority", await self.take(True, "age_card"))
            now = self._now()
            outcome, refusal = check.outcome, check.refusal
            await self.db.write(lambda c: journal.append(c, at=now, kind="queue_age_checked", actor="resident",
                                                         outcome=outcome, refusal=refusal,
                                                         ticket=check.ticket.number if check.ticket else None))
            return check

    def cancel_card(self) -> bool:
        """Stop waiting for a card (the resident tapped Cancel). True when a read was under way."""
        if self._reading is None or self._reading.done():
            return False
        self._reading.cancel()
        return True

    async def _read_age(self) -> AgeCheck:
        """Ask the reader until a card is read or ``card_timeout`` passes; the age is all that is
        looked at. The card photo is taken from the reader and dropped at every read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.card_timeout
        while loop.time() < deadline:
            self.read_calls += 1
            try:
                card = await self.reader.read_card(timeout=min(2.0, max(0.1, deadline - loop.time())))
            except HalError as err:
                from hal.idcard import CardReadFailed, CardRejected

                log.info("queue: ID card not read (%s)", type(err).__name__)
                if isinstance(err, CardRejected):
                    return AgeCheck("card_rejected")
                if isinstance(err, CardReadFailed):
                    await asyncio.sleep(0.3)
                    continue
                return AgeCheck("reader_failed")
            finally:
                with contextlib.suppress(Exception):
                    self.reader.take_photo()  # dropped unread (T-E4)
            if card is None:
                continue
            today = dt.datetime.fromtimestamp(self._now(), self.settings.tz).date()
            try:
                elderly = identity_from_card(card, today, elderly_age=self.settings.elderly_age).elderly
            except IdentityRefused as err:
                return AgeCheck("card_refused", refusal=err.reason)
            finally:
                del card  # nothing of the card outlives this check
            return AgeCheck("elderly" if elderly else "not_elderly")
        return AgeCheck("no_card")

    # ---------------------------------------------------------------- printing

    async def print_ticket(self, ticket: Ticket) -> PrintOutcome:
        """Print ``ticket`` on the receipt printer when one is configured and ready. A printer that is
        not ready is not waited for: the ticket is valid on screen (the resident is standing there)."""
        from hal.printer import PrinterNotReady

        printer = self.receipt_printer
        if printer is None:
            return PrintOutcome(False, "no_printer")
        ahead = await self.ahead_of(ticket)
        wait = await self.estimated_wait(ticket)
        width = getattr(getattr(printer, "profile", None), "width_dots", 384)
        parts = ticket_parts(ticket, station=self.settings.station_name, ahead=ahead, wait_seconds=wait,
                             qr_prefix=self.settings.qr_prefix, tz=self.settings.tz, width_dots=width)
        try:
            if not getattr(printer, "is_open", True):
                await printer.open()
            await asyncio.wait_for(printer.print_job(parts), self.settings.print_timeout)
        except PrinterNotReady as err:
            log.warning("queue ticket not printed: printer not ready (%s)", ", ".join(err.status.problems))
            return PrintOutcome(False, "not_ready", tuple(err.status.problems))
        except (HalError, TimeoutError) as err:
            log.warning("queue ticket not printed: %s", type(err).__name__)
            return PrintOutcome(False, "failed")
        return PrintOutcome(True)

    def qr_text(self, ticket: Ticket) -> str:
        """The QR content of a ticket: ``postkiosk-queue:A012`` (no personal data)."""
        return f"{self.settings.qr_prefix}{ticket.number}"


def ticket_parts(ticket: Ticket, *, station: str, ahead: int, wait_seconds: int, qr_prefix: str,
                 tz: dt.tzinfo, width_dots: int = 384) -> list[Any]:
    """The printed ticket (Chinese, as the posting receipt): the number large when the label font is
    installed, then text lines through the printer's GBK mode, and a native QR of the number."""
    from hal.printer import QrCode

    taken = dt.datetime.fromtimestamp(ticket.taken_at, tz)
    lines: list[Any] = [station]
    big = _number_image(ticket.number, width_dots)
    if big is not None:
        lines.append(big)
    lines += [f"排队号 {ticket.number}" + ("  优先(60岁以上)" if ticket.priority else ""),
              f"取号时间 {taken:%Y-%m-%d %H:%M}",
              f"前面还有 {ahead} 人，预计等候约 {max(1, math.ceil(wait_seconds / 60)) if ahead else 0} 分钟",
              QrCode(f"{qr_prefix}{ticket.number}"),
              "请留意叫号屏幕，过号请联系工作人员。当日有效。"]
    return lines


def _number_image(number: str, width_dots: int) -> Any:
    """The ticket number in large type as a 1-bit strip ``width_dots`` wide, or None when the label
    font is not installed (the text line still carries the number)."""
    from PIL import Image, ImageDraw, ImageFont

    from lockers.label import FONT_PATH

    try:
        font = ImageFont.truetype(str(FONT_PATH), 96, index=0)
    except OSError:
        return None
    strip = Image.new("1", (width_dots, 120), 1)
    draw = ImageDraw.Draw(strip)
    draw.fontmode = "1"
    draw.text((width_dots // 2, 60), number, font=font, fill=0, anchor="mm")
    return strip


def qr_png(text: str, module: int = 8) -> bytes:
    """A QR code of ``text`` as a 1-bit PNG (``module`` pixels a module, quiet zone included): the
    same symbol the receipt printer draws, for the ticket on screen."""
    import io

    from PIL import Image

    from hal.printer import QrCode, render_code

    symbol = render_code(QrCode(text, module=module))
    quiet = 4 * module
    framed = Image.new("1", (symbol.width + 2 * quiet, symbol.height + 2 * quiet), 1)
    framed.paste(symbol, (quiet, quiet))
    buf = io.BytesIO()
    framed.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
