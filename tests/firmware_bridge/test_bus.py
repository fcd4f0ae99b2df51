import asyncio

import pytest

from firmware_bridge import kerong_cu16 as cu16
from firmware_bridge.bus import Bus, silent_gap, wire_time
from firmware_bridge.errors import LinkError, LinkTimeout
from firmware_bridge.link import SerialLink
from simulators.kerong_cu16 import KerongCU16Simulator

STATUS_0 = cu16.encode(cu16.status_request(0))
STATUS_1 = cu16.encode(cu16.status_request(1))


def from_board(board):
    return lambda frame: isinstance(frame, cu16.StatusReply) and frame.board == board


@pytest.fixture
async def wired():
    """A simulator with boards 0 and 1 on a pty, and a bus at 115200 baud (3 ms gap, short frames)."""
    sim = KerongCU16Simulator(boards=[0, 1])
    transport = await sim.serve_pty()
    link = SerialLink(transport.url, 115200)
    await link.open()
    bus = Bus(link, reply_timeout=0.1)
    yield sim, bus
    await link.close()
    await sim.close()


@pytest.mark.parametrize(
    "baud, gap_ms", [(9600, 5), (19200, 3), (38400, 3), (57600, 3), (115200, 3), (1200, 31)]
)
def test_silent_gap_follows_the_rule(baud, gap_ms):
    # max(3.5 chars, 1.75 ms) + 1 ms, rounded up to whole ms; 8N1 = 10 bits per char
    assert silent_gap(baud) == pytest.approx(gap_ms / 1000)


def test_wire_time():
    assert wire_time(9, 9600) == pytest.approx(0.009375)


async def test_consecutive_frames_on_the_wire_keep_the_gap(wired):
    sim, bus = wired

    async def poll(board, n):
        request = cu16.encode(cu16.status_request(board))
        for _ in range(n):
            await bus.transact(request, cu16.decode_reply, expect=from_board(board))

    async def unlocks():
        for channel in range(3):
            await bus.send(cu16.encode(cu16.unlock_request(0, channel)), settle=0.005)

    await asyncio.gather(poll(0, 8), poll(1, 8), unlocks())
    gaps = sim.wire_gaps()
    assert len(gaps) == 8 + 8 + 3 - 1
    assert min(gaps) >= bus.gap == pytest.approx(0.003)


async def test_without_a_gap_the_simulator_sees_back_to_back_frames(wired):
    # The measurement above can fail: with no gap the next request follows the reply at once.
    sim, bus = wired
    bus.gap = 0.0
    for _ in range(5):
        await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0))
    assert min(sim.wire_gaps()) < 0.003


async def test_gap_holds_with_realistic_byte_pacing_at_9600():
    sim = KerongCU16Simulator(boards=[0], baudrate=9600, pace=True)
    transport = await sim.serve_pty()
    async with SerialLink(transport.url, 9600) as link:
        bus = Bus(link, reply_timeout=0.2)
        for _ in range(4):
            await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0))
    await sim.close()
    assert bus.gap == pytest.approx(0.005)
    assert min(sim.wire_gaps()) >= 0.005
    replies = [e for e in sim.wire if e.direction == "tx"]
    assert all(e.end - e.start >= wire_time(9, 9600) for e in replies)


async def test_transactions_never_overlap(wired):
    sim, bus = wired
    results = await asyncio.gather(
        *(bus.transact(STATUS_0 if i % 2 else STATUS_1, cu16.decode_reply, expect=from_board(1 - i % 2)) for i in range(10))
    )
    assert [r.board for r in results] == [1 - i % 2 for i in range(10)]
    directions = [e.direction for e in sim.wire]
    assert directions == ["rx", "tx"] * 10  # each request answered before the next one starts


async def test_commands_go_before_waiting_queries(wired):
    sim, bus = wired
    sim.delay_replies(0.05)  # keep the first query on the bus while the others queue up
    first = asyncio.create_task(bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0)))
    await asyncio.sleep(0.01)
    queries = [asyncio.create_task(bus.transact(STATUS_1, cu16.decode_reply, expect=from_board(1))) for _ in range(3)]
    await asyncio.sleep(0)
    unlock = asyncio.create_task(bus.send(cu16.encode(cu16.unlock_request(1, 5)), settle=0.005))
    await asyncio.gather(first, unlock, *queries)
    commands = [(r.board, r.command) for r in sim.requests]
    assert commands == [(0, cu16.Command.STATUS), (1, cu16.Command.UNLOCK)] + [(1, cu16.Command.STATUS)] * 3


