import asyncio
import logging

import pytest

from firmware_bridge import kerong_cu12 as cu12
from hal.errors import DeviceTimeout
from hal.lockbank import BankProfile, BoardStatus, DoorState, Polarity, StatusByteOrder, lock_bank
from hal.lockbank_cu12 import KerongCU12Bank
from simulators.kerong_cu12 import KerongCU12Simulator

CLOSED, OPEN, UNKNOWN = DoorState.CLOSED, DoorState.OPEN, DoorState.UNKNOWN


def profile(url, **overrides):
    fields = dict(protocol="kerong-cu12", url=url, boards=(0, 3), channels_per_board=12, baudrate=19200,
                  reply_timeout=0.06, query_retries=2, has_item_sensors=False)
    fields.update(overrides)
    return BankProfile(**fields)


@pytest.fixture
async def rig():
    """``await rig(**sim_kw, profile_kw=..., bank_kw=...)`` -> (sim, opened bank), on a pty."""
    opened = []

    async def start(*, profile_kw=None, bank_kw=None, **sim_kw):
        sim_kw.setdefault("boards", [0, 3])
        sim = KerongCU12Simulator(**sim_kw)
        transport = await sim.serve_pty()
        p = profile(transport.url, **(profile_kw or {}))
        bank = KerongCU12Bank(p, **bank_kw) if bank_kw else lock_bank(p)
        opened.append((sim, bank))
        await bank.open()
        return sim, bank

    yield start
    for sim, bank in opened:
        await bank.close()
        await sim.close()


def wire(sim, direction):
    return [e.data.hex(" ") for e in sim.wire if e.direction == direction]


async def test_backend_table_builds_the_cu12_bank(rig):
    _, bank = await rig()
    assert isinstance(bank, KerongCU12Bank) and bank.is_open
    assert bank.data_position is cu12.DataPosition.AFTER_SUM


async def test_status_read_on_the_wire(rig):
    sim, bank = await rig()
    status = await bank.read_status(3)
    assert status == BoardStatus(board=3, doors=(CLOSED,) * 12, items=(None,) * 12)
    assert wire(sim, "rx") == ["02 03 0c 80 00 00 03 94"]
    assert wire(sim, "tx") == ["02 03 0c 80 10 02 03 b4 ff 0f"]  # 12 closed locks: bits 0-11 set, after SUM


async def test_unlock_is_acknowledged_and_the_door_read_open(rig, caplog):
    sim, bank = await rig()
    with caplog.at_level(logging.INFO, logger="hal"):
        await bank.unlock(3, 9)
    assert wire(sim, "rx") == ["02 03 09 81 00 00 03 92"]
    assert wire(sim, "tx") == ["02 03 09 81 10 00 03 a2"]
    assert bank.outcomes == {"unlock_acknowledged": 1}
    assert "acknowledged unlock of channel 9" in caplog.text
    assert (await bank.read_status(3)).doors == tuple(OPEN if ch == 9 else CLOSED for ch in range(12))


@pytest.mark.parametrize("closed_is_1", [True, False])
@pytest.mark.parametrize("first_byte_first", [True, False])
async def test_polarity_and_byte_order_all_four_ways(rig, closed_is_1, first_byte_first):
    sim, bank = await rig(
        closed_is_1=closed_is_1, first_byte_first=first_byte_first,
        profile_kw={"polarity": Polarity.CLOSED_IS_1 if closed_is_1 else Polarity.CLOSED_IS_0,
                    "status_byte_order": StatusByteOrder.FIRST_BYTE_FIRST if first_byte_first
                    else StatusByteOrder.LAST_BYTE_FIRST},
    )
    sim.open_door(0, 9)
    assert (await bank.read_status(0)).doors == tuple(OPEN if ch == 9 else CLOSED for ch in range(12))
    data = cu12.decode_reply(bytes.fromhex(wire(sim, "tx")[-1]))[1].data
    expected = {(True, True): "ff 0d", (True, False): "0d ff", (False, True): "00 02", (False, False): "02 00"}
    assert data.hex(" ") == expected[(closed_is_1, first_byte_first)]


