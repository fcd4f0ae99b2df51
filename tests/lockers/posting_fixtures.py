"""A kiosk for posting tests: the real PostingDesk on a Station's custody, with the real hal drivers
talking to the device simulators over ptys (ID-card SAM module, streaming scale, TSPL label printer).

Only the surveillance check is faked (:class:`FakeCamera`), and the card reader is wrapped in a
:class:`ReaderSpy` that counts ``read_card`` calls and, at each, looks (through its own read-only
SQLite connection) for the journal row of the agreed notice: T-E4 is then a fact recorded at the
moment of the read, not inferred afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from firmware_bridge.samv import CardType, Sex, TextBlock
from hal.codes import resident_id_check_char
from hal.idcard import id_card_reader
from hal.printer import printer
from hal.scale import scale
from lockers.custody import CustodySettings, FlowEvent
from lockers.posting import PostingDesk, PostingSettings
from postkiosk.config import Config
from simulators.idcard import make_card, run_idcard_sim
from simulators.scale import run_scale_sim
from simulators.tspl_printer import run_tspl_printer_sim
from tests.lockers.conftest import Station

SENDER_PHONE = "13900001111"
RECIPIENT = {"name": "李四", "phone": "13812345678", "province": "北京市", "city": "北京市",
             "district": "海淀区", "street": "中关村大街27号"}


class FakeCamera:
    """The surveillance health check: up (True, "") or down (False, "no frames")."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0

    async def __call__(self) -> tuple[bool, str]:
        self.calls += 1
        return (True, "") if self.up else (False, "no frames")


class ReaderSpy:
    """The real reader, with every ``read_card`` call counted and the journal looked at first."""

    def __init__(self, reader: Any, db_path: Path) -> None:
        self.reader = reader
        self.db_path = db_path
        self.calls = 0
        #: per call: (id of the latest 'posting_notice_agreed' row or None, the latest event id)
        self.seen: list[tuple[int | None, int | None]] = []

    def _journal_now(self) -> tuple[int | None, int | None]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            agreed = conn.execute("SELECT MAX(id) FROM events WHERE kind = 'posting_notice_agreed'").fetchone()[0]
            last = conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
            return agreed, last
        finally:
            conn.close()

    async def read_card(self, timeout: float | None = 0.0) -> Any:
        self.calls += 1
        self.seen.append(self._journal_now())
        return await self.reader.read_card(timeout=timeout)

    def take_photo(self) -> bytes | None:
        return self.reader.take_photo()


def station_today(clock: Callable[[], float], settings: PostingSettings) -> dt.date:
    """The station's local date, as the posting flow computes ages."""
    return dt.datetime.fromtimestamp(clock(), settings.schedule.tz).date()


def years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def resident_card(today: dt.date, *, age: int = 40, serial: int = 123, rng: random.Random | None = None,
                  **overrides: Any) -> TextBlock:
    """A synthetic resident card whose holder is ``age`` on ``today`` (born a month after the
    birthday's anniversary), with a valid GB 11643 number; ``serial`` tells residents apart."""
    birth = years_before(today, age) - dt.timedelta(days=30)
    body = f"110101{birth:%Y%m%d}{(serial % 500) * 2 + 1:03d}"  # odd: male
    fields: dict[str, Any] = {"birth": birth, "sex": Sex.MALE, "id_number": body + resident_id_check_char(body)}
    fields.update(overrides)
    return make_card(CardType.RESIDENT, rng=rng or random.Random(serial), **fields)


def wrong_check_character(number: str) -> str:
    """The same number with another check character (a misread)."""
    return number[:17] + ("0" if number[17] != "0" else "1")


