import asyncio

import pytest

from hal.errors import DeviceIOError, DeviceOpenError, DeviceUnavailable
from hal.scanner import BACKENDS, CodeScanner, ScannedCode, SerialLineScanner, code_scanner
from simulators.line_scanner import run_line_scanner_sim

TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@pytest.fixture(params=["pty", "tcp"])
async def sim(request):
    running = await run_line_scanner_sim(request.param)
    yield running
    await running.close()


def scanner_for(sim, **options):
    return code_scanner("serial-line", url=sim.url, clock=lambda: 1700000000.0, **options)


@pytest.mark.parametrize("suffix", ["\r", "\n", "\r\n"])
async def test_a_code_ends_at_cr_lf_or_crlf(sim, suffix):
    async with scanner_for(sim) as scanner:
        sim.scan(TOKEN, suffix=suffix)
        sim.scan("第二个", suffix=suffix)
        assert await scanner.read(timeout=1) == ScannedCode(TOKEN, None, 1700000000.0)
        assert (await scanner.read(timeout=1)).text == "第二个"
        assert await scanner.read(timeout=0.05) is None  # the LF after a CR is not a code


async def test_no_suffix_ends_a_code_after_the_inter_character_timeout(sim):
    async with scanner_for(sim, suffix="none", inter_char_timeout=0.05) as scanner:
        sim.scan(TOKEN[:10], suffix="")
        await asyncio.sleep(0.01)
        sim.scan(TOKEN[10:], suffix="")
        code = await scanner.read(timeout=1)
        assert code.text == TOKEN
        sim.scan("SECOND", suffix="")
        assert (await scanner.read(timeout=1)).text == "SECOND"


async def test_with_a_suffix_a_fragment_left_alone_is_dropped(sim):
    async with scanner_for(sim, fragment_timeout=0.05) as scanner:
        sim.sim.send_raw(b"PK1-HALF")
        assert await scanner.read(timeout=0.2) is None
        sim.scan(TOKEN)
        assert (await scanner.read(timeout=1)).text == TOKEN


async def test_aim_identifiers_are_stripped_and_reported():
    running = await run_line_scanner_sim("pty", aim_ids=True, suffix="crlf")
    try:
        async with code_scanner("serial-line", url=running.url, aim_ids=True) as scanner:
            running.scan(TOKEN)
            running.scan("SF1234567890", symbology="]C0")
            first, second = await scanner.read(timeout=1), await scanner.read(timeout=1)
        assert (first.text, first.symbology) == (TOKEN, "]Q1")
        assert (second.text, second.symbology) == ("SF1234567890", "]C0")
    finally:
        await running.close()


async def test_garbage_and_undecodable_bytes_give_a_clear_error_value(sim):
    async with scanner_for(sim) as scanner:
        sim.sim.send_raw(b"\r\n\r\xff\xfePK1\r")
        sim.scan(TOKEN)
        bad = await scanner.read(timeout=1)
        assert bad.error == "undecodable" and bad.text == "\\xff\\xfePK1"
        assert bad.raw_length == 5  # the bytes the scanner sent, not the escaped text
        good = await scanner.read(timeout=1)
        assert good == ScannedCode(TOKEN, None, 1700000000.0) and good.raw_length == len(TOKEN.encode())


async def test_async_iteration_yields_codes_until_closed(sim):
    scanner = scanner_for(sim)
    await scanner.open()
    seen = []

    async def consume():
        async for code in scanner:
            seen.append(code.text)

    task = asyncio.create_task(consume())
    sim.scan("ONE")
    sim.scan("TWO")
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    await scanner.close()
    await asyncio.wait_for(task, 1)
    assert seen == ["ONE", "TWO"]


async def test_unplugged_scanner_raises_device_io_error(sim):
    async with scanner_for(sim) as scanner:
        sim.scan("ONE")
        assert (await scanner.read(timeout=1)).text == "ONE"
        sim.sim.unplug()
        with pytest.raises(DeviceIOError):
            await scanner.read(timeout=1)


async def test_open_missing_port_raises_device_open_error(tmp_path):
    with pytest.raises(DeviceOpenError):
        await code_scanner("serial-line", url=str(tmp_path / "ttyNOPE")).open()


def test_backends_table_and_errors():
    assert BACKENDS["serial-line"] == "hal.scanner:SerialLineScanner"
    with pytest.raises(DeviceUnavailable):
        code_scanner("zebra-ssi-typo")
    with pytest.raises(ValueError):
        SerialLineScanner("/dev/null", suffix="tab")
    assert "PK1" not in repr(ScannedCode(TOKEN, "]Q1", 0.0))


async def test_read_on_a_closed_scanner_is_a_programming_error():
    class Nothing(CodeScanner):
        async def _open(self): ...
        async def _close(self): ...
        async def _read(self, timeout): return None

    with pytest.raises(RuntimeError):
        await Nothing().read()
    async with Nothing() as scanner:
        assert await scanner.read(timeout=0) is None


async def test_host_commands_reach_the_simulator(sim):
    from firmware_bridge.link import SerialLink

    async with SerialLink(sim.url, 9600) as link:
        await link.write(b"\x16T\r")  # Honeywell trigger
        for _ in range(100):
            if sim.sim.received:
                break
            await asyncio.sleep(0.01)
    assert bytes(sim.sim.received) == b"\x16\x54\x0d"
