import asyncio
import json
import sqlite3
import threading

import pytest
from typer.testing import CliRunner

from lockers import journal
from postkiosk.diag_idcard import app, os_user
from simulators.idcard import run_idcard_sim


class SimThread:
    """The wire simulator on its own event loop, so the CLI can run its own ``asyncio.run``."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="idcard-sim", daemon=True)
        self.thread.start()
        self.running = self.call(run_idcard_sim("pty", seed=21))
        self.url = self.running.url

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def do(self, fn, *args, **kwargs):
        async def run():
            return fn(*args, **kwargs)

        return self.call(run())

    def stop(self):
        self.call(self.running.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def sim():
    running = SimThread()
    yield running
    running.stop()


@pytest.fixture
def db_env(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTKIOSK_CONFIG", raising=False)
    path = tmp_path / "data" / "pk.sqlite3"
    return {"POSTKIOSK_DATABASE__PATH": str(path)}, path


def forms(secret: str) -> list[bytes]:
    return [secret.encode(), secret.encode("utf-16-le"), secret.encode("utf-16-be"), secret.encode().hex().encode()]


def invoke(*args, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def test_read_is_masked_by_default(sim, db_env):
    env, path = db_env
    text = sim.do(sim.running.present_card, "resident")
    table = invoke("read", "--url", sim.url, "--timeout", "2", env=env)
    as_json = invoke("read", "--url", sim.url, "--timeout", "2", "--json", env=env)
    assert table.exit_code == 0 and as_json.exit_code == 0, table.output + as_json.output
    card = json.loads(as_json.stdout)["card"]
    assert card["id_number"] == "*" * 14 + text.id_number[-4:] and card["name"] == text.name[0] + "*"
    assert card["card_type"] == "resident" and card["id_number_valid"] is True
    assert text.id_number[-4:] in table.output and "birth" not in card
    for out in (table.output, as_json.output):
        for secret in (text.id_number, text.id_number[:14], text.name, text.address, f"{text.birth:%Y%m%d}",
                       text.birth.isoformat()):
            assert secret not in out
    assert not path.exists()  # nothing was journaled: nothing personal was shown


def test_show_personal_data_journals_first_and_the_journal_holds_no_personal_data(sim, db_env):
    env, path = db_env
    text = sim.do(sim.running.present_card, "hk_mo_tw_permit")
    result = invoke("read", "--url", sim.url, "--timeout", "2", "--show-personal-data", "--json", env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["masked"] is False and shown["card"]["id_number"] == text.id_number
    assert shown["card"]["name"] == text.name and shown["card"]["pass_number"] == text.pass_number
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = conn.execute("SELECT * FROM events WHERE kind = 'personal_data_shown'").fetchall()
    assert [r["id"] for r in rows] == [shown["journal_event"]]
    row = rows[0]
    assert row["actor"] == f"os-user:{os_user()}"
    assert json.loads(row["detail"]) == {"command": "diag idcard read", "card_type": "hk_mo_tw_permit"}
    assert journal.verify(conn).ok
    conn.close()
    stored = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())
    for secret in (text.id_number, text.name, text.pass_number, text.address):
        for form in forms(secret):
            assert form not in stored


def test_full_table_output(sim, db_env):
    env, _ = db_env
    text = sim.do(sim.running.present_card, "resident", long_term=True)
    result = invoke("read", "--url", sim.url, "--timeout", "2", "--show-personal-data", env=env)
    assert result.exit_code == 0, result.output
    assert text.id_number in result.output and "长期" in result.output and "journal event" in result.output


def test_nothing_is_shown_when_the_journal_cannot_be_written(sim, tmp_path, monkeypatch):
    monkeypatch.delenv("POSTKIOSK_CONFIG", raising=False)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    text = sim.do(sim.running.present_card, "resident")
    result = invoke("read", "--url", sim.url, "--timeout", "2", "--show-personal-data", "--json",
                    env={"POSTKIOSK_DATABASE__PATH": str(blocker / "pk.sqlite3")})
    assert result.exit_code == 2
    assert "personal data not shown" in result.output
    for form in forms(text.id_number) + forms(text.name):
        assert form not in result.output.encode()


def test_no_card_and_a_rejected_card(sim, db_env):
    env, _ = db_env
    result = invoke("read", "--url", sim.url, "--timeout", "0.2", "--json", env=env)
    assert result.exit_code == 1 and "no card" in json.loads(result.stdout)["error"]
    sim.do(sim.running.present_card, "resident")
    sim.do(sim.running.sim.fail_next, 0x40)
    result = invoke("read", "--url", sim.url, "--timeout", "1", env=env)
    assert result.exit_code == 2 and "rejected" in result.output and "0x40" in result.output


def test_status_reports_the_sam(sim):
    result = invoke("status", "--url", sim.url, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["sam_status"] == "0x90" and len(data["sam_id"]) == 32
    sim.running.sim.state.sam_status = 0x66
    result = invoke("status", "--url", sim.url)
    assert result.exit_code == 1 and "not authorised" in result.output


def test_unopenable_reader(tmp_path):
    result = invoke("read", "--url", str(tmp_path / "nothing"), "--timeout", "0")
    assert result.exit_code == 2 and "cannot open the reader" in result.output
