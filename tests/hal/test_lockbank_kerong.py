import asyncio

import pytest

from firmware_bridge import kerong_cu16 as cu16
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout
from hal.lockbank import BankProfile, BoardStatus, DoorState, Polarity, lock_bank
from hal.lockbank_kerong import KerongCU16Bank
from simulators.kerong_cu16 import KerongCU16Simulator

CLOSED, OPEN = DoorState.CLOSED, DoorState.OPEN


def profile(url, **overrides):
    fields = dict(
        protocol="kerong-cu16",
        url=url,
        boards=(0, 3),
        channels_per_board=16,
        reply_timeout=0.06,
        query_retries=2,
    )
    fields.update(overrides)
    return BankProfile(**fields)


@pytest.fixture(params=["pty", "socket"])
def transport_kind(request):
    return request.param


@pytest.fixture
async def rig(transport_kind):
    """Start a simulator with boards 0 and 3; ``await rig(**sim_kw, profile_kw=...)`` -> (sim, bank)."""
    opened = []

    async def start(*, profile_kw=None, **sim_kw):
        sim_kw.setdefault("boards", [0, 3])
        sim = KerongCU16Simulator(**sim_kw)
        transport = await (sim.serve_pty() if transport_kind == "pty" else sim.serve_tcp())
        bank = lock_bank(profile(transport.url, **(profile_kw or {})))
        opened.append((sim, bank))
        await bank.open()
        return sim, bank

    yield start
    for sim, bank in opened:
        await bank.close()
        await sim.close()


def unlock_frames(sim):
    return [r for r in sim.requests if r.command is cu16.Command.UNLOCK]


async def test_backend_table_builds_the_kerong_bank(rig):
    _, bank = await rig()
    assert isinstance(bank, KerongCU16Bank)
    assert bank.is_open


async def test_status_read_all_closed_and_empty(rig):
    sim, bank = await rig()
    status = await bank.read_status(3)
    assert status == BoardStatus(board=3, doors=(CLOSED,) * 16, items=(False,) * 16)
    assert [e.data for e in sim.wire if e.direction == "rx"] == [bytes.fromhex("02 30 30 03 65")]


async def test_unlock_opens_the_door_and_status_shows_it(rig):
    sim, bank = await rig()
    await bank.unlock(3, 9)
    assert [e.data for e in sim.wire if e.direction == "rx"] == [bytes.fromhex("02 39 31 03 6f")]
    assert sim.door(3, 9).pulses == 1 and not sim.door(3, 9).closed
    status = await bank.read_status(3)
    assert status.doors == tuple(OPEN if ch == 9 else CLOSED for ch in range(16))
    sim.close_door(3, 9)  # a person shuts it
    assert (await bank.read_status(3)).doors == (CLOSED,) * 16


async def test_jammed_door_stays_closed_but_gets_its_pulse(rig):
    sim, bank = await rig()
    sim.set_jammed(0, 1)
    await bank.unlock(0, 1)
    assert sim.door(0, 1).pulses == 1
    assert (await bank.read_status(0)).doors[1] is CLOSED


@pytest.mark.parametrize("closed_is_1", [True, False])
async def test_polarity_both_ways(rig, closed_is_1):
    polarity = Polarity.CLOSED_IS_1 if closed_is_1 else Polarity.CLOSED_IS_0
    sim, bank = await rig(closed_is_1=closed_is_1, profile_kw={"polarity": polarity})
    sim.open_door(0, 2)
    status = await bank.read_status(0)
    assert status.doors == tuple(OPEN if ch == 2 else CLOSED for ch in range(16))
    reply = sim.status_reply(0)
    assert reply.lock_bit(0) is closed_is_1  # the raw bit really differs on the wire


async def test_wrong_polarity_setting_reads_everything_inverted(rig):
    sim, bank = await rig(closed_is_1=False)  # profile says CLOSED_IS_1
    assert (await bank.read_status(0)).doors == (OPEN,) * 16


async def test_item_sensors(rig):
    sim, bank = await rig()
    await bank.unlock(0, 5)
    sim.put_item(0, 5)
    sim.close_door(0, 5)
    sim.put_item(0, 15, force=True)
    status = await bank.read_status(0)
    assert status.items == tuple(ch in (5, 15) for ch in range(16))
    assert status.doors == (CLOSED,) * 16


async def test_without_item_sensors_items_are_unknown(rig):
    sim, bank = await rig(profile_kw={"has_item_sensors": False, "channels_per_board": 12})
    sim.put_item(0, 1, force=True)
    status = await bank.read_status(0)
    assert status.items == (None,) * 12
    assert len(status.doors) == 12


async def test_reply_from_the_wrong_address_is_not_the_answer(rig):
    sim, bank = await rig()
    sim.open_door(0, 0)
    sim.answer_from_wrong_address()  # board 0's reply comes back as if from board 1
    status = await bank.read_status(0)
    assert status.board == 0 and status.doors[0] is OPEN
    assert len(sim.requests) == 2  # the foreign reply was ignored, the query asked again
    assert bank.stats.unexpected_frames == 1


