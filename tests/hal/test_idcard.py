import asyncio
import dataclasses
import datetime as dt
import logging

import pytest

from firmware_bridge import samv
from firmware_bridge.samv import CardType, Command, Sex, Status, TextBlock
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout, DeviceUnavailable
from hal.idcard import (
    BACKENDS,
    CardReadFailed,
    CardRejected,
    IdCard,
    Outcome,
    SamFault,
    SamvSerialReader,
    id_card_reader,
    outcome_of,
)
from simulators.fake_idcard import FakeIdCardReader
from simulators.idcard import make_card, run_idcard_sim

TODAY = dt.date(2025, 6, 1)
FAST = {"reply_timeout": 0.3, "poll_interval": 0.02, "today": TODAY}

# What every SW3 code must lead to when it answers the read command, written out from the table
# in hal/idcard.py's docstring (not computed from OUTCOMES).
ERROR_OUTCOMES = {
    0x91: CardReadFailed,  # "no content" to a basic read
    0x80: CardReadFailed,  # the card was found, then "no card": taken away
    0x81: CardReadFailed,
    0x41: CardReadFailed,
    0x24: CardReadFailed,
    0x3F: CardReadFailed,
    0x47: CardReadFailed,
    0x31: CardRejected,
    0x32: CardRejected,
    0x33: CardRejected,
    0x37: CardRejected,
    0x40: CardRejected,
    0x21: SamFault,
    0x23: SamFault,
    0x60: SamFault,
    0x66: SamFault,
    0x55: SamFault,  # a code no table lists
}
RETRIED = (0x10, 0x11)


def test_every_wire_status_has_a_documented_outcome():
    listed = set(ERROR_OUTCOMES) | set(RETRIED) | {0x90, 0x9F}
    assert {int(s) for s in Status} <= listed
    assert outcome_of(0x90) is outcome_of(0x9F) is Outcome.SUCCESS
    assert outcome_of(0x80) is Outcome.NO_CARD and outcome_of(0x10) is Outcome.RETRY
    assert issubclass(SamFault, DeviceIOError) and not issubclass(CardReadFailed, DeviceIOError)


# -- one contract, two implementations: the driver over the wire simulator, and the fake ----------


class WireRig:
    def __init__(self, running):
        self.running = running
        self.sim = running.sim
        self.reader = id_card_reader("samv-serial", url=running.url, **FAST)

    def present(self, *args, **kw):
        return self.sim.present_card(*args, **kw)

    def remove(self):
        self.sim.remove_card()

    def remove_mid_read(self):
        self.sim.remove_card_mid_read("status")

    def fail_read(self, status, count=1):
        self.sim.fail_next(status, Command.READ, count)

    def photo(self):
        return self.sim.state.card.photo


class FakeRig:
    def __init__(self):
        self.reader = FakeIdCardReader(seed=5, today=TODAY)

    def present(self, *args, **kw):
        return self.reader.present_card(*args, **kw)

    def remove(self):
        self.reader.remove_card()

    def remove_mid_read(self):
        self.reader.remove_card_mid_read()

    def fail_read(self, status, count=1):
        self.reader.fail_next(status, count)

    def photo(self):
        return self.reader.photo


@pytest.fixture(params=["wire", "fake"])
async def rig(request):
    if request.param == "wire":
        running = await run_idcard_sim("pty", seed=11)
        rig = WireRig(running)
    else:
        running, rig = None, FakeRig()
    await rig.reader.open()
    yield rig
    await rig.reader.close()
    if running is not None:
        await running.close()


def expected_card(text: TextBlock) -> dict:
    return {f.name: getattr(text, f.name) for f in dataclasses.fields(TextBlock)}


@pytest.mark.parametrize("card_type", list(CardType))
async def test_each_card_type_is_read_field_for_field(rig, card_type):
    text = rig.present(card_type)
    card = await rig.reader.read_card(timeout=1)
    assert {k: getattr(card, k) for k in expected_card(text)} == expected_card(text)
    assert card.card_type == card_type.value and card.has_photo
    if card_type is CardType.FOREIGN_PERMANENT:
        assert card.id_number_valid is None and card.address is None and card.chinese_name and card.nationality
    else:
        assert card.id_number_valid is True and card.id_number_problem is None
    if card_type is CardType.HK_MO_TW_PERMIT:
        assert card.id_number[:2] in ("81", "82", "83") and card.pass_number and card.issue_count >= 1


async def test_long_term_validity(rig):
    rig.present("resident", long_term=True)
    card = await rig.reader.read_card(timeout=1)
    assert card.valid_to is None and card.long_term and not card.is_expired(dt.date(2200, 1, 1))
    assert card.masked()["valid_to"] == "长期"


async def test_the_photo_is_handed_over_once_and_is_not_part_of_the_card(rig):
    rig.present("resident")
    card = await rig.reader.read_card(timeout=1)
    assert "photo" not in {f.name for f in dataclasses.fields(IdCard)}
    assert rig.reader.take_photo() == rig.photo() and len(rig.photo()) == 1024
    assert rig.reader.take_photo() is None
    assert rig.photo() not in repr(dataclasses.asdict(card)).encode()


