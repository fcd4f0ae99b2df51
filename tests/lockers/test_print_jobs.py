import asyncio

import numpy as np
import pytest
import zxingcpp

from firmware_bridge.errors import LinkError
from firmware_bridge.escpos import Op
from firmware_bridge.link import SerialLink
from hal.printer import PROFILES, Printer, PrinterProfile, PrinterStatus, TsplProtocol, printer
from lockers.label import render_label, render_receipt
from lockers.print_jobs import PrinterWaitTimeout, PrintOutcomeUnknown, print_when_ready
from simulators.escpos_printer import run_escpos_printer_sim
from simulators.tspl_printer import run_tspl_printer_sim
from tests.lockers.test_label import data

POLL = 0.02


@pytest.fixture
async def escpos_sim():
    running = await run_escpos_printer_sim("pty")
    yield running
    await running.close()


@pytest.fixture
async def tspl_sim():
    running = await run_tspl_printer_sim("pty")
    yield running
    await running.close()


async def until(predicate, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def only_status_requests(received: bytes) -> bool:
    for request in (b"\x10\x04\x01", b"\x10\x04\x02", b"\x10\x04\x03", b"\x10\x04\x04", b"\x1b!?"):
        received = received.replace(request, b"")
    return received == b""


async def test_a_ready_printer_prints_at_once_and_reports_nothing(escpos_sim):
    calls = []
    async with printer("escpos", escpos_sim.url) as p:
        status = await print_when_ready(p, render_receipt(data()), on_status=calls.append, poll=POLL)
    await until(lambda: escpos_sim.sim.jobs)
    assert status.ready and calls == [] and len(escpos_sim.sim.jobs) == 1


async def test_paper_out_is_reported_once_then_the_job_prints_exactly_once(escpos_sim):
    escpos_sim.sim.set_paper("out")
    calls: list[PrinterStatus] = []
    receipt = render_receipt(data())
    async with printer("escpos", escpos_sim.url) as p:
        job = asyncio.create_task(print_when_ready(p, receipt, on_status=calls.append, poll=POLL))
        await until(lambda: calls)
        await asyncio.sleep(10 * POLL)  # many polls while out of paper
        assert [c.problems for c in calls] == [("paper_out",)]
        assert not job.done() and only_status_requests(bytes(escpos_sim.sim.received))
        escpos_sim.sim.set_paper("ok")  # the resident or staff loads a roll
        status = await asyncio.wait_for(job, 3)
        await until(lambda: escpos_sim.sim.jobs)
        await asyncio.sleep(10 * POLL)
    assert status.ready
    assert [c.problems for c in calls] == [("paper_out",), ()]
    assert len(escpos_sim.sim.jobs) == 1 and escpos_sim.sim.state.lost_items == 0
    assert escpos_sim.sim.commands[Op.INIT] == 1 and escpos_sim.sim.commands[Op.CUT] == 1  # sent once
    printed = {r.text for r in zxingcpp.read_barcodes(escpos_sim.sim.jobs[0].images[0])}
    assert printed == {"CP123456785CN", "https://track.example.cn/CP123456785CN"}


async def test_cover_open_on_the_label_printer_with_an_async_callback(tspl_sim):
    tspl_sim.sim.set(head_open=True)
    shown: list[tuple[str, ...]] = []

    async def show(status: PrinterStatus) -> None:
        await asyncio.sleep(0)
        shown.append(status.reasons)

    image = render_label(data())
    async with printer("tspl", tspl_sim.url, "label-76x130") as p:
        job = asyncio.create_task(print_when_ready(p, image, on_status=show, poll=POLL))
        await until(lambda: shown)
        tspl_sim.sim.set(head_open=False, paper_out=True)  # cover closed on an empty roll
        await until(lambda: len(shown) == 2)
        tspl_sim.sim.set(paper_out=False)
        await asyncio.wait_for(job, 3)
        await until(lambda: tspl_sim.sim.labels)
        await asyncio.sleep(10 * POLL)
    assert shown == [("cover open",), ("out of paper",), ()]
    assert len(tspl_sim.sim.labels) == 1 and tspl_sim.sim.state.lost_labels == 0
    assert np.array_equal(np.asarray(tspl_sim.sim.labels[0].image), np.asarray(image))


async def test_giving_up_prints_nothing(tspl_sim):
    tspl_sim.sim.set(paper_out=True)
    calls = []
    async with printer("tspl", tspl_sim.url, "label-76x130") as p:
        started = asyncio.get_running_loop().time()
        with pytest.raises(PrinterWaitTimeout, match="out of paper.*nothing was printed") as caught:
            await print_when_ready(p, render_label(data()), on_status=calls.append, poll=1.0, give_up_after=0.3)
        waited = asyncio.get_running_loop().time() - started
    assert isinstance(caught.value, TimeoutError) and caught.value.status.paper_out
    assert 0.3 <= waited < 1.0  # the deadline, not the next poll
    assert len(calls) == 1 and tspl_sim.sim.labels == [] and tspl_sim.sim.state.lost_labels == 0
    assert only_status_requests(bytes(tspl_sim.sim.received)) and tspl_sim.sim.state.status_queries >= 2


async def test_a_silent_printer_counts_as_offline_until_it_answers(escpos_sim):
    escpos_sim.sim.drop_status_replies(2)  # DLE EOT 1 and its retry go unanswered once
    calls = []
    async with printer("escpos", escpos_sim.url, PrinterProfile(status_timeout=0.05)) as p:
        await print_when_ready(p, render_receipt(data()), on_status=calls.append, poll=POLL)
    await until(lambda: escpos_sim.sim.jobs)
    assert [c.problems for c in calls] == [("offline",), ()]


class BreaksAfter(SerialLink):
    """A real link to the simulator whose cable comes out after ``writes`` writes."""

    def __init__(self, url: str, writes: int) -> None:
        super().__init__(url, 9600)
        self.writes_left = writes
        self.refused = 0

    async def write(self, data: bytes) -> None:
        if self.writes_left <= 0:
            self.refused += 1
            raise LinkError("cable pulled")
        self.writes_left -= 1
        await super().write(data)


async def test_a_job_broken_midway_is_not_resent(tspl_sim):
    link = BreaksAfter(tspl_sim.url, writes=4)  # status query, then 3 KiB of an ~80 KB job
    async with Printer(link, PROFILES["label-76x130"], TsplProtocol()) as p:
        with pytest.raises(PrintOutcomeUnknown, match="not resent"):
            await print_when_ready(p, render_label(data()), on_status=lambda s: None, poll=POLL)
    await asyncio.sleep(10 * POLL)
    assert link.refused == 1  # the failed write, and no other attempt after it
    received = bytes(tspl_sim.sim.received)
    assert received.count(b"SIZE") == 1 and b"PRINT" not in received and tspl_sim.sim.labels == []


async def test_poll_must_be_positive(escpos_sim):
    async with printer("escpos", escpos_sim.url) as p:
        with pytest.raises(ValueError):
            await print_when_ready(p, render_receipt(data()), on_status=lambda s: None, poll=0)
