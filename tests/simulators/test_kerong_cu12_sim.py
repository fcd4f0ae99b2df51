import pytest

from firmware_bridge import kerong_cu12 as cu12
from firmware_bridge.kerong_cu12 import Ask, Command, DataPosition
from firmware_bridge.link import SerialLink
from simulators.kerong_cu12 import KerongCU12Simulator, run_kerong_cu12_sim


def answer(sim, request):
    raw = sim.handle(request)
    return None if raw is None else cu12.decode_reply(raw, data_position=sim.data_position)[1]


def test_status_reflects_doors_polarity_and_byte_order():
    sim = KerongCU12Simulator(boards=[0, 2])
    sim.open_door(2, 0)
    reply = answer(sim, cu12.status_request(2))
    assert (reply.board, reply.lock, reply.ask) == (2, cu12.ALL_LOCKS, Ask.SUCCESS)
    assert reply.data == b"\xfe\x0f"  # closed = 1, lock 1 open, bits 12-15 unused
    sim.set_polarity(False)
    assert answer(sim, cu12.status_request(2)).data == b"\x01\x00"
    sim.set_byte_order(False)
    assert answer(sim, cu12.status_request(2)).data == b"\x00\x01"


def test_unlock_springs_the_door_counts_pulses_and_is_acknowledged():
    sim = KerongCU12Simulator(boards=[0])
    assert answer(sim, cu12.unlock_request(0, 3)) == cu12.Reply(0, 3, Command.UNLOCK, Ask.SUCCESS)
    assert not sim.door(0, 3).closed
    sim.set_jammed(0, 5)
    sim.handle(cu12.unlock_request(0, 5))
    assert sim.door(0, 5).closed and sim.door(0, 5).pulses == 1
    answer(sim, cu12.unlock_all_request(0))
    assert [d.pulses for d in sim.board(0).doors] == [1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1]
    assert sim.board(0).pulses == 14


def test_fewer_doors_than_locks_and_no_unlock_replies():
    sim = KerongCU12Simulator(boards=[0], doors_per_board=4, unlock_replies=False)
    assert answer(sim, cu12.status_request(0)).data == b"\x0f\x00"
    assert sim.handle(cu12.unlock_request(0, 9)) is None  # no lock wired there: the board still pulses
    assert sim.board(0).pulses == 1


def test_other_addresses_broadcast_and_silent_boards_stay_silent():
    sim = KerongCU12Simulator(boards=[0])
    assert sim.handle(cu12.status_request(1)) is None
    assert sim.handle(cu12.unlock_all_request(cu12.BROADCAST)) is None
    assert sim.board(0).pulses == 0  # broadcast is not modelled
    sim.stop_answering(0)
    assert sim.handle(cu12.unlock_request(0, 0)) is None and sim.door(0, 0).pulses == 0
    sim.resume_answering(0)
    assert sim.handle(cu12.status_request(0)) is not None


def test_query_and_set_commands():
    sim = KerongCU12Simulator(boards=[0])
    assert answer(sim, cu12.pulse_time_request(0)).data == b"\x00\x37"  # factory 550 ms
    assert answer(sim, cu12.pulse_time_request(0, 300)).data == b"\x00\x1e"
    assert sim.board(0).pulse_ms == 300
    assert answer(sim, cu12.set_baud_request(0, 9600)).data == b"\x00"
    assert answer(sim, cu12.version_request(0)).data == b"\x10\x12"
    assert answer(sim, cu12.Request(0, 0, Command.FACTORY_INIT)).ok
    assert sim.board(0).pulse_ms == 550 and sim.settings[0][Command.BAUD] == 1


async def test_a_delayed_unlock_setting_postpones_unlocks():
    sim = KerongCU12Simulator(boards=[0])
    sim.handle(cu12.Request(0, 0, Command.DELAYED_UNLOCK, b"\x05"))
    assert answer(sim, cu12.unlock_request(0, 1)).ok
    assert sim.door(0, 1).closed and sim.door(0, 1).pulses == 0
    await sim.close()  # cancels the pending pulse


def test_refusals_answer_the_chosen_code_and_do_nothing():
    sim = KerongCU12Simulator(boards=[0])
    sim.refuse_replies(2, Ask.CHECKSUM_ERROR)
    assert answer(sim, cu12.unlock_request(0, 0)).ask is Ask.CHECKSUM_ERROR
    assert answer(sim, cu12.status_request(0)) == cu12.Reply(0, cu12.ALL_LOCKS, Command.STATUS, Ask.CHECKSUM_ERROR)
    assert sim.door(0, 0).closed and sim.door(0, 0).pulses == 0
    assert answer(sim, cu12.status_request(0)).ok
    sim.refuse_replies(1)
    sim.clear_faults()
    assert answer(sim, cu12.status_request(0)).ok


def test_data_position_is_honoured_both_ways():
    sim = KerongCU12Simulator(boards=[0], data_position=DataPosition.AFTER_SUM)
    request = cu12.encode(cu12.pulse_time_request(0, 300), data_position=DataPosition.AFTER_SUM)
    assert sim.decode_request(bytearray(request)) == (len(request), cu12.pulse_time_request(0, 300))
    before = cu12.encode(cu12.pulse_time_request(0, 300), data_position=DataPosition.BEFORE_SUM)
    assert sim.decode_request(bytearray(before))[1] is None
    raw = sim.handle(cu12.status_request(0))
    assert raw.hex(" ") == "02 00 0c 80 10 02 03 b1 ff 0f"  # SUM before DATA


def test_wrong_address_fault_answers_as_the_next_board():
    sim = KerongCU12Simulator(boards=[15])
    good = sim.handle(cu12.status_request(15))
    sim.answer_from_wrong_address(1, then_correct=True)
    [(_, foreign), (_, correct)] = sim.reply_plan(good)
    assert cu12.decode_reply(foreign)[1].board == 0 and correct == good


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_runner_serves_real_bytes(transport):
    running = await run_kerong_cu12_sim(boards=[0, 1], doors_per_board=12, polarity="closed_is_0", transport=transport)
    try:
        async with SerialLink(running.url) as link:
            await link.write(b"\xff" + bytes.fromhex("02 01 0c 80 00 00 03 92"))
            data = b""
            while len(data) < 10:
                chunk = await link.read(timeout=1.0)
                assert chunk
                data += chunk
        assert data.hex(" ") == "02 01 0c 80 10 02 03 a4 00 00"  # closed_is_0: closed doors read 0
        assert running.sim.skipped_bytes == 1
    finally:
        await running.close()


async def test_runner_accepts_hal_enums():
    from hal.lockbank import Polarity, StatusByteOrder

    running = await run_kerong_cu12_sim(polarity=Polarity.CLOSED_IS_0, byte_order=StatusByteOrder.LAST_BYTE_FIRST,
                                        data_position=DataPosition.AFTER_SUM, transport="tcp")
    await running.close()
    assert not running.sim.state.closed_is_1 and not running.sim.state.first_byte_first
    assert running.sim.data_position is DataPosition.AFTER_SUM


@pytest.mark.parametrize(
    "kwargs",
    [{"transport": "serial"}, {"polarity": "upside_down"}, {"byte_order": "middle"}, {"data_position": "inside"},
     {"boards": [16]}, {"doors_per_board": 13}],
)
async def test_runner_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        await run_kerong_cu12_sim(**kwargs)
