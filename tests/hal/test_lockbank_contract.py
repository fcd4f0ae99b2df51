"""The same contract for every lock-board protocol, each driver against its own simulator."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import tests.hal.protocols as protocols_pkg
from hal.errors import DeviceTimeout
from hal.lockbank import DEFAULT_BAUDRATE, BankProfile, DoorState, Polarity, lock_bank

ADAPTERS = [importlib.import_module(f"tests.hal.protocols.{m.name}")
            for m in pkgutil.iter_modules(protocols_pkg.__path__)]
CLOSED, OPEN = DoorState.CLOSED, DoorState.OPEN


@pytest.fixture(params=ADAPTERS, ids=lambda a: a.PROTOCOL)
def adapter(request):
    return request.param


@pytest.fixture
async def wall(adapter):
    """``await wall(transport="pty", polarity=...)`` -> (sim handle, opened bank)."""
    started = []

    async def start(transport: str = "pty", polarity: Polarity = Polarity.CLOSED_IS_1, **profile_kw):
        sim = await adapter.start(transport, polarity)
        fields = dict(protocol=adapter.PROTOCOL, url=sim.url, boards=adapter.BOARDS,
                      channels_per_board=adapter.CHANNELS, baudrate=DEFAULT_BAUDRATE[adapter.PROTOCOL],
                      polarity=polarity, reply_timeout=0.1, query_retries=2,
                      has_item_sensors=adapter.HAS_ITEM_SENSORS)
        fields.update(profile_kw)
        bank = lock_bank(BankProfile(**fields))
        started.append((sim, bank))
        await bank.open()
        return sim, bank

    yield start
    for sim, bank in started:
        await bank.close()
        await sim.close()


async def settle(bank, board, channel, want, tries=40):
    """Poll like the door monitor does: a timed-out read is followed by the next one."""
    for _ in range(tries):
        try:
            status = await bank.read_status(board)
        except DeviceTimeout:
            continue
        if status.doors[channel] is want:
            return status
    raise AssertionError(f"door {board}/{channel} never read {want}")


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_every_door_reads_closed_at_first(wall, adapter, transport):
    _, bank = await wall(transport)
    for board in adapter.BOARDS:
        status = await bank.read_status(board)
        assert status.board == board
        assert status.doors == (CLOSED,) * adapter.CHANNELS


@pytest.mark.parametrize("polarity", list(Polarity))
async def test_unlock_opens_exactly_that_door_once(wall, adapter, polarity):
    sim, bank = await wall(polarity=polarity)
    board, channel = adapter.BOARDS[-1], adapter.CHANNELS - 1
    await bank.unlock(board, channel)
    status = await settle(bank, board, channel, OPEN)
    assert [c for c, d in enumerate(status.doors) if d is OPEN] == [channel]
    assert sim.pulses(board, channel) == 1
    assert all(sim.pulses(b, c) == 0 for b in adapter.BOARDS for c in range(adapter.CHANNELS)
               if (b, c) != (board, channel))
    sim.close_door(board, channel)
    await settle(bank, board, channel, CLOSED)


async def test_a_door_opened_by_hand_reads_open(wall, adapter):
    sim, bank = await wall()
    sim.open_door(adapter.BOARDS[0], 0)
    await settle(bank, adapter.BOARDS[0], 0, OPEN)
    assert sim.pulses(adapter.BOARDS[0], 0) == 0


async def test_jammed_door_gets_its_pulse_and_stays_closed(wall, adapter):
    sim, bank = await wall()
    sim.set_jammed(adapter.BOARDS[0], 1, True)
    await bank.unlock(adapter.BOARDS[0], 1)
    assert (await bank.read_status(adapter.BOARDS[0])).doors[1] is CLOSED
    assert sim.pulses(adapter.BOARDS[0], 1) == 1


async def test_item_sensors_when_the_board_has_them(wall, adapter):
    sim, bank = await wall()
    board = adapter.BOARDS[0]
    if not adapter.HAS_ITEM_SENSORS:
        assert set((await bank.read_status(board)).items) <= {None}
        return
    sim.open_door(board, 2)
    sim.put_item(board, 2)
    sim.close_door(board, 2)
    items = (await bank.read_status(board)).items
    assert items[2] is True and [i for c, i in enumerate(items) if c != 2] == [False] * (adapter.CHANNELS - 1)


async def test_dropped_reply_is_retried_and_garbage_skipped(wall, adapter):
    sim, bank = await wall()
    sim.drop_replies(1)
    assert (await bank.read_status(adapter.BOARDS[0])).doors == (CLOSED,) * adapter.CHANNELS
    sim.garbage_before_reply()
    assert (await bank.read_status(adapter.BOARDS[0])).doors == (CLOSED,) * adapter.CHANNELS


async def test_reply_from_the_wrong_board_is_not_the_answer(wall, adapter):
    sim, bank = await wall()
    board = adapter.BOARDS[-1]
    sim.open_door(board, 0)
    sim.answer_from_wrong_address(1)
    status = await bank.read_status(board)
    assert status.board == board and status.doors[0] is OPEN


async def test_a_silent_board_times_out_and_an_unlock_to_it_is_sent_once(wall, adapter):
    sim, bank = await wall()
    board = adapter.BOARDS[0]
    sim.stop_answering(board)
    with pytest.raises(DeviceTimeout):
        await bank.read_status(board)
    await bank.unlock(board, 0)  # an unanswered unlock is an unknown outcome, not an error
    sim.resume_answering(board)
    assert sim.pulses(board, 0) <= 1
    await bank.read_status(board)


@pytest.mark.parametrize("fault", ["drop", "garbage", "wrong_address"])
async def test_unlock_reaches_the_lock_at_most_once_whatever_the_bus_does(wall, adapter, fault):
    sim, bank = await wall()
    board, channel = adapter.BOARDS[0], 3
    {"drop": lambda: sim.drop_replies(3), "garbage": sim.garbage_before_reply,
     "wrong_address": lambda: sim.answer_from_wrong_address(3)}[fault]()
    await bank.unlock(board, channel)
    await settle(bank, board, channel, OPEN)
    assert sim.pulses(board, channel) == 1