async def test_a_refused_unlock_is_logged_and_counted_not_raised(rig, caplog):
    sim, bank = await rig()
    sim.refuse_replies(1, cu12.Ask.FAILURE)
    with caplog.at_level(logging.WARNING, logger="hal"):
        await bank.unlock(0, 4)
    assert bank.outcomes == {"unlock_refused": 1}
    assert "refused unlock of channel 4" in caplog.text and "FAILURE" in caplog.text
    assert sim.door(0, 4).pulses == 0 and sim.door(0, 4).closed
    assert len(sim.requests) == 1  # never sent again


@pytest.mark.parametrize("ask", [cu12.Ask.CHECKSUM_ERROR, cu12.Ask.TIMEOUT])
async def test_a_status_read_the_board_refuses_is_all_unknown(rig, ask):
    sim, bank = await rig()
    sim.refuse_replies(1, ask)
    status = await bank.read_status(0)
    assert status.doors == (UNKNOWN,) * 12 and status.items == (None,) * 12
    assert bank.outcomes == {"status_refused": 1}
    assert len(sim.requests) == 1
    assert (await bank.read_status(0)).doors == (CLOSED,) * 12


async def test_an_unanswered_unlock_is_an_unknown_outcome(rig):
    sim, bank = await rig(unlock_replies=False)
    await bank.unlock(0, 2)
    assert bank.outcomes == {"unlock_unanswered": 1}
    assert len(sim.requests) == 1
    assert (await bank.read_status(0)).doors[2] is OPEN  # learned by polling


async def test_data_after_sum_when_both_sides_agree(rig):
    after = cu12.DataPosition.AFTER_SUM
    sim, bank = await rig(data_position=after, bank_kw={"data_position": after})
    sim.open_door(3, 0)
    assert (await bank.read_status(3)).doors[0] is OPEN
    assert wire(sim, "tx")[-1] == "02 03 0c 80 10 02 03 b3 fe 0f"  # SUM before DATA
    assert bank.describe()["data_position"] == "after_sum"


async def test_data_position_mismatch_shows_up_as_timeouts(rig):
    sim, bank = await rig(data_position=cu12.DataPosition.BEFORE_SUM)
    with pytest.raises(DeviceTimeout):
        await bank.read_status(0)
    assert len(sim.requests) == 3  # the request has no DATA, so the board understood every try
    assert bank.stats.skipped_bytes > 0


@pytest.mark.parametrize(
    "misbehave",
    [
        lambda sim: sim.corrupt_replies(3),
        lambda sim: sim.delay_replies(0.1, n=3),
        lambda sim: sim.split_replies(3, pause=0.03),
    ],
    ids=["corrupted", "delayed", "split"],
)
async def test_unlock_goes_on_the_wire_exactly_once_whatever_the_bus_does(rig, misbehave):
    sim, bank = await rig()
    misbehave(sim)
    await bank.unlock(0, 4)
    await asyncio.sleep(0.12)  # let any delayed reply arrive
    sim.clear_faults()
    assert (await bank.read_status(0)).doors[4] is OPEN
    assert [r.command for r in sim.requests].count(cu12.Command.UNLOCK) == 1
    assert sim.board(0).pulses == 1


async def test_describe(rig):
    sim, bank = await rig()
    await bank.unlock(0, 1)
    info = bank.describe()
    assert info["model"] == "Kerong CU12" and info["protocol"] == "kerong-cu12"
    assert info["board.unlock_acknowledged"] == "1" and info["bus.frames_sent"] == "1"
    assert all(isinstance(v, str) for v in info.values())


def test_profile_outside_the_board_limits_is_refused():
    with pytest.raises(ValueError):
        KerongCU12Bank(profile("socket://127.0.0.1:9", channels_per_board=13))
    with pytest.raises(ValueError):
        KerongCU12Bank(profile("socket://127.0.0.1:9", boards=(16,)))  # 0x10 is the broadcast address
