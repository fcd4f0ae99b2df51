from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hal.lockbank import BankProfile, DoorState, lock_bank

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from postkiosk.cli import main; main()"]


def cli(*args: str, env: dict[str, str] | None = None, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, **(env or {})}, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}: {result.stdout}{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_config_check_and_sample():
    assert "32 compartments" in cli("config", "check").stdout
    assert "[[banks]]" in cli("config", "sample").stdout
    example = cli("config", "check", "--config", "postkiosk/station.example.toml").stdout
    assert "32 compartments" in example


def test_a_bad_config_file_is_refused_with_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[banks]]\nname = "A"\nprotocol = "kerong-cu16"\nsizes = ["S M"]\n')
    result = cli("config", "check", "--config", str(bad), check=False)
    assert result.returncode != 0
    assert "give a url, or simulate = true" in result.stderr + result.stdout


def test_courier_created_by_admin_and_journal_verified(tmp_path):
    env = {"POSTKIOSK_DATABASE__PATH": str(tmp_path / "pk.sqlite3")}
    out = cli("admin", "add-user", "--role", "courier", "--login", "20001234", "--name", "张三", "--carrier", "SF",
              env=env).stdout
    assert "20001234" in out and "PIN" in out
    assert "chain intact" in cli("journal", "verify", env=env).stdout
    conn = sqlite3.connect(tmp_path / "pk.sqlite3")
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET actor = 'someone else'")
    conn.commit()
    conn.close()
    broken = cli("journal", "verify", env=env, check=False)
    assert broken.returncode == 1 and "BROKEN at row 1" in broken.stdout


@pytest.mark.timeout(60)
async def test_simulator_runs_as_its_own_process_and_the_driver_talks_to_it():
    port = free_port()
    proc = subprocess.Popen([*CLI, "sim", "lockboard", "--boards", "0,1", "--transport", f"tcp:127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.1)
        bank = lock_bank(BankProfile(protocol="kerong-cu16", url=f"socket://127.0.0.1:{port}", boards=(0, 1),
                                     channels_per_board=16))
        async with bank:
            before = await bank.read_status(1)
            assert before.doors == (DoorState.CLOSED,) * 16
            await bank.unlock(1, 3)
            for _ in range(50):
                after = await bank.read_status(1)
                if after.doors[3] is DoorState.OPEN:
                    break
            assert after.doors[3] is DoorState.OPEN
            assert [d for i, d in enumerate(after.doors) if i != 3] == [DoorState.CLOSED] * 15
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_technicians_and_staff_are_named_people_with_strong_passwords(tmp_path):
    env = {"POSTKIOSK_DATABASE__PATH": str(tmp_path / "pk.sqlite3")}
    out = cli("admin", "add-user", "--role", "technician", "--login", "li.wei", "--name", "李伟", env=env).stdout
    assert "li.wei" in out and "password" in out
    weak = cli("admin", "add-user", "--role", "staff", "--login", "wang", "--name", "王", "--password-stdin",
               env=env, input="short\n", check=False)
    assert weak.returncode != 0 and "at least 10 characters" in weak.stderr + weak.stdout
    taken = cli("admin", "add-user", "--role", "staff", "--login", "li.wei", "--name", "x", env=env, check=False)
    assert taken.returncode != 0 and "taken" in taken.stderr + taken.stdout
    no_carrier = cli("admin", "add-user", "--role", "courier", "--login", "2000", "--name", "x", env=env, check=False)
    assert no_carrier.returncode != 0 and "carrier" in no_carrier.stderr + no_carrier.stdout
    listed = json.loads(cli("admin", "list-users", "--json", env=env).stdout)
    assert listed == [{"login": "li.wei", "name": "李伟", "role": "technician", "carrier": "",
                       "created_at": listed[0]["created_at"], "locked": False}]
    conn = sqlite3.connect(tmp_path / "pk.sqlite3")
    stored = conn.execute("SELECT secret_hash FROM accounts").fetchone()[0]
    conn.close()
    assert stored.startswith("$argon2id$")
