import asyncio

import pytest

from firmware_bridge import scanner_gm65 as gm65
from firmware_bridge import scanner_honeywell as honeywell
from firmware_bridge import scanner_ssi as ssi
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout, DeviceUnavailable
from hal.scanner import BACKENDS, code_scanner
from hal.scanner_triggered import Gm65Scanner, HoneywellScanner, SsiScanner
from simulators.line_scanner import run_line_scanner_sim
from simulators.trigger_scanners import run_trigger_scanner_sim

TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CLOCK = 1700000000.0


async def until(predicate, timeout=1.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.fixture
async def started():
    running = []

    async def start(protocol, transport="pty", **options):
        sim = await run_trigger_scanner_sim(protocol, transport, **options)
        running.append(sim)
        return sim

    yield start
    for sim in running:
        await sim.close()


def test_the_backends_are_registered():
    assert BACKENDS["honeywell"] == "hal.scanner_triggered:HoneywellScanner"
    assert BACKENDS["zebra-ssi"] == "hal.scanner_triggered:SsiScanner"
    assert BACKENDS["gm65"] == "hal.scanner_triggered:Gm65Scanner"
    assert isinstance(code_scanner("gm65", url="socket://127.0.0.1:1"), Gm65Scanner)


async def test_a_line_scanner_has_no_host_trigger():
    sim = await run_line_scanner_sim("pty")
    try:
        async with code_scanner("serial-line", url=sim.url) as scanner:
            with pytest.raises(DeviceUnavailable):
                await scanner.trigger()
    finally:
        await sim.close()


async def test_trigger_needs_an_open_scanner():
    with pytest.raises(RuntimeError):
        await HoneywellScanner("socket://127.0.0.1:1").trigger()


# -- Honeywell ---------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_honeywell_reads_a_code_only_after_the_trigger(started, transport):
    sim = await started("honeywell", transport)
    async with code_scanner("honeywell", url=sim.url, clock=lambda: CLOCK) as scanner:
        sim.scan(TOKEN)
        assert await scanner.read(timeout=0.1) is None  # held under the window, no trigger yet
        await scanner.trigger()
        code = await scanner.read(timeout=1)
        assert (code.text, code.symbology, code.at) == (TOKEN, None, CLOCK)
    assert sim.sim.received == honeywell.TRIGGER_ON


async def test_honeywell_trigger_off_stops_the_scan(started):
    sim = await started("honeywell")
    async with code_scanner("honeywell", url=sim.url) as scanner:
        await scanner.trigger()
        await until(lambda: sim.sim.state.triggered)
        await scanner.trigger(False)
        await until(lambda: not sim.sim.state.triggered)
        sim.scan(TOKEN)
        assert await scanner.read(timeout=0.1) is None
    assert bytes(sim.sim.received) == bytes.fromhex("16 54 0D 16 55 0D")


async def test_honeywell_read_timeout_is_set_at_open_and_ends_a_scan(started):
    sim = await started("honeywell")
    async with code_scanner("honeywell", url=sim.url, read_timeout=0.1) as scanner:
        assert sim.sim.received == b"\x16M\rTRGSTO100!"
        assert sim.sim.state.read_timeout == 0.1
        await scanner.trigger()
        await until(lambda: sim.sim.state.timeouts == 1)
        sim.scan(TOKEN)
        assert await scanner.read(timeout=0.1) is None
        await scanner.trigger()
        assert (await scanner.read(timeout=1)).text == TOKEN


@pytest.mark.parametrize("status_at_end", [False, True])
@pytest.mark.parametrize("echo_prefix", [False, True])
async def test_honeywell_menu_replies_in_either_layout(started, status_at_end, echo_prefix):
    sim = await started("honeywell", status_at_end=status_at_end, echo_prefix=echo_prefix)
    async with code_scanner("honeywell", url=sim.url) as scanner:
        reply = await scanner.menu("TRGSTO", "?")
        assert (reply.setting, reply.data, reply.ok) == ("TRGSTO", "30000", True)
        refused = await scanner.menu("TRGXXX", 1)
        assert refused.status is honeywell.MenuStatus.ENQ and not refused.ok
        await scanner.trigger()
        sim.scan(TOKEN)
        assert (await scanner.read(timeout=1)).text == TOKEN


async def test_honeywell_a_code_line_around_a_menu_reply_is_still_read(started):
    sim = await started("honeywell")
    async with code_scanner("honeywell", url=sim.url) as scanner:
        sim.sim.send_raw(b"FIRST\r")
        reply = await scanner.menu("TRGSTO", "?")
        assert reply.data == "30000"
        sim.sim.send_raw(b"SECOND\r")
        assert [(await scanner.read(timeout=1)).text for _ in range(2)] == ["FIRST", "SECOND"]


async def test_honeywell_aim_ids(started):
    sim = await started("honeywell", aim_ids=True, suffix="crlf")
    async with code_scanner("honeywell", url=sim.url, aim_ids=True) as scanner:
        await scanner.trigger()
        sim.scan("SF1234567890", symbology="]C0")
        code = await scanner.read(timeout=1)
        assert (code.text, code.symbology) == ("SF1234567890", "]C0")


async def test_honeywell_open_fails_when_the_menu_command_gets_no_reply():
    sim = await run_line_scanner_sim("pty")  # a scanner that never answers menu commands
    try:
        scanner = code_scanner("honeywell", url=sim.url, read_timeout=5, command_timeout=0.1)
        with pytest.raises(DeviceOpenError, match="no answer to menu TRGSTO"):
            await scanner.open()
        assert not scanner.is_open
    finally:
        await sim.close()


def test_honeywell_refuses_an_impossible_read_timeout_when_built():
    with pytest.raises(ValueError):
        HoneywellScanner("socket://127.0.0.1:1", read_timeout=301)


async def test_a_waiting_read_and_a_trigger_in_another_task_work_together(started):
    sim = await started("honeywell")
    async with code_scanner("honeywell", url=sim.url) as scanner:
        reader = asyncio.create_task(scanner.read(timeout=2))
        await asyncio.sleep(0.02)
        sim.scan(TOKEN)
        await scanner.trigger()
        assert (await reader).text == TOKEN


async def test_unplugging_fails_reads_and_commands(started):
    sim = await started("honeywell")
    scanner = code_scanner("honeywell", url=sim.url, command_timeout=0.2)
    await scanner.open()
    try:
        sim.sim.unplug()
        with pytest.raises(DeviceIOError):
            await scanner.read(timeout=1)
        with pytest.raises(DeviceIOError):
            await scanner.menu("TRGSTO", "?")
    finally:
        await scanner.close()
    with pytest.raises(DeviceOpenError):  # the port is gone until the scanner is plugged in again
        await scanner.open()


async def test_close_ends_a_waiting_read(started):
    sim = await started("gm65")
    scanner = code_scanner("gm65", url=sim.url)
    await scanner.open()
    reader = asyncio.create_task(scanner.read(timeout=None))
    await asyncio.sleep(0.02)
    await scanner.close()
    assert await asyncio.wait_for(reader, 1) is None


# -- Zebra SSI ---------------------------------------------------------------------------------

async def test_ssi_switches_to_packeted_mode_and_acks_each_decode(started):
    sim = await started("zebra-ssi")
    assert not sim.sim.packeted
    async with code_scanner("zebra-ssi", url=sim.url) as scanner:
        assert sim.sim.packeted
        assert bytes(sim.sim.received) == ssi.param_send({0xEE: 1})
        sim.scan("取件码 8848")
        assert await scanner.read(timeout=0.1) is None
        await scanner.trigger()
        code = await scanner.read(timeout=1)
        assert (code.text, code.symbology) == ("取件码 8848", "]Q1")
        await until(lambda: not sim.sim.awaiting_ack)
        assert sim.sim.received.endswith(ssi.START_DECODE + ssi.CMD_ACK)
        await scanner.trigger(False)
        assert sim.sim.received.endswith(ssi.STOP_DECODE)
        assert sim.sim.resends == 0


async def test_ssi_reports_the_symbology_from_the_barcode_type(started):
    sim = await started("zebra-ssi")
    async with code_scanner("zebra-ssi", url=sim.url) as scanner:
        await scanner.trigger()
        sim.scan("6901234567892", symbology="]E0")
        code = await scanner.read(timeout=1)
        assert (code.text, code.symbology) == ("6901234567892", "]E0")


async def test_ssi_a_resend_after_a_lost_ack_is_taken_once(started):
    sim = await started("zebra-ssi", ack_timeout=0.05)
    async with code_scanner("zebra-ssi", url=sim.url) as scanner:
        sim.sim.lose_acks(1)
        await scanner.trigger()
        sim.scan(TOKEN)
        assert (await scanner.read(timeout=1)).text == TOKEN
        await until(lambda: sim.sim.resends >= 1 and not sim.sim.awaiting_ack)
        assert await scanner.read(timeout=0.15) is None


async def test_ssi_a_corrupt_packet_is_not_acked_and_the_resend_is_read(started):
    sim = await started("zebra-ssi", ack_timeout=0.05)
    async with code_scanner("zebra-ssi", url=sim.url) as scanner:
        sim.sim.corrupt_packets(1)
        await scanner.trigger()
        sim.scan(TOKEN)
        assert (await scanner.read(timeout=1)).text == TOKEN
        assert sim.sim.resends >= 1
        assert await scanner.read(timeout=0.15) is None
        assert scanner.skipped_bytes > 0


async def test_ssi_a_long_code_in_several_packets(started):
    sim = await started("zebra-ssi")
    text = "".join(chr(0x4E00 + i) for i in range(300))  # 900 bytes of UTF-8: four packets
    async with code_scanner("zebra-ssi", url=sim.url) as scanner:
        await scanner.trigger()
        sim.scan(text)
        assert (await scanner.read(timeout=1)).text == text


async def test_ssi_a_sleeping_engine_needs_the_wake_byte(started):
    sim = await started("zebra-ssi", sleeps=True, packeted=True)
    async with code_scanner("zebra-ssi", url=sim.url, set_packeted=False, command_timeout=0.1) as scanner:
        with pytest.raises(DeviceTimeout):
            await scanner.trigger()
    assert sim.sim.ignored_while_asleep == 1
    async with code_scanner("zebra-ssi", url=sim.url, wake=True) as scanner:
        assert sim.sim.asleep  # it went back to sleep after the set-up
        await scanner.trigger()
        sim.scan(TOKEN)
        assert (await scanner.read(timeout=1)).text == TOKEN
        assert (await scanner.request_revision()) == sim.sim.REVISION
    assert sim.sim.received.count(ssi.WAKE + ssi.START_DECODE) == 1


async def test_ssi_a_refused_trigger_is_an_error_not_a_timeout(started):
    sim = await started("zebra-ssi")
    sim.sim.scanning_enabled = False
    async with code_scanner("zebra-ssi", url=sim.url) as scanner:
        with pytest.raises(DeviceIOError, match="refused START_DECODE") as caught:
            await scanner.trigger()
        assert not isinstance(caught.value, DeviceTimeout)


async def test_ssi_bytes_that_are_not_packets_are_skipped(started):
    sim = await started("zebra-ssi")
    async with code_scanner("zebra-ssi", url=sim.url, fragment_timeout=0.05) as scanner:
        sim.sim.send_raw(b"RAW LINE\r\xff")
        await scanner.trigger()
        sim.scan(TOKEN)
        assert (await scanner.read(timeout=1)).text == TOKEN
        assert scanner.skipped_bytes >= 9


async def test_ssi_aim_prefixed_data(started):
    sim = await started("zebra-ssi", aim_ids=True)
    async with code_scanner("zebra-ssi", url=sim.url, aim_ids=True) as scanner:
        await scanner.trigger()
        sim.scan("SF1234567890", symbology="]C1")
        code = await scanner.read(timeout=1)
        assert (code.text, code.symbology) == ("SF1234567890", "]C1")


# -- GM65 ----------------------------------------------------------------------------------------

async def test_gm65_trigger_is_checked_against_its_reply(started):
    sim = await started("gm65")
    async with code_scanner("gm65", url=sim.url, aim_ids=True, set_aim=True) as scanner:
        assert sim.sim.received == gm65.AIM_ON and sim.sim.state.aim_ids
        sim.scan(TOKEN)
        assert await scanner.read(timeout=0.1) is None
        await scanner.trigger()
        code = await scanner.read(timeout=1)
        assert (code.text, code.symbology) == (TOKEN, "]Q1")
        await scanner.trigger(False)  # no stop command on a GM65: nothing is sent
    assert bytes(sim.sim.received) == gm65.AIM_ON + gm65.TRIGGER


async def test_gm65_aim_off_and_zone_reads(started):
    sim = await started("gm65", aim_ids=True)
    async with code_scanner("gm65", url=sim.url, set_aim=True) as scanner:
        assert not sim.sim.state.aim_ids
        assert (await scanner.command(gm65.read(gm65.ZONE_AIM))).data == b"\x00"
        await scanner.trigger()
        sim.scan(TOKEN)
        code = await scanner.read(timeout=1)
        assert (code.text, code.symbology) == (TOKEN, None)


async def test_gm65_single_read_time_ends_a_scan(started):
    sim = await started("gm65", read_timeout=0.05)
    async with code_scanner("gm65", url=sim.url) as scanner:
        await scanner.trigger()
        await until(lambda: sim.sim.state.timeouts == 1)
        sim.scan(TOKEN)
        assert await scanner.read(timeout=0.1) is None


async def test_gm65_without_a_reply_the_trigger_times_out():
    sim = await run_line_scanner_sim("pty")
    try:
        async with code_scanner("gm65", url=sim.url, command_timeout=0.1) as scanner:
            with pytest.raises(DeviceTimeout):
                await scanner.trigger()
            sim.scan(TOKEN)  # codes still come through
            assert (await scanner.read(timeout=1)).text == TOKEN
    finally:
        await sim.close()


async def test_gm65_codes_around_a_reply(started):
    sim = await started("gm65")
    async with code_scanner("gm65", url=sim.url) as scanner:
        sim.sim.send_raw(b"\x02BEFORE\r")
        await scanner.trigger()
        sim.scan(TOKEN)
        assert [(await scanner.read(timeout=1)).text for _ in range(2)] == ["\x02BEFORE", TOKEN]


def test_describe():
    assert SsiScanner("socket://127.0.0.1:1", wake=True).describe()["wake"] == "True"
    assert HoneywellScanner("socket://127.0.0.1:1", read_timeout=2).describe()["read_timeout"] == "2 s"
    assert Gm65Scanner("socket://127.0.0.1:1").describe()["backend"] == "gm65"