async def test_no_card_is_none(rig):
    assert await rig.reader.read_card(timeout=0) is None
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await rig.reader.read_card(timeout=0.15) is None
    assert 0.14 <= loop.time() - started < 1.0


async def test_a_card_presented_while_waiting_is_read(rig):
    async def later():
        await asyncio.sleep(0.1)
        return rig.present("resident")

    task = asyncio.create_task(later())
    card = await rig.reader.read_card(timeout=2)
    text = await task
    assert card.id_number == text.id_number


async def test_card_removed_mid_read(rig):
    rig.present("resident")
    rig.remove_mid_read()
    with pytest.raises(CardReadFailed) as err:
        await rig.reader.read_card(timeout=1)
    assert err.value.status == 0x41
    assert await rig.reader.read_card(timeout=0) is None  # and it is gone


@pytest.mark.parametrize("status", sorted(ERROR_OUTCOMES), ids=lambda s: f"0x{s:02X}")
async def test_every_error_code_maps_to_its_outcome(rig, status):
    text = rig.present("resident")
    rig.fail_read(status)
    with pytest.raises(ERROR_OUTCOMES[status]) as err:
        await rig.reader.read_card(timeout=1)
    assert err.value.status == status
    assert f"0x{status:02X}" in str(err.value) and text.id_number not in str(err.value)


@pytest.mark.parametrize("status", RETRIED, ids=lambda s: f"0x{s:02X}")
async def test_host_frame_errors_are_retried_then_fail_clearly(rig, status):
    text = rig.present("resident")
    rig.fail_read(status, count=2)
    assert (await rig.reader.read_card(timeout=1)).id_number == text.id_number
    rig.fail_read(status, count=3)
    with pytest.raises(DeviceIOError) as err:
        await rig.reader.read_card(timeout=1)
    assert not isinstance(err.value, SamFault)


async def test_an_invalid_check_character_is_reported_not_hidden(rig):
    rig.present("resident", id_number="11010119900101123X", birth=dt.date(1990, 1, 1), sex=Sex.MALE)
    card = await rig.reader.read_card(timeout=1)
    assert card.id_number_valid is False and card.id_number_problem == "check"


async def test_a_number_disagreeing_with_the_card_is_reported(rig):
    # 110101199003070011 is valid (rules-and-identifiers.md §3.2) but says 1990-03-07, male
    rig.present("resident", id_number="110101199003070011", birth=dt.date(1990, 3, 8), sex=Sex.MALE)
    assert (await rig.reader.read_card(timeout=1)).id_number_problem == "birth_mismatch"
    rig.present("resident", id_number="110101199003070011", birth=dt.date(1990, 3, 7), sex=Sex.FEMALE)
    assert (await rig.reader.read_card(timeout=1)).id_number_problem == "sex_mismatch"
    rig.present("resident", id_number="110101199003070011", birth=dt.date(1990, 3, 7), sex=Sex.MALE)
    assert (await rig.reader.read_card(timeout=1)).id_number_valid is True


async def test_sam_status_and_id(rig):
    status = await rig.reader.sam_status()
    assert status.ok and status.status == 0x90
    assert len(await rig.reader.sam_id()) == 32


async def test_masking_in_repr_masked_and_logs(rig, caplog):
    caplog.set_level(logging.DEBUG)
    text = rig.present("resident", name="欧阳测试")
    card = await rig.reader.read_card(timeout=1)
    masked = card.masked()
    assert masked["name"] == "欧*" and masked["id_number"] == "*" * 14 + text.id_number[-4:]
    assert "birth" not in masked and "sex" not in masked and "nation" not in masked
    assert masked["address"].endswith("***") and text.address not in str(masked)
    shown = repr(card) + str(card) + str(masked) + caplog.text
    for secret in (text.id_number, text.id_number[:14], "欧阳测试", "阳测试", text.address):
        assert secret not in shown
    assert text.id_number.encode("utf-16-le") not in caplog.text.encode("utf-8")


# -- the wire: what only the serial driver meets -----------------------------------------------------


@pytest.fixture
async def wire():
    running = await run_idcard_sim("pty", seed=3)
    reader = SamvSerialReader(running.url, **FAST)
    await reader.open()
    yield running, reader
    await reader.close()
    await running.close()


async def test_a_corrupted_checksum_is_retried(wire):
    running, reader = wire
    text = running.present_card("resident")
    running.sim.corrupt_next(1)
    assert (await reader.read_card(timeout=1)).id_number == text.id_number
    assert running.sim.state.commands[:2] == ["find", "find"]


async def test_checksums_that_keep_failing_give_a_clear_error(wire):
    running, reader = wire
    running.present_card("resident")
    running.sim.corrupt_next(3)
    with pytest.raises(DeviceIOError, match="checksum") as err:
        await reader.read_card(timeout=1)
    assert not isinstance(err.value, DeviceTimeout)


async def test_a_truncated_read_after_the_card_left_is_a_failed_read(wire):
    running, reader = wire
    running.present_card("resident")
    running.sim.remove_card_mid_read("truncate")
    with pytest.raises(CardReadFailed, match="taken away"):
        await reader.read_card(timeout=1)
    assert running.sim.state.commands == ["find", "select", "read", "find"]


