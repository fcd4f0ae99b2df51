import pytest

from firmware_bridge import cu48
from firmware_bridge.cu48 import Status
from firmware_bridge.link import SerialLink
from simulators.cu48 import CU48Simulator, run_cu48_sim


def answer(sim, request):
    raw = sim.handle(request)
    return None if raw is None else cu48.decode_reply(raw)[1]


def test_status_reflects_doors_polarity_and_byte_order():
    sim = CU48Simulator(boards=[0, 9])
    sim.open_door(9, 0)
    sim.open_door(9, 47)
    reply = answer(sim, cu48.status_request(9))
    assert reply.data.hex(" ") == "fe ff ff ff ff 7f"
    sim.set_polarity(False)
    assert answer(sim, cu48.status_request(9)).data.hex(" ") == "01 00 00 00 00 80"
    sim.set_byte_order(False)
    assert answer(sim, cu48.status_request(9)).data.hex(" ") == "80 00 00 00 00 01"


def test_open_springs_the_door_counts_pulses_and_is_acknowledged():
    sim = CU48Simulator(boards=[0])
    assert sim.handle(cu48.open_request(0, 47)).hex(" ") == "02 00 2f 75 00 a6"
    assert not sim.door(0, 47).closed
    sim.set_jammed(0, 1)
    sim.handle(cu48.open_request(0, 1))
    assert sim.door(0, 1).closed and sim.door(0, 1).pulses == 1
    assert sim.board(0).pulses == 2


def test_refusals_other_boards_and_silence():
    sim = CU48Simulator(boards=[0], unlock_replies=False)
    assert sim.handle(cu48.open_request(0, 3)) is None and sim.door(0, 3).pulses == 1
    assert sim.handle(cu48.status_request(1)) is None
    sim.refuse_replies(1)
    assert answer(sim, cu48.open_request(0, 4)) == cu48.ack(0, 4, Status.FAILURE)
    assert sim.door(0, 4).pulses == 0
    sim.stop_answering()
    assert sim.handle(cu48.status_request(0)) is None


def test_wrong_address_fault_and_default_garbage():
    sim = CU48Simulator(boards=[255])
    good = sim.handle(cu48.status_request(255))
    sim.answer_from_wrong_address(1)
    sim.garbage_before_reply()
    [(_, garbage), (_, foreign)] = sim.reply_plan(good)
    assert cu48.decode_reply(foreign)[1].board == 0
    stream = garbage + good
    assert cu48.decode_reply(stream[6:])[1] == cu48.decode_reply(good)[1]
    assert cu48.decode_reply(stream) == (2, None) and cu48.decode_reply(stream[2:]) == (4, None)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_runner_serves_real_bytes(transport):
    running = await run_cu48_sim(boards=[3], transport=transport)
    try:
        async with SerialLink(running.url) as link:
            await link.write(bytes.fromhex("00 02 03 00 60 03 68"))
            data = b""
            while len(data) < 12:
                chunk = await link.read(timeout=1.0)
                assert chunk
                data += chunk
        assert data.hex(" ") == "02 03 00 75 06 ff ff ff ff ff ff 7a"
        assert running.sim.skipped_bytes == 1
    finally:
        await running.close()


@pytest.mark.parametrize("kwargs", [{"transport": "tcp:x"}, {"polarity": "?"}, {"boards": [256]},
                                    {"doors_per_board": 49}])
async def test_runner_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        await run_cu48_sim(**kwargs)