async def until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` (a function, or one returning an awaitable) until true or the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.02)


class Kiosk:
    """A station (custody over a fake wall) plus the posting desk and its simulated devices."""

    def __init__(self, tmp: Path, custody_settings: CustodySettings | None = None) -> None:
        self.tmp = tmp
        self.station = Station(tmp, custody_settings or CustodySettings(
            deposit_open_timeout=2.0, deposit_close_timeout=15.0, pickup_open_timeout=2.0,
            notice_retry_delays=(0.05, 0.05)))
        self.camera = FakeCamera()
        self.settings: PostingSettings = dataclasses.replace(
            Config().posting_settings(), card_timeout=15.0, weigh_timeout=15.0)
        self.desks: list[PostingDesk] = []
        self.payment: Any = None

    async def start(self) -> None:
        await self.station.start()
        self.idcard = await run_idcard_sim("pty", seed=7)
        self.scale_sim = await run_scale_sim("pty", rate_hz=50, settle_lines=5)
        self.printer_sim = await run_tspl_printer_sim("pty")
        self.reader = id_card_reader("samv-serial", url=self.idcard.url, reply_timeout=0.5, poll_interval=0.05)
        await self.reader.open()
        self.scale = scale("serial-lines", url=self.scale_sim.url)
        await self.scale.open()
        self.label_printer = printer("tspl", self.printer_sim.url, "label-76x130")
        await self.label_printer.open()
        self.spy = ReaderSpy(self.reader, self.station.db.path)
        self.desk = await self.new_desk()

    def make_desk(self, **overrides: Any) -> PostingDesk:
        """A desk on this station's database and devices (not started)."""
        options: dict[str, Any] = dict(
            db=self.station.db, keys=self.keys, custody=self.station.custody, settings=self.settings,
            reader=self.spy, scale=self.scale, label_printer=self.label_printer, surveillance=self.camera,
            payment=self.payment, clock=self.station.clock)
        options.update(overrides)
        desk = PostingDesk(**options)
        self.desks.append(desk)
        return desk

    async def new_desk(self, **overrides: Any) -> PostingDesk:
        """A started desk: what the service does at start-up (interrupted postings are cancelled)."""
        desk = self.make_desk(**overrides)
        await desk.start()
        return desk

    async def stop(self) -> None:
        for desk in self.desks:
            await desk.stop()
        for device in (self.reader, self.scale, self.label_printer):
            await device.close()
        for sim in (self.idcard, self.scale_sim, self.printer_sim):
            await sim.close()
        await self.station.stop()

    # ------------------------------------------------------------------ what the tests look at

    @property
    def keys(self) -> Any:
        assert self.station.custody is not None
        return self.station.custody.keys

    @property
    def db(self) -> Any:
        return self.station.db

    def today(self) -> dt.date:
        return station_today(self.station.clock, self.settings)

    def card(self, **options: Any) -> TextBlock:
        return resident_card(self.today(), **options)

    async def row(self, posting_id: int) -> sqlite3.Row:
        return await self.db.read(lambda c: c.execute("SELECT * FROM postings WHERE id = ?",
                                                      (posting_id,)).fetchone())

    async def state(self, posting_id: int) -> str:
        return (await self.row(posting_id))["state"]

    async def events(self, kind: str | None = None) -> list[sqlite3.Row]:
        if kind is None:
            return await self.db.read(lambda c: c.execute("SELECT * FROM events ORDER BY id").fetchall())
        return await self.db.read(lambda c: c.execute("SELECT * FROM events WHERE kind = ? ORDER BY id",
                                                      (kind,)).fetchall())

    async def wait_step(self, step: str, desk: PostingDesk | None = None, timeout: float = 5.0) -> dict[str, Any]:
        desk = desk or self.desk
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            seen.update(await desk.view())
            return seen.get("step") == step

        try:
            await until(reached, timeout, f"step {step}")
        except AssertionError as err:
            raise AssertionError(f"{err}; last view: step={seen.get('step')} message={seen.get('message')}") from None
        return seen

    async def wait_state(self, posting_id: int, state: str, timeout: float = 5.0) -> None:
        async def reached() -> bool:
            return await self.state(posting_id) == state
        await until(reached, timeout, f"posting {posting_id} {state}")

    # ------------------------------------------------------------------ what a resident does

    async def identify(self, card: TextBlock | None = None, desk: PostingDesk | None = None) -> int:
        """Card on the pad, notice agreed, card read: returns the posting id (step 'recipient')."""
        desk = desk or self.desk
        self.idcard.present_card(card or self.card())
        view = await desk.begin(agreed=True)
        await self.wait_step("recipient", desk)
        return int(view["posting_id"])

    async def address(self, desk: PostingDesk | None = None, sender_phone: str | None = SENDER_PHONE,
                      **recipient: Any) -> dict[str, Any]:
        desk = desk or self.desk
        fields = {**RECIPIENT, **recipient}
        return await desk.set_recipient(sender_phone=sender_phone, **fields)

    async def priced(self, grams: int = 1234, category: str = "books", desk: PostingDesk | None = None
                     ) -> dict[str, Any]:
        """The item declared and weighed: the price step."""
        desk = desk or self.desk
        self.scale_sim.sim.put_weight(grams)
        await desk.set_item(category=category, quantity=1, declared=True)
        return await self.wait_step("price", desk)

    async def printed(self, desk: PostingDesk | None = None) -> tuple[int, str]:
        """Confirm, wait for the label and the open drop-off door: (posting id, compartment)."""
        desk = desk or self.desk
        view = await desk.confirm()
        await self.wait_state(view["posting_id"], "printed")
        await until(lambda: desk.live is not None and desk.live.ticket is not None, what="drop-off door")
        assert desk.live is not None and desk.live.ticket is not None
        label = desk.live.ticket.compartment
        await self.door_reads(label, "open")
        return view["posting_id"], label

    async def door_reads(self, label: str, state: str) -> None:
        spec = self.station.spec(label)
        custody = self.station.custody
        assert custody is not None
        await until(lambda: custody.doors.reading(spec.address).door.value == state, what=f"{label} {state}")

    async def put_in(self, posting_id: int, label: str, desk: PostingDesk | None = None) -> None:
        desk = desk or self.desk
        spec = self.station.spec(label)
        self.station.bank.put_parcel(spec.board, spec.channel)
        self.station.bank.close_by_hand(spec.board, spec.channel)
        await self.wait_state(posting_id, "in_locker")
        await until(lambda: desk.live is None, what="the kiosk free again")

    async def post(self, card: TextBlock | None = None, desk: PostingDesk | None = None, grams: int = 1234,
                   **recipient: Any) -> tuple[int, str]:
        """A whole posting, into the locker: (posting id, compartment)."""
        await self.identify(card, desk)
        await self.address(desk, **recipient)
        await self.priced(grams, desk=desk)
        posting_id, label = await self.printed(desk)
        await self.put_in(posting_id, label, desk)
        return posting_id, label

    async def wait_event(self, queue: asyncio.Queue[FlowEvent], kind: str, timeout: float = 5.0) -> FlowEvent:
        return await self.station.wait_event(queue, kind, timeout)
