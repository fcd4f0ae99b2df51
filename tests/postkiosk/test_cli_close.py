"""``postkiosk close``: run, show, top-up, balance against a station database and fake gateways."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from lockers import accounts
from lockers.acquirers import AcquirerAnswer
from lockers.db import connect
from postkiosk import cli_close

DAY = "2026-11-30"
AT = 1_796_000_000.0  # 2026-11-30 08:53:20 Asia/Shanghai


class Gateway:
    """A gateway that knows each order's outcome."""

    def __init__(self, channel: str, truth: dict[str, str]) -> None:
        self.channel = channel
        self.truth = truth

    async def query(self, order_no: str) -> AcquirerAnswer:
        return AcquirerAnswer(self.truth.get(order_no, "failed"), transaction_id=None)


@pytest.fixture
def station(tmp_path, monkeypatch):
    path = tmp_path / "pk.sqlite3"
    monkeypatch.setenv("POSTKIOSK_DATABASE__PATH", str(path))
    monkeypatch.delenv("POSTKIOSK_CONFIG", raising=False)
    conn = connect(path)
    conn.execute("BEGIN IMMEDIATE")
    accounts.create_account(conn, role="staff", login="li.wei", name="李伟", secret="correct horse 1", now=0.0)
    for n, (state, amount) in enumerate([("paid", 1_200), ("paid", 800), ("failed", 500)], start=1):
        conn.execute("INSERT INTO payment_orders (out_trade_no, purpose, reference, channel, code_last4, amount_fen,"
                     " state, created_at, updated_at) VALUES (?, 'posting', ?, 'wechat', ?, ?, ?, ?, ?)",
                     (f"SZ01_20261130_{n:08d}", str(n), f"{n:04d}", amount, state, AT + n, AT + n))
    conn.execute("COMMIT")
    conn.close()
    truth = {"SZ01_20261130_00000001": "paid", "SZ01_20261130_00000002": "paid"}
    monkeypatch.setattr(cli_close, "acquirers_for", lambda cfg: {"wechat": Gateway("wechat", truth)})
    return truth


def close(*args: str):
    return CliRunner().invoke(cli_close.app, list(args))


def test_top_up_and_balance(station):
    done = close("top-up", "--amount-yuan", "500.5", "--staff", "li.wei", "--reference", "POST-01", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["balance_fen"] == 50_050
    shown = close("balance")
    assert shown.exit_code == 0 and "500.50" in shown.stdout


@pytest.mark.parametrize("args, words", [
    (["--amount-yuan", "1.005", "--staff", "li.wei"], "2 decimals"),
    (["--amount-yuan", "-1", "--staff", "li.wei"], "2 decimals"),
    (["--amount-yuan", "10", "--staff", "nobody"], "named staff account"),
])
def test_a_bad_top_up_is_refused_and_nothing_is_recorded(station, args, words):
    result = close("top-up", *args, "--reference", "POST-01")
    assert result.exit_code == 2 and words in result.output
    assert json.loads(close("balance", "--json").stdout) == {"balance_fen": 0}


def test_a_clean_close_with_json_and_csv(station, tmp_path):
    close("top-up", "--amount-yuan", "100", "--staff", "li.wei", "--reference", "POST-01")
    target = tmp_path / "close.csv"
    result = close("run", "--day", DAY, "--staff", "li.wei", "--json", "--csv", str(target))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["version"] == 1 and report["actor"] == "staff:li.wei"
    assert report["paid_by_channel"] == {"wechat": {"count": 2, "amount_fen": 2_000}}
    assert report["ledger"]["top_ups"] == 0  # the top-up was made today, not on DAY
    today = json.loads(close("run", "--json").stdout)  # default: today, station time
    assert today["ledger"]["top_ups"] == 10_000 and today["ledger"]["closing"] == 10_000 and today["ok"]
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["order_no"] for r in rows if r["section"] == "order"] == [f"SZ01_20261130_{n:08d}" for n in (1, 2, 3)]
    assert rows[-1]["flag"] == "ok"
    table = close("show", "--day", DAY)
    assert table.exit_code == 0 and "balanced" in table.stdout


def test_a_mismatch_exits_1_and_every_version_is_kept(station):
    assert close("run", "--day", DAY).exit_code == 0
    station["SZ01_20261130_00000003"] = "paid"  # the gateway kept money for an order that failed here
    second = close("run", "--day", DAY, "--json")
    assert second.exit_code == 1
    flagged = json.loads(second.stdout)["mismatches"]
    assert [(m["code"], m["order_no"]) for m in flagged] == [("gateway_paid_local_not", "SZ01_20261130_00000003")]
    first = close("show", "--day", DAY, "--version", "1", "--json")
    assert first.exit_code == 0 and json.loads(first.stdout)["ok"] is True
    latest = close("show", "--day", DAY)
    assert latest.exit_code == 1 and "gateway_paid_local_not" in latest.stdout and "MISMATCH" in latest.stdout


def test_without_gateways_every_order_is_flagged_not_assumed(station, monkeypatch):
    monkeypatch.setattr(cli_close, "acquirers_for", lambda cfg: {})
    result = close("run", "--day", DAY, "--json")
    assert result.exit_code == 1
    assert {m["code"] for m in json.loads(result.stdout)["mismatches"]} == {"gateway_unknown"}


def test_bad_days_and_missing_closes_are_clear_errors(station):
    bad = close("run", "--day", "30.11.2026")
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    missing = close("show", "--day", "2026-01-01")
    assert missing.exit_code == 2 and "no daily close of 2026-01-01" in missing.output


def test_print_without_a_receipt_printer_keeps_the_close_and_says_so(station):
    result = close("run", "--day", DAY, "--print")
    assert result.exit_code == 2 and "stored but the slip was not printed" in result.output
    assert close("show", "--day", DAY).exit_code == 0


def test_a_bad_commission_table_in_the_configuration_is_a_clear_error(station, tmp_path, monkeypatch):
    class Payments:
        commissions = {"newspapers": {"percent": 150}}
        station_id = "SZ01"

    class Cfg:
        payments = Payments()

    assert cli_close.station_id_for(Cfg()) == "SZ01"
    with pytest.raises(ValueError, match="between 0 and 100"):
        cli_close.commissions_for(Cfg())
    assert cli_close.commissions_for(object()).compute("phone_bill", 100) == 50
