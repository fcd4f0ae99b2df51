"""``postkiosk diag bus-monitor`` on a pty: the test plays the wire, the command listens at the other end.

The command runs as its own process (it owns its event loop and the port); it says "listening" on
stderr once the port is open, and only then does the test write, so no byte is lost to the port's
open-time flush.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

from firmware_bridge import kerong_cu16 as cu16

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-c", "import typer; from postkiosk.diag_busmon import bus_monitor; typer.run(bus_monitor)"]

STATUS_0 = cu16.encode(cu16.status_request(0))
REPLY_0 = cu16.encode(cu16.StatusReply(0, 0xFFFB, 0x0004))  # door 2 open, an item in it
STATUS_1 = cu16.encode(cu16.status_request(1))
BAD_REPLY_1 = cu16.encode(cu16.StatusReply(1, 0xFFFF, 0))[:-1] + b"\x00"
UNLOCK_1_2 = cu16.encode(cu16.unlock_request(1, 2))
STATUS_3 = cu16.encode(cu16.status_request(3))
GARBAGE = bytes.fromhex("FF 00 02 00 35 13")

# what a station polling three boards could put on the wire, one write per frame, 50 ms apart
WIRE = [STATUS_0, REPLY_0, GARBAGE, STATUS_1, BAD_REPLY_1, UNLOCK_1_2, STATUS_3, STATUS_0, REPLY_0]


@pytest.fixture
def wire():
    master, slave = os.openpty()
    try:
        tty.setraw(master)
        tty.setraw(slave)
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def start(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 30
    seen = ""
    while "listening" not in seen:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        if not ready or proc.poll() is not None:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"bus-monitor did not start: {seen}{err}{out}")
        seen += proc.stderr.readline()
    return proc


def play(master: int, pieces: list[bytes], pause: float = 0.05) -> None:
    for piece in pieces:
        time.sleep(pause)
        os.write(master, piece)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"bus-monitor did not stop: {out}{err}") from None
    return proc.returncode, out, err


def test_json_lines_decode_a_polling_conversation(wire):
    master, path = wire
    proc = start("--protocol", "kerong-cu16", "--url", path, "--count", str(len(WIRE)), "--duration", "20",
                 "--json", "--polarity", "closed_is_1")
    play(master, WIRE)
    code, out, err = finish(proc)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert [(r["direction"], r["board"], r["command"], r["checksum_ok"]) for r in records] == [
        ("request", 0, "status", True), ("reply", 0, "status_reply", True),
        ("unknown", None, "garbage", False),
        ("request", 1, "status", True), ("reply", 1, "status_reply", False),
        ("request", 1, "unlock", True),
        ("request", 3, "status", True),
        ("request", 0, "status", True), ("reply", 0, "status_reply", True),
    ]
    assert [bytes.fromhex(r["raw"]) for r in records] == WIRE
    reply = records[1]
    assert reply["payload"]["doors"][:4] == ["closed", "closed", "open", "closed"]
    assert reply["payload"]["item_bits"][:4] == [0, 0, 1, 0]
    assert reply["latency_ms"] > 0 and records[5]["channels"] == [2]
    times = [r["t_ms"] for r in records]
    assert times == sorted(times) and times[-1] - times[0] >= 8 * 40  # 50 ms between writes
    assert summary["frames"] == 8 and summary["frames_by_board"] == {"0": 4, "1": 3, "3": 1}
    assert (summary["checksum_errors"], summary["garbage_bytes"], summary["garbage_records"]) == (1, 6, 1)
    assert summary["replies_missing"] == 1 and summary["replies_missing_by_board"] == {"3": 1}


def test_people_get_one_line_per_frame_and_a_summary(wire):
    master, path = wire
    proc = start("--protocol", "kerong-cu16", "--url", path, "--duration", "1.5")
    play(master, [STATUS_1, BAD_REPLY_1, STATUS_3, STATUS_0, REPLY_0])
    code, out, err = finish(proc)
    assert code == 0, err
    lines = out.splitlines()
    assert "-> request  board 1" in lines[0] and "status" in lines[0] and "02 10 30 03 45" in lines[0]
    assert "<- reply" in lines[1] and "BAD CHECKSUM" in lines[1]
    assert "<- reply    board 0" in lines[4] and "lock_bits=1101111111111111" in lines[4]
    text = " ".join(lines)
    assert "5 frame(s)" in text and "checksum errors: 1" in text and "replies missing: 1 (3: 1)" in text


def test_modbus_frames_on_the_wire(wire):
    master, path = wire
    pieces = [bytes.fromhex(h) for h in ("01 02 00 00 00 08 79 CC", "01 02 01 F7 E0 0E",
                                         "01 05 02 00 00 02 4D B3", "01 05 02 00 00 02 4D B3")]
    proc = start("--protocol", "modbus-relay", "--url", path, "--count", "4", "--duration", "20", "--json")
    play(master, pieces)
    code, out, err = finish(proc)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()[:-1]]
    assert [(r["direction"], r["command"]) for r in records] == [
        ("request", "read_discrete_inputs"), ("reply", "read_discrete_inputs"),
        ("request", "flash_on"), ("reply", "flash_on")]
    assert records[1]["payload"]["input_bits"] == [1, 1, 1, 0, 1, 1, 1, 1]
    assert records[2]["payload"] == {"pulse_ms": 200}


def test_a_port_that_cannot_be_opened_is_a_clear_error():
    result = subprocess.run([*COMMAND, "--protocol", "cu48", "--url", "/dev/no-such-port", "--json"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert "cannot open" in json.loads(result.stdout.splitlines()[0])["error"]
