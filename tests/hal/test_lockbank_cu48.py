import logging

import pytest

from firmware_bridge import cu48
from hal.lockbank import BankProfile, BoardStatus, DoorState, Polarity, StatusByteOrder, lock_bank
from hal.lockbank_cu48 import CU48Bank
from simulators.cu48 import CU48Simulator

CLOSED, OPEN, UNKNOWN = DoorState.CLOSED, DoorState.OPEN, DoorState.UNKNOWN


def profile(url, **overrides):
    fields = dict(protocol="cu48", url=url, boards=(0, 7), channels_per_board=48, baudrate=19200,
                  reply_timeout=0.06, query_retries=2, has_item_sensors=False)
    fields.update(overrides)
    return BankProfile(**fields)


@pytest.fixture
async def rig():
    """``await rig(**sim_kw, profile_kw=...)`` -> (sim, opened bank), on a pty."""
    opened = []

    async def start(*, profile_kw=None, **sim_kw):
        sim_kw.setdefault("boards", [0, 7])
        sim = CU48Simulator(**sim_kw)
        transport = await sim.serve_pty()
        bank = lock_bank(profile(transport.url, **(profile_kw or {})))
        opened.append((sim, bank))
        await bank.open()
        return sim, bank

    yield start
    for sim, bank in opened:
        await bank.close()
        await sim.close()


def wire(sim, direction):
    return [e.data.hex(" ") for e in sim.wire if e.direction == direction]


async def test_status_and_open_on_the_wire(rig):
    sim, bank = await rig()
    assert isinstance(bank, CU48Bank)
    assert await bank.read_status(7) == BoardStatus(board=7, doors=(CLOSED,) * 48, items=(None,) * 48)
    await bank.unlock(7, 47)
    assert wire(sim, "rx") == ["02 07 00 60 03 6c", "02 07 2f 61 03 9c"]
    assert wire(sim, "tx")[1] == "02 07 2f 75 00 ad"  # the acknowledgement
    assert bank.outcomes == {"unlock_acknowledged": 1}
    assert (await bank.read_status(7)).doors == tuple(OPEN if ch == 47 else CLOSED for ch in range(48))


@pytest.mark.parametrize("closed_is_1", [True, False])
@pytest.mark.parametrize("first_byte_first", [True, False])
async def test_polarity_and_byte_order_all_four_ways(rig, closed_is_1, first_byte_first):
    sim, bank = await rig(
        closed_is_1=closed_is_1, first_byte_first=first_byte_first,
        profile_kw={"polarity": Polarity.CLOSED_IS_1 if closed_is_1 else Polarity.CLOSED_IS_0,
                    "status_byte_order": StatusByteOrder.FIRST_BYTE_FIRST if first_byte_first
                    else StatusByteOrder.LAST_BYTE_FIRST},
    )
    sim.open_door(0, 0)
    assert (await bank.read_status(0)).doors == tuple(OPEN if ch == 0 else CLOSED for ch in range(48))
    data = cu48.decode_reply(bytes.fromhex(wire(sim, "tx")[-1]))[1].data
    lock1_byte = data[0] if first_byte_first else data[-1]
    assert lock1_byte == (0xFE if closed_is_1 else 0x01)


async def test_a_refused_open_is_logged_not_raised_and_a_refused_status_is_unknown(rig, caplog):
    sim, bank = await rig()
    sim.refuse_replies(2)
    with caplog.at_level(logging.WARNING, logger="hal"):
        await bank.unlock(0, 5)
        status = await bank.read_status(0)
    assert "refused unlock of channel 5" in caplog.text
    assert status.doors == (UNKNOWN,) * 48
    assert bank.outcomes == {"unlock_refused": 1, "status_refused": 1}
    assert sim.door(0, 5).pulses == 0
    assert len(sim.requests) == 2


async def test_an_unanswered_open_is_an_unknown_outcome_and_not_resent(rig):
    sim, bank = await rig(unlock_replies=False)
    await bank.unlock(0, 5)
    assert bank.outcomes == {"unlock_unanswered": 1} and len(sim.requests) == 1
    assert (await bank.read_status(0)).doors[5] is OPEN


async def test_a_late_acknowledgement_is_not_a_status_reply(rig):
    sim, bank = await rig(profile_kw={"reply_timeout": 0.3})
    sim.delay_replies(0.15)  # the ack arrives after the 0.1 s settle window, during the next read
    await bank.unlock(0, 0)
    assert bank.outcomes == {"unlock_unanswered": 1}
    status = await bank.read_status(0)
    assert status.doors[0] is OPEN
    assert bank.stats.unexpected_frames + bank.stats.stale_bytes > 0  # the ack was seen and set aside
    assert len(sim.requests) == 2


def test_profile_outside_the_board_limits_is_refused():
    with pytest.raises(ValueError):
        CU48Bank(profile("socket://127.0.0.1:9", channels_per_board=49))
    with pytest.raises(ValueError):
        CU48Bank(profile("socket://127.0.0.1:9", boards=(256,)))