async def test_garbage_before_the_reply_is_skipped(rig):
    sim, bank = await rig()
    sim.garbage_before_reply(b"\xff\x00\x02\x00\x35\x13")
    sim.open_door(3, 14)
    status = await bank.read_status(3)
    assert status.doors[14] is OPEN
    assert len(sim.requests) == 1
    assert bank.stats.skipped_bytes == 6


async def test_corrupted_reply_is_rejected_and_the_query_retried(rig):
    sim, bank = await rig()
    sim.corrupt_replies(1)
    sim.open_door(0, 7)
    assert (await bank.read_status(0)).doors[7] is OPEN
    assert len(sim.requests) == 2
    assert bank.stats.skipped_bytes == 9


async def test_dropped_reply_is_retried_and_succeeds(rig):
    sim, bank = await rig()
    sim.drop_replies(2)
    status = await bank.read_status(3)
    assert status.doors == (CLOSED,) * 16
    assert len(sim.requests) == 3
    assert bank.stats.retries == 2


async def test_board_that_never_answers_times_out(rig):
    sim, bank = await rig()
    sim.stop_answering(3)
    with pytest.raises(DeviceTimeout):
        await bank.read_status(3)
    assert len(sim.requests) == 3  # 1 + query_retries
    assert (await bank.read_status(0)).board == 0  # the other board still answers


async def test_board_missing_from_the_bus_times_out(rig):
    sim, bank = await rig(boards=[0])
    with pytest.raises(DeviceTimeout):
        await bank.read_status(3)


@pytest.mark.parametrize(
    "misbehave",
    [
        lambda sim: sim.drop_replies(3),
        lambda sim: sim.corrupt_replies(3),
        lambda sim: sim.garbage_before_reply(n=3),
        lambda sim: sim.delay_replies(0.1, n=3),
        lambda sim: sim.answer_from_wrong_address(3),
        lambda sim: sim.split_replies(3, pause=0.03),
    ],
    ids=["dropped", "corrupted", "garbage", "delayed", "wrong-address", "split"],
)
async def test_unlock_goes_on_the_wire_exactly_once_whatever_the_bus_does(rig, misbehave):
    sim, bank = await rig(unlock_replies=True)
    misbehave(sim)
    await bank.unlock(0, 4)
    await asyncio.sleep(0.12)  # let any delayed reply arrive
    sim.clear_faults()
    assert (await bank.read_status(0)).doors[4] is OPEN
    assert len(unlock_frames(sim)) == 1
    assert sim.door(0, 4).pulses == 1
    assert sim.board(0).pulses == 1


async def test_unlock_to_a_silent_board_is_sent_once_and_does_not_raise(rig):
    sim, bank = await rig()
    sim.stop_answering(0)
    await bank.unlock(0, 4)
    assert len(unlock_frames(sim)) == 1
    assert sim.door(0, 4).pulses == 0  # an unpowered board does nothing: learned by polling


async def test_unlock_needs_no_reply_and_is_quick(rig):
    sim, bank = await rig()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await bank.unlock(3, 0)
    assert loop.time() - start < bank.unlock_settle + 0.05
    assert bank.stats.timeouts == 0


async def test_checks_arguments_before_touching_the_wire(rig):
    sim, bank = await rig()
    with pytest.raises(ValueError):
        await bank.unlock(1, 0)  # board 1 is not in the profile
    with pytest.raises(ValueError):
        await bank.unlock(0, 16)
    assert len(sim.requests) == 0


async def test_open_failure_is_device_open_error(tmp_path):
    bank = KerongCU16Bank(profile(str(tmp_path / "no-such-tty")))
    with pytest.raises(DeviceOpenError) as info:
        await bank.open()
    assert info.value.__cause__ is not None
    assert not bank.is_open


async def test_lost_link_is_device_io_error(rig):
    sim, bank = await rig()
    await sim.close()
    with pytest.raises(DeviceIOError) as info:
        for _ in range(3):
            await bank.read_status(0)
    assert not isinstance(info.value, DeviceTimeout)


async def test_describe_includes_link_statistics(rig):
    sim, bank = await rig()
    sim.drop_replies(1)
    await bank.read_status(0)
    info = bank.describe()
    assert info["protocol"] == "kerong-cu16"
    assert info["bus.frames_sent"] == "2"
    assert info["bus.timeouts"] == "1"
    assert info["bus.replies"] == "1"
    assert all(isinstance(v, str) for v in info.values())


def test_profile_outside_the_board_limits_is_refused():
    with pytest.raises(ValueError):
        KerongCU16Bank(profile("socket://127.0.0.1:9", channels_per_board=17))
    with pytest.raises(ValueError):
        KerongCU16Bank(profile("socket://127.0.0.1:9", boards=(16,)))
