import pytest

from firmware_bridge import generic_8a as g8a
from firmware_bridge.link import SerialLink
from simulators.generic_8a import Generic8ASimulator, run_generic_8a_sim


def test_query_all_size_follows_the_model():
    assert len(Generic8ASimulator(doors_per_board=8).handle(g8a.query_all_request(1))) == 7
    assert len(Generic8ASimulator(doors_per_board=24).handle(g8a.query_all_request(1))) == 7
    assert len(Generic8ASimulator(doors_per_board=50).handle(g8a.query_all_request(1))) == 11


@pytest.mark.parametrize(
    "closed_is_1, first_byte_first, wire",
    [
        (False, False, "80 01 00 00 02 33 b0"),  # the Android capture, lock 2 open
        (False, True, "80 01 02 00 00 33 b0"),
        (True, False, "80 01 ff ff fd 33 4f"),
        (True, True, "80 01 fd ff ff 33 4f"),
    ],
)
def test_lock_2_open_in_every_setting(closed_is_1, first_byte_first, wire):
    sim = Generic8ASimulator(boards=[1], doors_per_board=24, closed_is_1=closed_is_1, first_byte_first=first_byte_first)
    sim.open_door(1, 1)
    assert sim.handle(g8a.query_all_request(1)).hex(" ") == wire


def test_query_one_uses_0x11_closed_0x00_open():
    sim = Generic8ASimulator(boards=[1], doors_per_board=8, closed_is_1=False)  # ST does not follow polarity
    sim.open_door(1, 0)
    assert sim.handle(g8a.query_request(1, 0)).hex(" ") == "80 01 01 00 80"
    assert sim.handle(g8a.query_request(1, 1)).hex(" ") == "80 01 02 11 92"
    assert sim.handle(g8a.QueryRequest(1, 9)) is None  # an 8-channel board has no lock 9


def test_open_replies_with_what_query_one_would_say():
    sim = Generic8ASimulator(boards=[1])
    assert sim.handle(g8a.open_request(1, 0)).hex(" ") == "8a 01 01 00 8a"  # the §1.4 example
    sim.set_jammed(1, 1)
    assert g8a.decode_query_one_reply(sim.handle(g8a.open_request(1, 1, pulse_s=3)))[1].status == g8a.ST_CLOSED
    assert sim.board(1).pulse_ms == 3000
    assert sim.door(1, 1).pulses == 1 and sim.door(1, 1).closed


def test_open_all_open_several_and_hold():
    sim = Generic8ASimulator(boards=[1], doors_per_board=24, first_byte_first=False, unlock_replies=False)
    assert sim.handle(g8a.open_several_request(1, [1, 9, 17])) is None
    assert [c for c in range(24) if not sim.door(1, c).closed] == [1, 9, 17]
    sim.handle(g8a.OpenSeveralRequest(1, b"\x00\x00\x01"))  # last byte first: channel 0
    assert not sim.door(1, 0).closed
    assert sim.handle(g8a.hold_request(1, 5, on=True)) is None
    assert (1, 5) in sim.held and sim.door(1, 5).pulses == 1
    sim.handle(g8a.hold_request(1, 5, on=False))
    assert not sim.held
    sim.handle(g8a.HoldRequest(1, 0, on=True))  # lock 0 is not a lock: ignored
    assert sim.handle(g8a.open_all_request(1)) is None
    assert sim.board(1).pulses == 4 + 1 + 24
    assert all(not d.closed for d in sim.board(1).doors)


def test_absent_and_silent_boards_stay_silent():
    sim = Generic8ASimulator(boards=[1])
    assert sim.handle(g8a.query_all_request(2)) is None
    sim.stop_answering(1)
    assert sim.handle(g8a.open_request(1, 0)) is None and sim.door(1, 0).pulses == 0


def test_wrong_address_wraps_within_1_to_32():
    sim = Generic8ASimulator(boards=[32])
    sim.answer_from_wrong_address(2)
    [(_, foreign)] = sim.reply_plan(sim.handle(g8a.query_all_request(32)))
    assert g8a.decode_reply(foreign)[1].board == 1
    [(_, foreign)] = sim.reply_plan(sim.handle(g8a.query_request(32, 0)))
    assert g8a.decode_query_one_reply(foreign)[1].board == 1


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_runner_serves_real_bytes_paced_at_9600(transport):
    running = await run_generic_8a_sim(boards=[1], doors_per_board=8, polarity="closed_is_0",
                                       byte_order="last_byte_first", transport=transport, pace=True)
    try:
        running.sim.garbage_before_reply(b"\x00")
        async with SerialLink(running.url, 9600) as link:
            await link.write(bytes.fromhex("80 01 00 33 B2"))  # Open-Locker's capture
            data = b""
            while len(data) < 8:
                chunk = await link.read(timeout=1.0)
                assert chunk
                data += chunk
        assert data.hex(" ") == "00 80 01 00 00 00 33 b2"
        tx = [e for e in running.sim.wire if e.direction == "tx"]
        assert tx[-1].end - tx[-1].start >= 7 * 10 / 9600 * 0.9  # 7 bytes at 9600 8N1
    finally:
        await running.close()


@pytest.mark.parametrize("kwargs", [{"transport": "udp"}, {"byte_order": "?"}, {"boards": [0]},
                                    {"doors_per_board": 51}])
async def test_runner_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        await run_generic_8a_sim(**kwargs)
