"""The counter queue: priority first, numbers per business day (Asia/Shanghai midnight), estimates from
today's service times, staff override, the T-E4 notice before the card is read, nothing of the card
kept, and the printed ticket read back from the ESC/POS simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from zoneinfo import ZoneInfo

import pytest
import zxingcpp

from hal.idcard import CardType
from hal.printer import printer
from lockers import journal
from lockers.db import Database
from lockers.errors import InvalidInput
from lockers.queue import QueueDesk, QueueRefused, QueueSettings
from simulators.escpos_printer import run_escpos_printer_sim
from simulators.fake_idcard import FakeIdCardReader
from tests.lockers.posting_fixtures import resident_card

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self, when: dt.datetime) -> None:
        self.t = when.timestamp()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class JournalSpy:
    """A card reader that, at each read, looks at the journal through its own connection (T-E4)."""

    def __init__(self, reader: FakeIdCardReader, path) -> None:
        self.reader, self.path = reader, path
        self.agreed_at_read: list[bool] = []

    async def read_card(self, timeout: float | None = 0.0):
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            self.agreed_at_read.append(conn.execute(
                "SELECT COUNT(*) FROM events WHERE kind = 'queue_card_notice_agreed'").fetchone()[0] > 0)
        finally:
            conn.close()
        return await self.reader.read_card(timeout=timeout)

    def take_photo(self):
        return self.reader.take_photo()


@pytest.fixture
async def desk(tmp_path):
    db = Database(tmp_path / "custody.sqlite3")
    await db.open()
    clock = Clock(dt.datetime(2026, 12, 7, 9, 0, tzinfo=SHANGHAI))
    q = QueueDesk(db, clock, QueueSettings(card_timeout=1.0))
    q.clock = clock
    yield q
    await db.close()


async def test_priority_tickets_are_called_first_then_first_come_first_called(desk):
    a1 = await desk.take(False)
    a2 = await desk.take(False)
    p1 = await desk.take(True, "age_card")
    a3 = await desk.take(False)
    p2 = await desk.take(True, "staff")
    assert [t.number for t in (a1, a2, p1, a3, p2)] == ["A001", "A002", "P001", "A003", "P002"]
    assert await desk.waiting() == {"priority": 2, "normal": 3, "total": 5}
    called = [(await desk.call_next("1", "wang.fang")).number for _ in range(5)]
    assert called == ["P001", "P002", "A001", "A002", "A003"]
    assert await desk.call_next("1", "wang.fang") is None
    assert await desk.waiting() == {"priority": 0, "normal": 0, "total": 0}


async def test_a_staff_override_moves_a_ticket_among_the_priority_tickets_by_issue_time(desk):
    a1 = await desk.take(False)
    a2 = await desk.take(False)
    p1 = await desk.take(True, "age_card")
    raised = await desk.override_priority("a002", "wang.fang")
    assert raised.number == "A002" and raised.priority and raised.reason == "staff"
    assert (await desk.override_priority("A002", "wang.fang")) == raised  # idempotent
    assert [(await desk.call_next("1", "s")).number for _ in range(3)] == ["A002", "P001", "A001"]
    with pytest.raises(QueueRefused) as refused:
        await desk.override_priority(a1.number, "wang.fang")  # already called
    assert refused.value.reason == "not_waiting"
    with pytest.raises(QueueRefused) as unknown:
        await desk.override_priority("A999", "wang.fang")
    assert unknown.value.reason == "unknown_ticket"
    with pytest.raises(InvalidInput):
        await desk.override_priority("13812345678", "wang.fang")
    assert p1.priority and a2.number == "A002"


async def test_numbers_restart_at_shanghai_midnight_and_yesterdays_tickets_expire(desk):
    desk.clock.t = dt.datetime(2026, 12, 7, 23, 59, 30, tzinfo=SHANGHAI).timestamp()
    assert (await desk.take(False)).number == "A001"
    late = await desk.take(False)
    assert late.number == "A002" and late.day == "2026-12-07"
    # 16:00 UTC is midnight in Shanghai: a new business day, whatever the host's zone
    desk.clock.t = dt.datetime(2026, 12, 7, 16, 0, 5, tzinfo=dt.UTC).timestamp()
    first = await desk.take(False)
    assert (first.number, first.day) == ("A001", "2026-12-08")
    assert (await desk.take(True, "staff")).number == "P001"
    # yesterday's waiting tickets are never called today
    assert [(await desk.call_next("1", "s")).number for _ in range(2)] == ["P001", "A001"]
    assert await desk.call_next("1", "s") is None
    states = await desk.db.read(lambda c: c.execute(
        "SELECT number, state FROM queue_tickets WHERE day = '2026-12-07' ORDER BY id").fetchall())
    assert [tuple(r) for r in states] == [("A001", "expired"), ("A002", "expired")]


async def test_estimates_use_the_default_then_the_mean_of_todays_service_times(desk):
    for _ in range(4):
        await desk.take(False)
    # no history today: 3 people ahead of A004 at the default 180 s, one counter
    a4 = await desk.ticket("A004")
    assert await desk.estimated_wait(a4) == 3 * 180
    assert await desk.estimated_wait(None) == 4 * 180  # a ticket taken now
    await desk.call_next("1", "s")  # A001 at counter 1
    desk.clock.advance(60)
    await desk.call_next("1", "s")  # A001 served in 60 s; A002 called
    desk.clock.advance(120)
    await desk.call_next("1", "s")  # A002 served in 120 s; A003 called
    assert await desk.average_service_seconds() == 90
    assert await desk.estimated_wait(a4) == 0  # nobody waits before A004 now
    assert await desk.estimated_wait(None) == 90  # A004 is ahead of a new ticket
    # a second counter opens: the same queue goes twice as fast
    await desk.take(False)
    await desk.take(False)
    await desk.call_next("2", "s")  # A004 at counter 2
    a6 = await desk.ticket("A006")
    assert await desk.open_counters() == 2
    assert await desk.estimated_wait(a6) == 45  # A005 ahead, 90 s, 2 counters
    # a ticket left open over lunch counts at most 30 minutes
    desk.clock.advance(5 * 3600)
    await desk.finish("1", "s")
    assert await desk.average_service_seconds() == pytest.approx((60 + 120 + 1800) / 3)
    # a priority ticket waits only behind priority tickets
    p = await desk.take(True, "staff")
    assert await desk.ahead_of(p) == 0 and await desk.estimated_wait(p) == 0


async def test_a_called_ticket_can_be_recalled_skipped_and_brought_back(desk):
    await desk.take(False)
    await desk.take(False)
    a1 = await desk.call_next("1", "s")
    again = await desk.recall("A001", "1", "s")
    assert again.state == "called" and again.calls == 2
    skipped = await desk.skip("A001", "s")
    assert skipped.state == "skipped"
    with pytest.raises(QueueRefused):
        await desk.skip("A001", "s")
    assert (await desk.call_next("1", "s")).number == "A002"
    back = await desk.recall(a1.number, "1", "s")  # the resident came back: A002 is served
    assert back.state == "called" and (await desk.ticket("A002")).state == "served"
    assert (await desk.serving()).number == "A001"
    with pytest.raises(QueueRefused):
        await desk.recall("A002", "1", "s")  # served tickets are over
    kinds = await desk.db.read(lambda c: [r[0] for r in c.execute("SELECT kind FROM events ORDER BY id")])
    assert kinds.count("queue_recalled") == 2 and "queue_skipped" in kinds and "queue_served" in kinds
    assert (await desk.db.read(journal.verify)).ok


async def test_serving_is_the_ticket_called_last(desk):
    assert await desk.serving() is None
    for _ in range(3):
        await desk.take(False)
    await desk.call_next("1", "s")
    desk.clock.advance(5)
    await desk.call_next("2", "s")
    serving = await desk.serving()
    assert (serving.number, serving.counter) == ("A002", "2")
    board = await desk.board()
    assert board["serving"]["number"] == "A002" and board["waiting"]["total"] == 1
    assert board["wait_seconds"] == 90  # default 180 s, two counters open


async def test_bad_arguments_are_refused(desk):
    with pytest.raises(ValueError):
        await desk.take(True)  # a priority ticket says why
    with pytest.raises(ValueError):
        await desk.take(False, "staff")
    with pytest.raises(InvalidInput):
        await desk.call_next("", "s")
    with pytest.raises(InvalidInput):
        await desk.call_next("1; DROP TABLE", "s")
    with pytest.raises(ValueError):
        QueueSettings(default_service_seconds=0)


async def test_999_tickets_a_lane_a_day(desk):
    await desk.db.write(lambda c: c.executemany(
        "INSERT INTO queue_tickets (day, lane, seq, number, taken_at) VALUES ('2026-12-07', 'A', ?, ?, 0)",
        [(n, f"A{n:03d}") for n in range(1, 1000)]))
    with pytest.raises(QueueRefused) as full:
        await desk.take(False)
    assert full.value.reason == "full"
    assert (await desk.take(True, "staff")).number == "P001"


# ---------------------------------------------------------------- priority by ID card


async def card_desk(desk, tmp_path):
    reader = FakeIdCardReader(seed=3)
    await reader.open()
    desk.reader = JournalSpy(reader, tmp_path / "custody.sqlite3")
    return reader


def shanghai_today(desk) -> dt.date:
    return dt.datetime.fromtimestamp(desk.clock(), SHANGHAI).date()


async def test_no_card_is_read_before_the_notice_is_agreed(desk, tmp_path):
    reader = await card_desk(desk, tmp_path)
    reader.present_card(resident_card(shanghai_today(desk), age=70))
    with pytest.raises(InvalidInput):
        await desk.take_by_age_card(agreed=False)
    assert desk.read_calls == 0 and desk.reader.agreed_at_read == []
    check = await desk.take_by_age_card(agreed=True)
    assert check.outcome == "priority" and check.ticket.number == "P001" and check.ticket.reason == "age_card"
    assert desk.reader.agreed_at_read and all(desk.reader.agreed_at_read)
    await reader.close()


async def test_a_card_of_60_gives_priority_59_does_not_and_nothing_of_the_card_is_kept(desk, tmp_path):
    reader = await card_desk(desk, tmp_path)
    today = shanghai_today(desk)
    old = reader.present_card(resident_card(today, age=60, serial=1))
    assert (await desk.take_by_age_card(agreed=True)).outcome == "priority"
    young = reader.present_card(resident_card(today, age=59, serial=2))
    check = await desk.take_by_age_card(agreed=True)
    assert check.outcome == "not_elderly" and check.ticket is None
    expired = reader.present_card(resident_card(today, age=75, serial=3, valid_to=today - dt.timedelta(days=1)))
    check = await desk.take_by_age_card(agreed=True)
    assert (check.outcome, check.refusal) == ("card_refused", "expired")
    reader.remove_card()
    assert (await desk.take_by_age_card(agreed=True)).outcome == "no_card"
    await reader.close()
    await desk.db.read(lambda c: c.execute("PRAGMA wal_checkpoint(FULL)").fetchall())
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("custody.sqlite3*"))
    for card in (old, young, expired):
        for secret in (card.id_number, card.name, card.birth.strftime("%Y%m%d"), card.birth.isoformat()):
            assert secret.encode() not in stored, "card data reached the database"
            assert secret.encode("utf-16-le") not in stored
        if card.address:
            assert card.address.encode() not in stored
    outcomes = await desk.db.read(lambda c: [r[0] for r in c.execute(
        "SELECT json_extract(detail, '$.outcome') FROM events WHERE kind = 'queue_age_checked' ORDER BY id")])
    assert outcomes == ["priority", "not_elderly", "card_refused", "no_card"]
    columns = await desk.db.read(lambda c: [r[1] for r in c.execute("PRAGMA table_info(queue_tickets)")])
    assert not {"id_hmac", "id_enc", "name", "birth", "age"} & set(columns)


async def test_a_card_read_can_be_cancelled_and_the_reader_is_not_shared(desk, tmp_path):
    reader = await card_desk(desk, tmp_path)
    desk.settings = QueueSettings(card_timeout=10.0)
    task = asyncio.create_task(desk.take_by_age_card(agreed=True))
    while desk._reading is None:
        await asyncio.sleep(0.01)
    with pytest.raises(QueueRefused) as busy:
        await desk.take_by_age_card(agreed=True)
    assert busy.value.reason == "card_busy"
    assert desk.cancel_card()
    assert (await task).outcome == "cancelled"
    assert not desk.cancel_card()
    await reader.close()


async def test_without_a_reader_priority_by_card_is_refused(desk):
    with pytest.raises(QueueRefused) as refused:
        await desk.take_by_age_card(agreed=True)
    assert refused.value.reason == "no_reader"


async def test_a_rejected_card_or_a_broken_reader_ends_the_check(desk, tmp_path):
    reader = await card_desk(desk, tmp_path)
    reader.present_card(CardType.RESIDENT)
    reader.fail_next(0x40)  # unrecognised card type
    assert (await desk.take_by_age_card(agreed=True)).outcome == "card_rejected"
    reader.unplug()
    assert (await desk.take_by_age_card(agreed=True)).outcome == "reader_failed"
    await reader.close()


# ---------------------------------------------------------------- the printed ticket


async def test_the_printed_ticket_scans_back_to_its_number(desk):
    await desk.take(False)
    ticket = await desk.take(True, "age_card")
    sim = await run_escpos_printer_sim("pty")
    try:
        async with printer("escpos", sim.url) as p:
            desk.receipt_printer = p
            outcome = await desk.print_ticket(ticket)
        for _ in range(300):
            if sim.sim.jobs:
                break
            await asyncio.sleep(0.01)
        [job] = sim.sim.jobs
    finally:
        await sim.close()
    assert outcome.printed
    found = {(r.format, r.text) for r in zxingcpp.read_barcodes(job.paper())}
    assert (zxingcpp.BarcodeFormat.QRCode, "postkiosk-queue:P001") in found
    text = "\n".join(job.lines)
    assert "排队号 P001  优先(60岁以上)" in text and "取号时间 2026-12-07 09:00" in text
    assert "前面还有 0 人" in text and "?" not in text


async def test_a_printer_that_is_not_ready_leaves_the_ticket_on_screen(desk):
    ticket = await desk.take(False)
    assert (await desk.print_ticket(ticket)).problem == "no_printer"
    sim = await run_escpos_printer_sim("pty")
    try:
        sim.sim.state.paper = "out"
        async with printer("escpos", sim.url) as p:
            desk.receipt_printer = p
            outcome = await desk.print_ticket(ticket)
    finally:
        await sim.close()
    assert not outcome.printed and outcome.problem == "not_ready" and "paper_out" in outcome.reasons
