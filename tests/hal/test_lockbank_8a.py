import logging

import pytest

from hal.errors import DeviceTimeout
from hal.lockbank import BankProfile, BoardStatus, DoorState, Polarity, StatusByteOrder, lock_bank
from hal.lockbank_8a import Generic8ABank
from simulators.generic_8a import Generic8ASimulator

CLOSED, OPEN = DoorState.CLOSED, DoorState.OPEN
FIRST, LAST = StatusByteOrder.FIRST_BYTE_FIRST, StatusByteOrder.LAST_BYTE_FIRST


def profile(url, **overrides):
    fields = dict(protocol="generic-8a", url=url, boards=(1, 2), channels_per_board=24, baudrate=9600,
                  reply_timeout=0.06, query_retries=2, has_item_sensors=False)
    fields.update(overrides)
    return BankProfile(**fields)


@pytest.fixture
async def rig():
    """``await rig(**sim_kw, profile_kw=...)`` -> (sim, opened bank), on a pty."""
    opened = []

    async def start(*, profile_kw=None, **sim_kw):
        sim_kw.setdefault("boards", [1, 2])
        sim = Generic8ASimulator(**sim_kw)
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


async def test_android_capture_end_to_end(rig):
    # "lock 2 open -> 80 01 00 00 02 33 B0": last byte first, bit 1 = open
    sim, bank = await rig(doors_per_board=24, closed_is_1=False, first_byte_first=False,
                          profile_kw={"polarity": Polarity.CLOSED_IS_0, "status_byte_order": LAST})
    assert isinstance(bank, Generic8ABank)
    sim.open_door(1, 1)
    status = await bank.read_status(1)
    assert wire(sim, "rx") == ["80 01 00 33 b2"]
    assert wire(sim, "tx") == ["80 01 00 00 02 33 b0"]
    assert status == BoardStatus(board=1, doors=tuple(OPEN if ch == 1 else CLOSED for ch in range(24)),
                                 items=(None,) * 24)


async def test_open_locker_capture_end_to_end(rig):
    # TX 80 01 00 33 B2 / RX 80 01 00 00 00 33 B2 on an 8-channel board (doors assumed closed)
    sim, bank = await rig(doors_per_board=8, closed_is_1=False,
                          profile_kw={"channels_per_board": 8, "polarity": Polarity.CLOSED_IS_0})
    assert (await bank.read_status(1)).doors == (CLOSED,) * 8
    assert wire(sim, "rx") == ["80 01 00 33 b2"] and wire(sim, "tx") == ["80 01 00 00 00 33 b2"]


@pytest.mark.parametrize("closed_is_1", [True, False])
@pytest.mark.parametrize("order", [FIRST, LAST])
@pytest.mark.parametrize("channels", [12, 50])
async def test_every_polarity_and_byte_order_reads_right_when_set_alike(rig, closed_is_1, order, channels):
    sim, bank = await rig(
        doors_per_board=channels, closed_is_1=closed_is_1, first_byte_first=order is FIRST,
        profile_kw={"channels_per_board": channels, "status_byte_order": order,
                    "polarity": Polarity.CLOSED_IS_1 if closed_is_1 else Polarity.CLOSED_IS_0},
    )
    sim.open_door(2, 9)
    status = await bank.read_status(2)
    assert status.doors == tuple(OPEN if ch == 9 else CLOSED for ch in range(channels))
    assert len(bytes.fromhex(wire(sim, "tx")[-1])) == (7 if channels <= 24 else 11)


@pytest.mark.parametrize(
    "sim_kw, reads_open",
    [
        ({"first_byte_first": False}, [18]),  # byte order wrong: channel 2 shows up as channel 18
        ({"closed_is_1": False}, [c for c in range(24) if c != 2]),  # polarity wrong: inverted
    ],
    ids=["byte-order", "polarity"],
)
async def test_a_wrong_setting_reads_the_wrong_doors(rig, sim_kw, reads_open):
    sim, bank = await rig(**sim_kw)  # profile: first byte first, closed is 1
    sim.open_door(1, 2)
    doors = (await bank.read_status(1)).doors
    assert [ch for ch, d in enumerate(doors) if d is OPEN] == reads_open


async def test_open_is_acknowledged_with_raw_status_and_is_never_proof(rig, caplog):
    sim, bank = await rig()
    sim.set_jammed(1, 0)
    with caplog.at_level(logging.INFO, logger="hal"):
        await bank.unlock(1, 0)
    assert wire(sim, "rx") == ["8a 01 01 11 9b"]
    assert wire(sim, "tx") == ["8a 01 01 11 9b"]  # ST 0x11: the jammed door stayed shut
    assert bank.outcomes == {"unlock_acknowledged": 1}
    assert "OpenReply(board=1, lock=1, status=17)" in caplog.text
    assert (await bank.read_status(1)).doors[0] is CLOSED  # only polling tells


async def test_an_unanswered_open_is_logged_not_raised_and_never_resent(rig, caplog):
    sim, bank = await rig(unlock_replies=False)
    with caplog.at_level(logging.WARNING, logger="hal"):
        await bank.unlock(2, 23)
    assert "no acknowledgement; outcome unknown, not resent" in caplog.text
    assert bank.outcomes == {"unlock_unanswered": 1}
    assert len(sim.requests) == 1
    assert (await bank.read_status(2)).doors[23] is OPEN


async def test_the_driver_cannot_send_open_all(rig):
    sim, bank = await rig()
    with pytest.raises(ValueError):
        await bank.unlock(1, -1)  # channel -1 would be lock byte 0, "every lock"
    assert not [name for name in dir(bank) if "all" in name.lower() and not name.startswith("_")]
    assert len(sim.requests) == 0


async def test_garbage_before_the_reply_is_skipped(rig):
    sim, bank = await rig()
    sim.garbage_before_reply()  # FE 00 80 01: a false head first
    assert (await bank.read_status(1)).doors == (CLOSED,) * 24
    assert len(sim.requests) == 1 and bank.stats.skipped_bytes == 4


async def test_a_model_mismatch_times_out(rig):
    sim, bank = await rig(doors_per_board=24, profile_kw={"channels_per_board": 50})
    with pytest.raises(DeviceTimeout):
        await bank.read_status(1)  # 7-byte replies never make an 11-byte one


def test_profile_outside_the_board_limits_is_refused():
    with pytest.raises(ValueError):
        Generic8ABank(profile("socket://127.0.0.1:9", channels_per_board=51))
    with pytest.raises(ValueError):
        Generic8ABank(profile("socket://127.0.0.1:9", boards=(0,)))  # DIP addresses are 1..32
    assert Generic8ABank(profile("socket://127.0.0.1:9", channels_per_board=50)).status_bytes == 7