async def test_dropped_replies_are_retried_up_to_the_limit(wired):
    sim, bus = wired
    sim.drop_replies(2)
    reply = await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0), timeout=0.05, retries=2)
    assert reply == sim.status_reply(0)
    assert len(sim.requests) == 3
    assert (bus.stats.timeouts, bus.stats.retries, bus.stats.replies) == (2, 2, 1)


async def test_retries_exhausted_raise_link_timeout(wired):
    sim, bus = wired
    sim.stop_answering()
    with pytest.raises(LinkTimeout):
        await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0), timeout=0.03, retries=2)
    assert len(sim.requests) == 3
    assert bus.stats.timeouts == 3


async def test_late_reply_is_flushed_before_the_next_request(wired):
    sim, bus = wired
    sim.delay_replies(0.08)
    with pytest.raises(LinkTimeout):
        await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0), timeout=0.03)
    sim.open_door(0, 4)  # the late reply still says "all closed"; the fresh one must not
    await asyncio.sleep(0.1)
    reply = await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0))
    assert reply == sim.status_reply(0)
    assert reply.lock_bit(4) is False
    assert bus.stats.stale_bytes == 9


async def test_garbage_split_and_foreign_frames_are_handled(wired):
    sim, bus = wired
    sim.garbage_before_reply(b"\xff\x02\x10\x35")
    sim.split_replies(pause=0.01)
    sim.answer_from_wrong_address(then_correct=True)
    reply = await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0))
    assert reply == sim.status_reply(0)
    assert len(sim.requests) == 1
    assert bus.stats.skipped_bytes == 4
    assert bus.stats.unexpected_frames == 1


async def test_send_writes_once_and_reports_what_came_back(wired):
    sim, bus = wired
    request = cu16.encode(cu16.unlock_request(1, 2))
    assert await bus.send(request, settle=0.02, decoder=cu16.decode_reply) == []
    sim.state.unlock_replies = True
    frames = await bus.send(request, settle=0.02, decoder=cu16.decode_reply)
    assert frames == [sim.status_reply(1)]
    assert [e.data for e in sim.wire if e.direction == "rx"] == [request, request]
    assert sim.door(1, 2).pulses == 2
    assert (bus.stats.frames_sent, bus.stats.settle_frames, bus.stats.retries) == (2, 1, 0)


async def test_send_on_a_dead_link_raises_and_does_not_retry(wired):
    sim, bus = wired
    await bus.link.close()
    with pytest.raises(LinkError):
        await bus.send(cu16.encode(cu16.unlock_request(0, 0)))
    assert sim.requests == type(sim.requests)()
    assert bus.stats.link_errors == 1


async def test_latency_samples_are_kept(wired):
    _, bus = wired
    for _ in range(3):
        await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0))
    summary = bus.stats.latency_summary()
    assert summary["count"] == 3
    assert 0 < summary["min_ms"] <= summary["max_ms"] < 100
    assert bus.stats.as_dict()["replies"] == 3


async def test_replies_and_timeouts_are_filed_per_board(wired):
    sim, bus = wired
    for _ in range(3):
        await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0), board=0)
    await bus.transact(STATUS_1, cu16.decode_reply, expect=from_board(1), board=1)
    sim.stop_answering()
    with pytest.raises(LinkTimeout):
        await bus.transact(STATUS_1, cu16.decode_reply, expect=from_board(1), timeout=0.03, retries=1, board=1)
    zero, one = bus.stats.board(0).as_dict(), bus.stats.board(1).as_dict()
    assert (zero["replies"], zero["timeouts"], one["replies"], one["timeouts"]) == (3, 0, 1, 2)
    assert sum(zero["latency_histogram"].values()) == 3 and sum(one["latency_histogram"].values()) == 1
    # 6 frames went out just now: the 10 s window sees all of them
    assert bus.stats.frames_per_second(asyncio.get_running_loop().time()) == 0.6


async def test_replies_with_a_wrong_checksum_are_counted_apart_from_garbage(wired):
    sim, bus = wired
    bus.checksum_error = cu16.reply_checksum_error
    sim.garbage_before_reply(b"\xff\xfe")
    sim.corrupt_replies(1)  # the first reply has a flipped byte: its checksum no longer matches
    reply = await bus.transact(STATUS_0, cu16.decode_reply, expect=from_board(0), timeout=0.05, retries=1)
    assert reply == sim.status_reply(0)
    assert bus.stats.checksum_errors == 1
    assert bus.stats.as_dict()["checksum_errors"] == 1
