import asyncio
import json
import sqlite3
import threading

import pytest
from typer.testing import CliRunner

from lockers import journal
from postkiosk.cli import app as cli_app
from postkiosk.diag_idcard import NEEDS_CONFIG, app, os_user
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


def write_config(folder, database):
    """A minimal station configuration (one simulated bank) whose database is ``database``."""
    config = folder / "station.toml"
    config.write_text(f'[database]\npath = "{database}"\n\n[[banks]]\nname = "A"\nsimulate = true\n',
                      encoding="utf-8")
    return config


@pytest.fixture
def station(tmp_path, monkeypatch):
    """(station config file, its database); no POSTKIOSK_* variable leaks in, and the working directory
    is tmp_path, so a stray ./var database would be seen."""
    for name in ("POSTKIOSK_CONFIG", "POSTKIOSK_DATABASE__PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "pk.sqlite3"
    return write_config(tmp_path, path), path


def forms(secret: str) -> list[bytes]:
    return [secret.encode(), secret.encode("utf-16-le"), secret.encode("utf-16-be"), secret.encode().hex().encode()]


def invoke(*args, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def test_read_is_masked_by_default(sim, station, tmp_path):
    config, path = station
    text = sim.do(sim.running.present_card, "resident")
    table = invoke("read", "--url", sim.url, "--timeout", "2", "--config", str(config))
    as_json = invoke("read", "--url", sim.url, "--timeout", "2", "--json")  # no configuration needed
    assert table.exit_code == 0 and as_json.exit_code == 0, table.output + as_json.output
    card = json.loads(as_json.stdout)["card"]
    assert card["id_number"] == "*" * 14 + text.id_number[-4:] and card["name"] == text.name[0] + "*"
    assert card["card_type"] == "resident" and card["id_number_valid"] is True
    assert text.id_number[-4:] in table.output and "birth" not in card
    for out in (table.output, as_json.output):
        for secret in (text.id_number, text.id_number[:14], text.name, text.address, f"{text.birth:%Y%m%d}",
                       text.birth.isoformat()):
            assert secret not in out
    assert not path.exists() and not (tmp_path / "var").exists()  # nothing personal shown: nothing journaled


def test_show_personal_data_journals_first_and_the_journal_holds_no_personal_data(sim, station):
    config, path = station
    text = sim.do(sim.running.present_card, "hk_mo_tw_permit")
    result = invoke("read", "--url", sim.url, "--timeout", "2", "--show-personal-data", "--json",
                    "--config", str(config))
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


def test_full_table_output_with_the_configuration_from_the_environment(sim, station, tmp_path):
    config, path = station
    text = sim.do(sim.running.present_card, "resident", long_term=True)
    result = invoke("read", "--url", sim.url, "--timeout", "2", "--show-personal-data",
                    env={"POSTKIOSK_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert text.id_number in result.output and "长期" in result.output and "journal event" in result.output
    assert path.exists() and not (tmp_path / "var").exists()


@pytest.mark.parametrize("env", [{}, {"POSTKIOSK_DATABASE__PATH": "elsewhere.sqlite3"}, {"POSTKIOSK_CONFIG": ""}])
@pytest.mark.parametrize("as_json", [False, True])
def test_show_personal_data_without_a_station_configuration_is_refused_before_reading(sim, station, tmp_path,
                                                                                      env, as_json):
    text = sim.do(sim.running.present_card, "resident")
    result = invoke("read", "--url", sim.url, "--timeout", "2", "--show-personal-data",
                    *(["--json"] if as_json else []), env=env)
    assert result.exit_code == 2
    assert NEEDS_CONFIG in " ".join(result.stderr.split())
    if as_json:
        assert json.loads(result.stdout) == {"error": NEEDS_CONFIG}
    assert sim.running.sim.state.commands == [] and sim.running.sim.state.reads == 0  # the reader was not asked
    for form in forms(text.id_number) + forms(text.name):
        assert form not in result.output.encode()
    assert not (tmp_path / "var").exists() and not (tmp_path / "elsewhere.sqlite3").exists()


def test_a_configuration_that_cannot_be_loaded_is_refused_before_reading(sim, station, tmp_path):
    sim.do(sim.running.present_card, "resident")
    result = invoke("read", "--url", sim.url, "--show-personal-data", "--config", str(tmp_path / "missing.toml"))
    assert result.exit_code == 2 and "configuration file not found" in " ".join(result.stderr.split())
    (tmp_path / "bad.toml").write_text("[[banks]]\nname = 'lowercase'\n")
    result = invoke("read", "--url", sim.url, "--show-personal-data", "--config", str(tmp_path / "bad.toml"))
    assert result.exit_code == 2 and "is not valid" in " ".join(result.stderr.split())
    assert sim.running.sim.state.commands == []


def test_nothing_is_shown_when_the_journal_cannot_be_written(sim, station, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    config = write_config(tmp_path, blocker / "pk.sqlite3")
    text = sim.do(sim.running.present_card, "resident")
    result = invoke("read", "--url", sim.url, "--timeout", "2", "--show-personal-data", "--json",
                    "--config", str(config))
    assert result.exit_code == 2
    assert "personal data not shown" in result.output and "journal could not be written" in result.output
    assert sim.running.sim.state.reads == 1  # the card was read, then nothing of it shown
    for form in forms(text.id_number) + forms(text.name):
        assert form not in result.output.encode()


def test_no_card_and_a_rejected_card(sim, station):
    result = invoke("read", "--url", sim.url, "--timeout", "0.2", "--json")
    assert result.exit_code == 1 and "no card" in json.loads(result.stdout)["error"]
    sim.do(sim.running.present_card, "resident")
    sim.do(sim.running.sim.fail_next, 0x40)
    result = invoke("read", "--url", sim.url, "--timeout", "1")
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


def invoke_cli(*args, env=None):
    """Through the mounted command line: ``postkiosk diag idcard ...``."""
    return CliRunner().invoke(cli_app, ["diag", "idcard", *args], env=env)


def test_issue_forms_reader_given_before_the_command(sim, station):
    config, path = station
    text = sim.do(sim.running.present_card, "resident")
    result = invoke_cli("--url", sim.url, "read", "--timeout", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["card"]["id_number"] == "*" * 14 + text.id_number[-4:]
    result = invoke_cli("--url", sim.url, "--baudrate", "115200", "read", "--timeout", "2", "--show-personal-data",
                        "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["card"]["id_number"] == text.id_number and path.exists()
    result = invoke_cli("--url", sim.url, "status", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] is True


def test_help_a_missing_url_and_conflicting_options(station):
    result = invoke_cli("--help")
    assert result.exit_code == 0 and "--url" in result.stdout and "status" in result.stdout
    assert invoke_cli("read", "--help").exit_code == 0
    result = invoke_cli("read", "--json")
    assert result.exit_code == 2 and "give --url" in json.loads(result.stdout)["error"]
    result = invoke_cli("--url", "/dev/a", "status", "--url", "/dev/b")
    assert result.exit_code == 2 and "--url given twice" in result.stderr
    result = invoke_cli("--baudrate", "9600", "read", "--url", "/dev/a", "--baudrate", "115200")
    assert result.exit_code == 2 and "--baudrate given twice" in result.stderr