async def test_garbage_and_a_slow_reply_are_tolerated(wire):
    running, reader = wire
    text = running.present_card("foreign_permanent")
    running.sim.garbage_next(b"\x00\xff\xaa\xaa")
    running.sim.slow_next(0.15, count=3)
    assert (await reader.read_card(timeout=1)).id_number == text.id_number
    assert running.sim.state.commands == ["find", "select", "read"]


async def test_a_silent_reader_times_out(wire):
    running, reader = wire
    running.present_card("resident")
    running.sim.silence_next(3)
    with pytest.raises(DeviceTimeout):
        await reader.read_card(timeout=1)
    running.sim.slow_next(1.0, count=3)  # slower than reply_timeout every time
    with pytest.raises(DeviceTimeout):
        await reader.read_card(timeout=1)


async def test_unplugged_reader_is_a_device_io_error(wire):
    running, reader = wire
    running.present_card("resident")
    running.sim.unplug()
    with pytest.raises(DeviceIOError):
        await reader.read_card(timeout=1)


async def test_forced_no_card_on_find_is_none_and_select_failure_a_failed_read(wire):
    running, reader = wire
    running.present_card("resident")
    running.sim.fail_next(Status.FIND_FAILED, Command.FIND)
    assert await reader.read_card(timeout=0) is None
    running.sim.fail_next(Status.SELECT_FAILED, Command.SELECT)
    with pytest.raises(CardReadFailed) as err:
        await reader.read_card(timeout=0)
    assert err.value.status == 0x81


async def test_a_card_type_with_no_known_layout_is_rejected(wire):
    running, reader = wire
    block = bytearray(samv.encode_text(make_card("resident")))
    block[248:250] = "Y".encode("utf-16-le")  # the 2023 foreigner card: layout unknown
    running.sim.present_raw_card(bytes(block))
    with pytest.raises(CardRejected, match="type") as err:
        await reader.read_card(timeout=1)
    assert err.value.status is None
    block[36:52] = "19991399".encode("utf-16-le")  # a resident card with a birth date that is no date
    block[248:250] = " ".encode("utf-16-le")
    running.sim.present_raw_card(bytes(block))
    with pytest.raises(CardRejected, match="not understood"):
        await reader.read_card(timeout=1)


async def test_sam_faults_on_status_and_extra_address(wire):
    running, reader = wire
    running.sim.state.sam_status = Status.SAM_SELF_TEST_FAILED
    status = await reader.sam_status()
    assert (status.ok, status.status) == (False, 0x60) and "self-test" in status.meaning
    running.present_card("resident", extra_address="测试路1号附2")
    await reader.read_card(timeout=1)
    assert await reader.read_extra_address() == "测试路1号附2"
    running.present_card("resident")
    await reader.read_card(timeout=1)
    assert await reader.read_extra_address() is None  # SW3 0x91


async def test_over_tcp_too():
    running = await run_idcard_sim("tcp", seed=1)
    try:
        text = running.present_card("hk_mo_tw_permit")
        async with id_card_reader("samv-serial", url=running.url, **FAST) as reader:
            assert (await reader.read_card(timeout=1)).pass_number == text.pass_number
    finally:
        await running.close()


async def test_open_errors_and_the_backend_table(tmp_path):
    assert BACKENDS == {"samv-serial": "hal.idcard:SamvSerialReader"}
    with pytest.raises(DeviceUnavailable):
        id_card_reader("vendor-sdk")
    reader = id_card_reader("samv-serial", url=str(tmp_path / "no-such-tty"))
    with pytest.raises(DeviceOpenError):
        await reader.open()
    with pytest.raises(RuntimeError, match="not open"):
        await reader.read_card()


async def test_closing_while_waiting_ends_the_wait_with_none():
    reader = FakeIdCardReader(poll_interval=0.02)
    await reader.open()
    task = asyncio.create_task(reader.read_card(timeout=None))
    await asyncio.sleep(0.05)
    await reader.close()
    assert await asyncio.wait_for(task, 1) is None


def test_make_card_gives_valid_synthetic_numbers():
    import random

    from hal.codes import parse_resident_id

    rng = random.Random(0)
    for _ in range(200):
        for card_type in (CardType.RESIDENT, CardType.HK_MO_TW_PERMIT):
            text = make_card(card_type, rng=rng)
            number, birth, sex = parse_resident_id(text.id_number, today=TODAY)
            assert birth == text.birth and sex == ("M" if text.sex is Sex.MALE else "F")


def test_status_rules_that_depend_on_the_step():
    from hal.idcard import raise_for_status

    raise_for_status(0x80, step="find")  # no card: not an error
    raise_for_status(0x91, step="extra_address")  # no extra address: not an error
    with pytest.raises(CardReadFailed, match="taken away"):
        raise_for_status(0x80, step="find", card_seen=True)
    with pytest.raises(SamFault, match="SW1 0x6A"):
        raise_for_status(0x90, step="read", sw1=0x6A)
