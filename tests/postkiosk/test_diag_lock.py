"""``postkiosk diag lock`` against the wire-level simulators of every lock protocol, over a pty.

The simulator runs in the test's event loop; the command runs in a worker thread through
CliRunner (it calls ``asyncio.run`` itself), mounted the way ``postkiosk diag`` mounts it.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import typer
from typer.testing import CliRunner

from postkiosk import diag_lock
from simulators.registry import run_simulator

ROOT = typer.Typer()
DIAG = typer.Typer()
ROOT.add_typer(DIAG, name="diag")
DIAG.add_typer(diag_lock.app, name="lock")

# protocol -> (board addresses, doors per board, reply to an unlock, item sensors)
BUSES = {
    "kerong-cu16": ((0, 3), 16, "unanswered", True),
    "kerong-cu12": ((0, 3), 12, "acknowledged", False),
    "cu48": ((0, 3), 48, "acknowledged", False),
    "generic-8a": ((1, 4), 24, "acknowledged", False),
    "modbus-relay": ((1, 4), 8, "acknowledged", False),
}


async def cli(*args: str):
    result = await asyncio.to_thread(CliRunner().invoke, ROOT, ["diag", "lock", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def bus(protocol: str, url: str, *more: str) -> list[str]:
    return ["--protocol", protocol, "--url", url, *more]


@pytest.fixture
async def sim(request):
    protocol = request.param
    boards, doors, _, _ = BUSES[protocol]
    running = await run_simulator(protocol, boards, doors, "closed_is_1", "pty")
    try:
        yield protocol, running
    finally:
        await running.close()


@pytest.mark.parametrize("sim", sorted(BUSES), indirect=True)
async def test_status_json_shows_the_simulated_doors(sim):
    protocol, running = sim
    boards, doors, _, items = BUSES[protocol]
    board = boards[1]
    running.sim.open_door(board, 2)
    if items:
        running.sim.put_item(board, 2)
    result = await cli(*bus(protocol, running.url), "status", "--board", str(board), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["board"] == board and data["open"] == [2] and data["unknown"] == []
    assert [d["door"] for d in data["doors"]] == list(range(doors))
    expected = ["open" if ch == 2 else "closed" for ch in range(doors)]
    assert [d["state"] for d in data["doors"]] == expected
    assert [d["raw_bit"] for d in data["doors"]] == [int(s == "closed") for s in expected]  # closed_is_1
    if items:
        assert [d["item"] for d in data["doors"]] == [ch == 2 for ch in range(doors)]
    else:
        assert {d["item"] for d in data["doors"]} == {None}


@pytest.mark.parametrize("sim", sorted(BUSES), indirect=True)
async def test_unlock_pulses_the_lock_once_and_reads_the_door_back(sim):
    protocol, running = sim
    boards, _, reply, _ = BUSES[protocol]
    board = boards[0]
    door = running.sim.door(board, 5)
    assert door.closed and door.pulses == 0
    result = await cli(*bus(protocol, running.url), "unlock", "--board", str(board), "--door", "5",
                       "--wait", "0.05", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["board"], data["door"], data["reply"], data["door_state"]) == (board, 5, reply, "open")
    assert data["readback_error"] is None
    assert door.pulses == 1 and not door.closed
    assert sum(d.pulses for d in running.sim.board(board).doors) == 1  # no other lock moved


@pytest.mark.parametrize("sim", ["kerong-cu16", "generic-8a", "modbus-relay"], indirect=True)
async def test_scan_bus_finds_exactly_the_simulated_boards(sim):
    protocol, running = sim
    boards, doors, _, _ = BUSES[protocol]
    span = {"kerong-cu16": ["--from", "0", "--to", "15"], "generic-8a": [],
            "modbus-relay": ["--from", "1", "--to", "8"]}[protocol]
    result = await cli(*bus(protocol, running.url), "scan-bus", *span, "--timeout", "0.05", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [entry["address"] for entry in data["found"]] == list(boards)
    if protocol != "modbus-relay":
        assert {entry["doors"] for entry in data["found"]} == {doors}
    if protocol == "generic-8a":  # default --from 0 --to 31; 8A addresses start at 1
        assert (data["from"], data["to"], data["asked"], data["skipped_out_of_range"]) == (1, 31, 31, 1)
    assert data["bus"]["timeouts"] == data["asked"] - len(boards)


@pytest.mark.parametrize("sim", ["kerong-cu12"], indirect=True)
async def test_scan_bus_reports_the_cu12_firmware_version(sim):
    protocol, running = sim
    result = await cli(*bus(protocol, running.url), "scan-bus", "--from", "0", "--to", "4", "--timeout", "0.05",
                       "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["found"]
    assert [(e["address"], e["doors"], e["firmware"]) for e in found] == [
        (0, 12, "software 1.0, hardware 1.2"), (3, 12, "software 1.0, hardware 1.2")]


@pytest.mark.parametrize("sim", ["kerong-cu16"], indirect=True)
async def test_people_get_tables(sim):
    protocol, running = sim
    running.sim.open_door(0, 7)
    status = await cli(*bus(protocol, running.url), "status", "--board", "0")
    assert status.exit_code == 0, status.output
    assert "open: 7" in status.stdout and "closed" in status.stdout
    scan = await cli(*bus(protocol, running.url), "scan-bus", "--from", "0", "--to", "4", "--timeout", "0.05")
    assert scan.exit_code == 0, scan.output
    assert "2 of 5 address(es) answered" in scan.stdout
    unlock = await cli(*bus(protocol, running.url), "unlock", "--board", "3", "--door", "0", "--wait", "0")
    assert unlock.exit_code == 0, unlock.output
    assert "unanswered" in unlock.stdout and "door 0 0 s after the pulse: open" in unlock.stdout


@pytest.mark.parametrize("sim", ["kerong-cu16"], indirect=True)
async def test_polarity_option_maps_the_raw_bits(sim):
    protocol, running = sim
    running.sim.set_polarity(False)  # this bus's boards send 0 for a closed door
    running.sim.open_door(0, 1)
    result = await cli(*bus(protocol, running.url, "--polarity", "closed_is_0"), "status", "--board", "0",
                       "--json")
    data = json.loads(result.stdout)
    assert data["open"] == [1]
    assert [d["raw_bit"] for d in data["doors"][:3]] == [0, 1, 0]


@pytest.mark.parametrize("sim", ["kerong-cu16"], indirect=True)
async def test_a_board_that_does_not_answer_is_a_clear_error(sim):
    protocol, running = sim
    result = await cli(*bus(protocol, running.url, "--reply-timeout", "0.05", "--retries", "0"),
                       "status", "--board", "5", "--json")
    assert result.exit_code == 2
    assert "did not answer" in json.loads(result.stdout)["error"]
    assert "did not answer" in result.stderr


async def test_bad_invocations_are_refused_before_touching_a_port():
    missing = await cli("status", "--board", "0")
    assert missing.exit_code == 2 and "--protocol and --url" in missing.stderr
    out_of_range = await cli(*bus("kerong-cu16", "/dev/null"), "status", "--board", "16")
    assert out_of_range.exit_code == 2 and "0..15" in out_of_range.stderr
    no_port = await cli(*bus("kerong-cu16", "/dev/no-such-port"), "status", "--board", "0", "--json")
    assert no_port.exit_code == 2 and "cannot open" in json.loads(no_port.stdout)["error"]
    bad_door = await cli(*bus("generic-8a", "/dev/null", "--doors", "8"), "unlock", "--board", "1", "--door", "8")
    assert bad_door.exit_code == 2 and "0..7" in bad_door.stderr
    assert (await cli("status", "--help")).exit_code == 0  # help needs no bus
