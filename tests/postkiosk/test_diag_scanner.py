"""``postkiosk diag scanner`` through typer's CliRunner against the wire simulators, on its own and as
mounted in ``postkiosk.cli:app`` (the issue's command forms: the scanner before the command).

The command runs its own ``asyncio.run``, so these tests are synchronous and the simulator runs on
an event loop in a background thread (:class:`SimThread`), reached with ``run_coroutine_threadsafe``.
"""

import asyncio
import json
import threading

import pytest
from typer.testing import CliRunner

from postkiosk.cli import app as cli_app
from postkiosk.diag_scanner import app, shown_code, symbology_name
from simulators.line_scanner import run_line_scanner_sim
from simulators.trigger_scanners import run_trigger_scanner_sim
from tests.hal.test_scanner_hid import FakeInputDevice

TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PAYMENT = "134567890123456789"  # 18 digits starting 13: a payment code
ID_NUMBER = "11010519491231002X"
PICKUP_CODE = "48151623"

runner = CliRunner()


class SimThread:
    """A simulator served on its own event loop in a thread."""

    def __init__(self, start):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim-loop", daemon=True)
        self.thread.start()
        self.running = self.run(start())
        self.sim = self.running.sim
        self.url = self.running.url

    def run(self, coro, timeout=5):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args, **kwargs):
        async def call():
            return fn(*args, **kwargs)
        return self.run(call())

    def when(self, ready, *codes, symbology=None):
        """Scan ``codes`` once ``ready(sim)`` holds (a host has connected and set the scanner up)."""
        async def later():
            while not ready(self.sim):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            for code in codes:
                self.sim.scan(code, symbology)
        return asyncio.run_coroutine_threadsafe(later(), self.loop)

    def close(self):
        self.run(self.running.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def sims():
    started = []

    def start(factory):
        sim = SimThread(factory)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.close()


def connected(sim):
    return sim.connections > 0


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def json_lines(output):
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def invoke_cli(*args):
    """Through the mounted command line: ``postkiosk diag scanner ...``."""
    return runner.invoke(cli_app, ["diag", "scanner", *args], catch_exceptions=False)


def shown(text, symbology=None, error=None):
    out = shown_code(text, symbology, error)
    return out["text"], out["masked"], out["kind"]


def test_masking_follows_the_kiosk_classifier():
    # what the kiosk masks: pickup tokens and codes, payment codes, ID numbers
    assert shown(TOKEN) == ("PK1-…WXYZ", True, "pickup_token")
    assert shown(f"https://post.example/p/{TOKEN}", "]Q1") == ("PK1-…WXYZ", True, "pickup_token")
    assert shown(PICKUP_CODE) == ("******23", True, "pickup_code")
    assert shown(PAYMENT) == ("**************6789", True, "payment_code")
    assert shown("28" + "1" * 22) == ("*" * 20 + "1111", True, "payment_code")  # Alipay, 24 digits
    assert shown(ID_NUMBER) == ("**************002X", True, "resident_id")
    assert shown("310105194912310025") == ("**************0025", True, "resident_id")  # bad check char
    # what a technician needs to see: shown as read
    assert shown("SF1234567890123") == ("SF1234567890123", False, "waybill")
    assert shown("EA123456785CN") == ("EA123456785CN", False, "postal_item")
    assert shown("取件码 8848") == ("取件码 8848", False, "unknown")
    assert shown("6901234567892", "]E0") == ("6901234567892", False, "unknown")  # a product barcode
    assert shown("31" + "0" * 17) == ("31" + "0" * 17, False, "unknown")  # 19 digits, no rule
    assert symbology_name("]Q1") == "QR" and symbology_name("]Q3") == "QR" and symbology_name(None) is None


def test_undecodable_reads_are_unknown_but_a_secret_inside_stays_masked():
    assert shown("\\xff\\xfe", error="undecodable") == ("\\xff\\xfe", False, "unknown")
    assert shown(f"\\xff{TOKEN}", error="undecodable") == ("PK1-…WXYZ", True, "unknown")
    assert shown(f"\\xfe{PAYMENT}", error="undecodable") == ("**************6789", True, "unknown")
    assert shown("4815\\xff1623", error="undecodable") == ("******23", True, "unknown")


def test_listen_prints_codes_with_symbology_and_masks_personal_data(sims):
    sim = sims(lambda: run_line_scanner_sim("tcp", aim_ids=True))
    done = sim.when(connected, TOKEN, PAYMENT)
    result = invoke("listen", "--url", sim.url, "--aim", "--count", "2", "--timeout", "5")
    done.result(1)
    assert result.exit_code == 0, result.output
    assert "#1  ]Q1 QR  30 bytes  pickup_token  PK1-…WXYZ  (masked)" in result.stdout
    assert "#2  ]Q1 QR  18 bytes  payment_code  **************6789  (masked)" in result.stdout
    assert PAYMENT not in result.output and TOKEN[4:] not in result.output
    assert "2 codes read" in result.stdout


def test_listen_json_lines(sims):
    sim = sims(lambda: run_trigger_scanner_sim("honeywell", "tcp", trigger_mode=False))
    done = sim.when(connected, ID_NUMBER, "SF1234567890", PICKUP_CODE)
    result = invoke("listen", "--protocol", "honeywell", "--url", sim.url, "--json", "--count", "3",
                    "--timeout", "5")
    done.result(1)
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert [(x["event"], x.get("text"), x.get("masked"), x.get("kind")) for x in lines] == [
        ("code", "**************002X", True, "resident_id"), ("code", "SF1234567890", False, "waybill"),
        ("code", "******23", True, "pickup_code"), ("end", None, None, None)]
    assert lines[0]["length"] == 18 and lines[0]["symbology"] is None and lines[-1]["codes"] == 3
    assert ID_NUMBER not in result.output and PICKUP_CODE not in result.output


def test_listen_reports_the_bytes_received_for_undecodable_and_multibyte_codes(sims):
    sim = sims(lambda: run_line_scanner_sim("tcp"))

    async def send_when_connected():
        while not sim.sim.connections:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        sim.sim.send_raw(b"\xff\xfe\r")
        sim.sim.send_raw("取件码 8848\r".encode())

    done = asyncio.run_coroutine_threadsafe(send_when_connected(), sim.loop)
    result = invoke_cli("--url", sim.url, "listen", "--json", "--count", "2", "--timeout", "5")
    done.result(1)
    assert result.exit_code == 0, result.output
    bad, chinese, _ = json_lines(result.stdout)
    assert (bad["text"], bad["length"], bad["error"], bad["kind"]) == ("\\xff\\xfe", 2, "undecodable", "unknown")
    assert (chinese["text"], chinese["length"], chinese["kind"]) == ("取件码 8848", 14, "unknown")


def test_listen_over_ssi_and_gm65(sims):
    ssi = sims(lambda: run_trigger_scanner_sim("zebra-ssi", "tcp", trigger_mode=False))
    done = ssi.when(lambda s: s.packeted, "6901234567892", symbology="]E0")
    result = invoke("listen", "--protocol", "zebra-ssi", "--url", ssi.url, "--json", "--count", "1", "--timeout", "5")
    done.result(1)
    assert result.exit_code == 0, result.output
    code = json_lines(result.stdout)[0]
    assert (code["text"], code["symbology"], code["symbology_name"]) == ("6901234567892", "]E0", "EAN-13/UPC-A")

    gm = sims(lambda: run_trigger_scanner_sim("gm65", "tcp", trigger_mode=False, suffix="crlf"))
    done = gm.when(connected, TOKEN)
    result = invoke("listen", "-p", "gm65", "--url", gm.url, "--suffix", "crlf", "--count", "1", "--timeout", "5")
    done.result(1)
    assert result.exit_code == 0 and "PK1-…WXYZ" in result.stdout and TOKEN not in result.stdout


def test_listen_ends_at_the_timeout_and_says_too_few_codes(sims):
    sim = sims(lambda: run_line_scanner_sim("tcp"))
    result = invoke("listen", "--url", sim.url, "--timeout", "0.2", "--count", "1", "--json")
    assert result.exit_code == 1
    assert json_lines(result.stdout) == [{"event": "end", "codes": 0}]
    result = invoke("listen", "--url", sim.url, "--timeout", "0.1")
    assert result.exit_code == 0 and "0 codes read" in result.stdout


def test_listen_from_a_hid_wedge(monkeypatch):
    evdev = pytest.importorskip("evdev")
    made = []

    def fake_input_device(path):
        device = FakeInputDevice(path)
        device.type("]Q1" + TOKEN)
        made.append(device)
        return device

    monkeypatch.setattr(evdev, "InputDevice", fake_input_device)
    result = invoke("listen", "-p", "hid", "--url", "/dev/input/by-id/usb-Fake-event-kbd", "--aim",
                    "--count", "1", "--timeout", "5", "--json")
    assert result.exit_code == 0, result.output
    code = json_lines(result.stdout)[0]
    assert (code["text"], code["kind"], code["length"]) == ("PK1-…WXYZ", "pickup_token", 30)
    assert made[0].closed and not made[0].grabbed


def test_issue_forms_through_the_mounted_cli(sims):
    sim = sims(lambda: run_line_scanner_sim("tcp", aim_ids=True))
    done = sim.when(connected, "SF1234567890123")
    result = invoke_cli("--url", sim.url, "--aim", "listen", "--count", "1", "--timeout", "5", "--json")
    done.result(1)
    assert result.exit_code == 0, result.output
    code = json_lines(result.stdout)[0]
    assert (code["text"], code["kind"], code["symbology"], code["length"]) == ("SF1234567890123", "waybill",
                                                                                "]Q1", 15)

    honeywell = sims(lambda: run_trigger_scanner_sim("honeywell", "tcp"))
    honeywell.call(honeywell.sim.scan, TOKEN)
    result = invoke_cli("--protocol", "honeywell", "--url", honeywell.url, "trigger", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"] == "PK1-…WXYZ" and TOKEN not in result.output


def test_options_before_and_after_the_command():
    # --help works without the required options
    result = invoke_cli("--help")
    assert result.exit_code == 0 and "--url" in result.stdout and "listen" in result.stdout
    assert invoke_cli("listen", "--help").exit_code == 0
    result = invoke_cli("listen")
    assert result.exit_code == 2 and "give --url" in result.stderr
    result = invoke_cli("--url", "socket://127.0.0.1:1", "listen", "--url", "socket://127.0.0.1:2")
    assert result.exit_code == 2 and "--url given twice with different values" in result.stderr
    result = invoke_cli("-p", "gm65", "trigger", "--protocol", "honeywell", "--url", "x")
    assert result.exit_code == 2 and "--protocol given twice" in result.stderr
    # the same value on both sides is not a conflict; the group's protocol reaches the command
    result = invoke_cli("-p", "serial-line", "--url", "x", "trigger", "--url", "x")
    assert result.exit_code == 2 and "serial-line scanner cannot be triggered" in result.stderr


def test_trigger_reads_one_code(sims):
    sim = sims(lambda: run_trigger_scanner_sim("honeywell", "tcp"))
    sim.call(sim.sim.scan, TOKEN)  # held under the window until the trigger
    result = invoke("trigger", "--url", sim.url, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"] == "PK1-…WXYZ" and TOKEN not in result.output
    assert sim.sim.received.startswith(bytes.fromhex("16 54 0D"))


def test_trigger_gm65_human_output(sims):
    sim = sims(lambda: run_trigger_scanner_sim("gm65", "tcp", aim_ids=True))
    sim.call(sim.sim.scan, "SF1234567890", "]C0")
    result = invoke("trigger", "-p", "gm65", "--url", sim.url, "--aim")
    assert result.exit_code == 0, result.output
    assert "#1  ]C0 Code 128  12 bytes  waybill  SF1234567890" in result.stdout


def test_trigger_without_a_code_exits_1(sims):
    sim = sims(lambda: run_trigger_scanner_sim("zebra-ssi", "tcp"))
    result = invoke("trigger", "-p", "zebra-ssi", "--url", sim.url, "--timeout", "0.2", "--json")
    assert result.exit_code == 1
    assert "no code read within 0.2 s" in json.loads(result.stdout)["error"]
    assert sim.sim.received.endswith(bytes.fromhex("04 E5 04 00 FF 13"))  # the scan was stopped


def test_trigger_refuses_scanners_without_a_host_trigger():
    result = invoke("trigger", "-p", "serial-line", "--url", "socket://127.0.0.1:1")
    assert result.exit_code == 2 and "cannot be triggered" in result.stderr


def test_a_scanner_that_cannot_be_opened_is_a_clear_error():
    result = invoke("listen", "--url", "/dev/serial/by-id/no-such-scanner", "--json", "--timeout", "1")
    assert result.exit_code == 2
    assert "cannot open" in json.loads(result.stdout.splitlines()[0])["error"]
    result = invoke("listen", "-p", "nonsense", "--url", "x")
    assert result.exit_code == 2 and "unknown protocol" in result.stderr
