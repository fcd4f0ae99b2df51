import asyncio

import pytest

from firmware_bridge import kerong_cu16 as cu16
from firmware_bridge.link import SerialLink
from simulators.kerong_cu16 import KerongCU16Simulator, SimActionRefused, run_lockboard_sim

STATUS_0 = cu16.status_request(0)


def test_status_reply_reflects_doors_items_and_polarity():
    sim = KerongCU16Simulator(boards=[0, 2])
    sim.open_door(2, 0)
    sim.put_item(2, 0)
    sim.put_item(2, 15, force=True)
    reply = cu16.decode_reply(sim.handle(cu16.status_request(2)))[1]
    assert reply.board == 2
    assert reply.locks == 0xFFFE  # closed = 1, channel 0 open
    assert reply.ir == 0x8001
    sim.set_polarity(False)
    assert cu16.decode_reply(sim.handle(cu16.status_request(2)))[1].locks == 0x0001


def test_fewer_doors_than_channels_report_zero_bits():
    sim = KerongCU16Simulator(boards=[0], doors_per_board=4)
    assert cu16.decode_reply(sim.handle(STATUS_0))[1].locks == 0x000F


def test_unlock_springs_a_closed_door_and_counts_every_pulse():
    sim = KerongCU16Simulator(boards=[0])
    assert sim.handle(cu16.unlock_request(0, 3)) is None  # no reply by default
    assert not sim.door(0, 3).closed
    sim.handle(cu16.unlock_request(0, 3))  # already open: still a pulse
    assert sim.door(0, 3).pulses == 2
    sim.set_jammed(0, 5)
    sim.handle(cu16.unlock_request(0, 5))
    assert sim.door(0, 5).closed and sim.door(0, 5).pulses == 1
    assert sim.board(0).pulses == 3


def test_unlock_all_and_unlock_replies():
    sim = KerongCU16Simulator(boards=[1], unlock_replies=True)
    reply = sim.handle(cu16.unlock_all_request(1))
    assert cu16.decode_reply(reply)[1] == cu16.StatusReply(1, locks=0, ir=0)  # all open now
    assert sim.board(1).pulses == 16
    assert all(not d.closed for d in sim.board(1).doors)


def test_other_addresses_and_silent_boards_stay_silent():
    sim = KerongCU16Simulator(boards=[0])
    assert sim.handle(cu16.status_request(1)) is None
    assert sim.handle(cu16.unlock_request(1, 0)) is None
    assert sim.handle(cu16.status_all_request()) is None  # 0x36 layout unknown
    sim.stop_answering(0)
    assert sim.handle(STATUS_0) is None
    assert sim.handle(cu16.unlock_request(0, 0)) is None
    assert sim.door(0, 0).pulses == 0
    sim.resume_answering()
    assert sim.handle(STATUS_0) is not None


def test_pulse_time_is_stored():
    sim = KerongCU16Simulator(boards=[0])
    assert sim.handle(cu16.pulse_time_request(0, 550)) is None
    assert sim.board(0).pulse_ms == 550


async def test_delayed_unlock_fires_later():
    sim = KerongCU16Simulator(boards=[0])
    sim.handle(cu16.delayed_unlock_request(0, 2, 0))
    assert sim.door(0, 2).closed
    await asyncio.sleep(0.01)
    assert not sim.door(0, 2).closed
    sim.handle(cu16.delayed_unlock_request(0, 3, 100))
    await sim.close()  # cancels the pending one


def test_hand_actions_refuse_what_a_person_cannot_do():
    sim = KerongCU16Simulator(boards=[0])
    with pytest.raises(SimActionRefused):
        sim.put_item(0, 1)  # closed door
    sim.open_door(0, 1)
    sim.put_item(0, 1)
    sim.close_door(0, 1)
    with pytest.raises(SimActionRefused):
        sim.remove_item(0, 1)
    assert sim.door(0, 1).item
    with pytest.raises(KeyError):
        sim.door(0, 16)
    with pytest.raises(KeyError):
        sim.door(7, 0)


def test_observers_see_every_change():
    sim = KerongCU16Simulator(boards=[0])
    seen = []
    unsubscribe = sim.subscribe(lambda s: seen.append(s.version))
    sim.open_door(0, 0)
    sim.handle(cu16.unlock_request(0, 1))
    sim.handle(STATUS_0)  # a query changes nothing
    unsubscribe()
    sim.close_door(0, 0)
    assert seen == [1, 2]
    assert sim.version == 3
    snap = sim.snapshot()
    assert snap["version"] == 3 and snap["boards"][0]["doors"][1]["pulses"] == 1


def test_reply_plan_applies_faults_one_reply_at_a_time():
    sim = KerongCU16Simulator(boards=[0])
    good = sim.handle(STATUS_0)
    sim.drop_replies(1)
    assert sim.reply_plan(good) == []
    assert sim.reply_plan(good) == [(0.0, good)]

    sim.corrupt_replies(1, index=-1)
    [(_, bad)] = sim.reply_plan(good)
    assert bad[:-1] == good[:-1] and bad[-1] == good[-1] ^ 1
    assert cu16.decode_reply(bad) == (9, None)

    sim.garbage_before_reply(b"\xaa", n=1)
    sim.delay_replies(0.5)
    assert sim.reply_plan(good) == [(0.5, b"\xaa"), (0.0, good)]

    sim.answer_from_wrong_address(1)
    [(_, foreign)] = sim.reply_plan(good)
    assert cu16.decode_reply(foreign)[1].board == 1

    sim.split_replies(1, pause=0.01)
    assert sim.reply_plan(good) == [(0.0, good[:4]), (0.01, good[4:])]
    assert sim.reply_plan(None) == []


@pytest.mark.parametrize("transport", ["pty", "tcp", "tcp:127.0.0.1:0"])
async def test_runner_serves_real_bytes(transport):
    running = await run_lockboard_sim(boards=[0, 1], doors_per_board=8, polarity="closed_is_0", transport=transport)
    try:
        assert running.url.startswith("/dev/pts/" if transport == "pty" else "socket://127.0.0.1:")
        async with SerialLink(running.url) as link:
            await link.write(b"\xff" + cu16.encode(cu16.status_request(1)))
            data = b""
            while len(data) < 9:
                chunk = await link.read(timeout=1.0)
                assert chunk
                data += chunk
        assert data == bytes.fromhex("02 10 35 00 00 00 00 03 4a")  # closed_is_0: closed doors read 0
        assert running.sim.skipped_bytes == 1
        assert [e.direction for e in running.sim.wire] == ["rx", "tx"]
    finally:
        await running.close()


async def test_runner_accepts_the_hal_polarity_enum():
    from hal.lockbank import Polarity

    running = await run_lockboard_sim(polarity=Polarity.CLOSED_IS_0, transport="tcp")
    await running.close()
    assert running.sim.state.closed_is_1 is False


@pytest.mark.parametrize("kwargs", [{"transport": "serial"}, {"polarity": "upside_down"}, {"boards": [16]}])
async def test_runner_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        await run_lockboard_sim(**kwargs)


async def test_tcp_serves_several_clients_in_turn():
    sim = KerongCU16Simulator(boards=[0])
    transport = await sim.serve_tcp()
    for _ in range(2):
        async with SerialLink(transport.url) as link:
            await link.write(cu16.encode(STATUS_0))
            assert await link.read(timeout=1.0)
    await sim.close()
    assert len(sim.requests) == 2
