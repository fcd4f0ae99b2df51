"""Modbus RTU relay boards: golden bytes, the flash unlock sent once, polarity, errors, faults."""

from __future__ import annotations

import asyncio

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU

from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout
from hal.lockbank import BankProfile, DoorState, Polarity, UnlockReply
from hal.lockbank_modbus import ModbusRelayBank, RawCoilWrite, flash_on_request, pulse_units
from simulators.modbus_relay import ModbusRelaySimulator, SimRequest, run_modbus_sim

CLOSED, OPEN = DoorState.CLOSED, DoorState.OPEN
FLASH_B1_CH0_200MS = bytes.fromhex("01 05 02 00 00 02 4D B3")  # hardware-protocols.md §1.7
ALL_OFF_B1 = bytes.fromhex("01 05 00 FF 00 00 FD FA")
ALL_OFF_B4 = bytes.fromhex("04 05 00 FF 00 00 FD AF")
READ_DOORS_B1 = bytes.fromhex("01 02 00 00 00 08 79 CC")


@pytest.fixture
async def bus():
    """``await bus(transport, **options)`` -> (simulator, bank, wire) with the bank opened.

    ``wire`` is the driver's tap: ("tx", frame) for every frame sent, ("rx", buffer) received.
    """
    started = []

    async def start(transport="pty", *, boards=(1, 4), channels=8, sim_channels=None,
                    polarity=Polarity.CLOSED_IS_1, sim_closed_is_1=None, before_open=None, **profile_kw):
        closed_is_1 = polarity is Polarity.CLOSED_IS_1 if sim_closed_is_1 is None else sim_closed_is_1
        sim = ModbusRelaySimulator(boards, sim_channels or channels, closed_is_1=closed_is_1)
        served = await (sim.serve_pty() if transport == "pty" else sim.serve_tcp())
        wire = []
        fields = dict(protocol="modbus-relay", url=served.url, boards=boards, channels_per_board=channels,
                      baudrate=9600, polarity=polarity, reply_timeout=0.1, query_retries=2,
                      has_item_sensors=False)
        fields.update(profile_kw)
        bank = ModbusRelayBank(BankProfile(**fields),
                               wire_tap=lambda sending, data: wire.append(("tx" if sending else "rx", data)))
        started.append((sim, bank))
        if before_open is not None:
            before_open(sim)
        await bank.open()
        return sim, bank, wire

    yield start
    for sim, bank in reversed(started):
        await bank.close()
        await sim.close()


def sent(wire):
    return [data for direction, data in wire if direction == "tx"]


def received_by_sim(sim, board=None, function_code=None):
    return [r for r in sim.requests
            if (board is None or r.board == board) and (function_code is None or r.function_code == function_code)]


def flashes(sim):
    return [r for r in sim.requests if r.function_code == 5 and 0x0200 <= r.address < 0x0400]


async def eventually(predicate, timeout=2.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_unlock_is_one_board_timed_flash_frame(bus, transport):
    sim, bank, wire = await bus(transport, pulse_ms=200)
    wire.clear()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bank.unlock(1, 0)
    assert sent(wire) == [FLASH_B1_CH0_200MS]
    assert wire[-1] == ("rx", FLASH_B1_CH0_200MS)  # the board echoes the request
    assert flashes(sim) == [SimRequest(1, 5, 0x0200, value=2)]
    assert sim.door(1, 0).pulses == 1 and not sim.door(1, 0).closed
    assert sim.board(1).relays[0] is True  # on now, switched off by the board itself
    await eventually(lambda: sim.board(1).relays[0] is False)
    assert loop.time() - started >= 0.18
    assert sent(wire) == [FLASH_B1_CH0_200MS]  # the driver sent no OFF
    assert (await bank.read_status(1)).doors == (OPEN,) + (CLOSED,) * 7


def test_flash_value_counts_100_ms_steps_rounded_up():
    assert [pulse_units(ms) for ms in (1, 100, 200, 250, 500, 550)] == [1, 1, 2, 3, 5, 6]
    assert pulse_units(10_000_000) == 0xFFFF
    frame = FramerRTU(DecodePDU(False)).buildFrame(flash_on_request(4, 7, 500))
    assert frame == bytes.fromhex("04 05 02 07 00 05 BD E5")


async def test_open_switches_every_relay_off_without_moving_a_lock(bus):
    def relays_left_on(sim):
        sim.board(1).relays[2] = True
        sim.board(4).relays[5] = True

    sim, bank, wire = await bus(before_open=relays_left_on)
    assert sent(wire) == [ALL_OFF_B1, ALL_OFF_B4]
    assert [r for r in wire if r[0] == "rx"] == [("rx", ALL_OFF_B1), ("rx", ALL_OFF_B4)]
    for board in (1, 4):
        assert sim.board(board).relays == [False] * 8
        assert [d.pulses for d in sim.board(board).doors] == [0] * 8
        assert all(d.closed for d in sim.board(board).doors)


async def test_door_sensors_are_one_fc02_read(bus):
    sim, bank, wire = await bus()
    wire.clear()
    status = await bank.read_status(1)
    assert sent(wire) == [READ_DOORS_B1]
    assert status.board == 1 and status.doors == (CLOSED,) * 8 and status.items == (None,) * 8


@pytest.mark.parametrize("polarity", list(Polarity))
async def test_polarity_maps_the_discrete_input_to_the_door(bus, polarity):
    sim, bank, _ = await bus(polarity=polarity)
    sim.open_door(4, 2)
    # what the board's input really reads for the open door
    assert sim.door_inputs(4)[2] is (polarity is Polarity.CLOSED_IS_0)
    status = await bank.read_status(4)
    assert status.doors == (CLOSED, CLOSED, OPEN) + (CLOSED,) * 5


async def test_wrong_polarity_in_the_profile_reads_every_closed_door_open(bus):
    sim, bank, _ = await bus(polarity=Polarity.CLOSED_IS_1, sim_closed_is_1=False)
    assert (await bank.read_status(1)).doors == (OPEN,) * 8


async def test_a_modbus_exception_reply_is_an_error_naming_the_code_and_not_retried(bus):
    sim, bank, _ = await bus(channels=24, sim_channels=8)  # the board has fewer inputs than configured
    with pytest.raises(DeviceIOError) as caught:
        await bank.read_status(1)
    assert not isinstance(caught.value, DeviceTimeout)
    assert "exception 02 (ILLEGAL_ADDRESS)" in str(caught.value)
    assert len(received_by_sim(sim, board=1, function_code=2)) == 1


async def test_an_unlock_the_board_refuses_is_a_refusal_and_is_sent_once(bus):
    sim, bank, wire = await bus(channels=16, sim_channels=8)
    wire.clear()
    assert await bank.unlock(1, 12) is UnlockReply.REFUSED
    assert len(sent(wire)) == 1
    assert flashes(sim) == [SimRequest(1, 5, 0x020C, value=5)]


async def test_a_silent_board_times_out_and_an_unlock_to_it_is_sent_once(bus):
    sim, bank, wire = await bus()
    sim.stop_answering(4)
    with pytest.raises(DeviceTimeout):
        await bank.read_status(4)
    assert len(received_by_sim(sim, board=4, function_code=2)) == 3  # one try and query_retries=2
    wire.clear()
    await bank.unlock(4, 3)  # no echo: outcome unknown, not an error
    assert sent(wire) == [bytes.fromhex("04 05 02 03 00 05 FC 24")]
    assert sim.door(4, 3).pulses == 0 and sim.door(4, 3).closed
    assert (await bank.read_status(1)).doors == (CLOSED,) * 8  # the other board still answers


@pytest.mark.parametrize("fault", ["drop", "corrupt", "garbage", "wrong_address", "delay"])
async def test_an_unlock_is_never_repeated_whatever_happens_to_the_replies(bus, fault):
    sim, bank, wire = await bus()
    {"drop": lambda: sim.drop_replies(3), "corrupt": lambda: sim.corrupt_replies(3),
     "garbage": lambda: sim.garbage_before_reply(n=3), "wrong_address": lambda: sim.answer_from_wrong_address(3),
     "delay": lambda: sim.delay_replies(0.15, n=1)}[fault]()
    wire.clear()
    await bank.unlock(1, 3)
    for _ in range(20):
        try:
            if (await bank.read_status(1)).doors[3] is OPEN:
                break
        except DeviceTimeout:
            continue
    else:
        raise AssertionError("door 1/3 never read open")
    assert [f for f in sent(wire) if f[1] == 5] == [bytes.fromhex("01 05 02 03 00 05 FC 71")]
    assert len(flashes(sim)) == 1
    assert sim.door(1, 3).pulses == 1


@pytest.mark.parametrize("fault", ["drop", "corrupt", "garbage", "wrong_address"])
async def test_a_lost_read_reply_costs_one_retry(bus, fault):
    sim, bank, _ = await bus()
    sim.open_door(1, 5)
    # pymodbus 3.16's RTU framer drops the whole buffer on a bad frame: noise in front of a reply
    # loses that reply as surely as a dropped one.
    {"drop": sim.drop_replies, "corrupt": sim.corrupt_replies, "garbage": sim.garbage_before_reply,
     "wrong_address": sim.answer_from_wrong_address}[fault]()
    status = await bank.read_status(1)
    assert status.board == 1 and status.doors[5] is OPEN
    assert len(received_by_sim(sim, board=1, function_code=2)) == 2


async def test_a_board_silent_at_open_gets_all_relays_off_before_its_next_request(bus):
    def board_4_down(sim):
        sim.stop_answering(4)
        sim.board(4).relays[1] = True

    sim, bank, wire = await bus(before_open=board_4_down)
    assert bank.is_open and bank.describe()["relays_unconfirmed"] == "4"
    sim.resume_answering(4)
    wire.clear()
    await bank.read_status(4)
    assert sent(wire) == [ALL_OFF_B4, bytes.fromhex("04 02 00 00 00 08 79 99")]
    assert sim.board(4).relays == [False] * 8 and sim.door(4, 1).pulses == 0
    assert "relays_unconfirmed" not in bank.describe()


@pytest.mark.parametrize("fields", [dict(channels_per_board=33), dict(channels_per_board=0),
                                    dict(boards=(0,)), dict(boards=(248,)), dict(pulse_ms=0)])
def test_profiles_the_boards_cannot_have_are_refused(fields):
    profile = dict(protocol="modbus-relay", url="/dev/null", boards=(1,), channels_per_board=8, baudrate=9600)
    profile.update(fields)
    with pytest.raises(ValueError):
        ModbusRelayBank(BankProfile(**profile))


@pytest.mark.parametrize("url", ["/nonexistent/ttyUSB9", "socket://127.0.0.1:{free}"])
async def test_a_bus_that_cannot_be_opened_raises_device_open_error(url, unused_tcp_port):
    profile = BankProfile(protocol="modbus-relay", url=url.format(free=unused_tcp_port), boards=(1,),
                          channels_per_board=8, baudrate=9600, reply_timeout=0.2)
    bank = ModbusRelayBank(profile)
    with pytest.raises(DeviceOpenError):
        await bank.open()
    assert not bank.is_open


@pytest.fixture
def unused_tcp_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_simulator_models_the_waveshare_coil_map():
    running = await run_modbus_sim([2], channels=8, polarity="closed_is_0", transport="tcp:127.0.0.1:0")
    host, port = running.url.removeprefix("socket://").split(":")
    client = AsyncModbusTcpClient(host, port=int(port), framer=FramerType.RTU, timeout=0.2, retries=0)
    client.register(RawCoilWrite)
    try:
        assert await client.connect()
        sim = running.sim

        async def write(address, value):
            return await client.execute(False, RawCoilWrite(address, value, dev_id=2))

        echo = await write(0x0001, 0xFF00)  # plain relay ON: a pulse, echoed as sent
        assert (echo.address, echo.value) == (0x0001, 0xFF00) and sim.board(2).relays[1]
        assert sim.door(2, 1).pulses == 1 and not sim.door(2, 1).closed
        assert (await client.read_coils(0, count=8, device_id=2)).bits[:8] == [False, True] + [False] * 6
        assert (await write(0x0001, 0xFF00)).value == 0xFF00 and sim.door(2, 1).pulses == 1  # already on
        assert (await write(0x0001, 0x5500)).exception_code == 3  # toggle: not modelled
        assert (await write(0x0300, 0x0001)).exception_code == 2
        assert (await write(0x0200, 0x0000)).exception_code == 3
        await write(0x00FF, 0x0000)
        assert sim.board(2).relays == [False] * 8
        await write(0x0404, 0x0001)  # flash OFF: off now, on after 100 ms (which is a pulse)
        assert sim.door(2, 4).pulses == 0
        await eventually(lambda: sim.board(2).relays[4])
        assert sim.door(2, 4).pulses == 1
        # closed_is_0: closed doors read 0, the two sprung doors read 1
        bits = (await client.read_discrete_inputs(0, count=8, device_id=2)).bits[:8]
        assert bits == [False, True, False, False, True, False, False, False]
        assert (await client.read_discrete_inputs(0, count=9, device_id=2)).bits[:9] == bits + [False]
        assert (await client.read_discrete_inputs(0, count=17, device_id=2)).exception_code == 2
        await client.write_coils(5, [False, True], device_id=2)  # FC0F: relay 6 on is a pulse too
        assert sim.board(2).relays[5:7] == [False, True] and sim.door(2, 6).pulses == 1
    finally:
        client.close()
        await running.close()


async def test_thirty_two_channels_and_a_pty_runner():
    running = await run_modbus_sim([7], channels=32, polarity=Polarity.CLOSED_IS_1, transport="pty")
    bank = ModbusRelayBank(BankProfile(protocol="modbus-relay", url=running.url, boards=(7,),
                                       channels_per_board=32, baudrate=9600, reply_timeout=0.2))
    try:
        await bank.open()
        running.sim.open_door(7, 30)
        await bank.unlock(7, 17)
        status = await bank.read_status(7)
        assert [c for c, d in enumerate(status.doors) if d is OPEN] == [17, 30]
        assert running.sim.door(7, 17).pulses == 1
    finally:
        await bank.close()
        await running.close()


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_a_lost_link_is_a_device_io_error_and_the_bank_still_closes(bus, transport):
    sim, bank, _ = await bus(transport)
    await sim.close()
    await asyncio.sleep(0.05)  # the client sees the link end
    with pytest.raises(DeviceIOError, match="link down"):
        await bank.read_status(1)
    with pytest.raises(DeviceIOError, match="link down"):
        await bank.unlock(1, 0)  # could not be put on the wire: the caller must know
