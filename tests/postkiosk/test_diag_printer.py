import asyncio
import json
import threading

import pytest
import zxingcpp
from typer.testing import CliRunner

from postkiosk.diag_printer import app
from simulators.escpos_printer import run_escpos_printer_sim
from simulators.tspl_printer import run_tspl_printer_sim

runner = CliRunner()


class SimThread:
    """A simulator on its own event loop in a thread: the command under test runs ``asyncio.run``
    in the test's thread, as it does from a shell."""

    def __init__(self, start) -> None:
        self._start = start
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "SimThread":
        self._thread.start()
        self.running = self._run(self._start())
        return self

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def call(self, fn, *args):
        """Run ``fn(sim, *args)`` on the simulator's loop and return its result."""
        async def call():
            return fn(self.running.sim, *args)
        return self._run(call())

    @property
    def url(self) -> str:
        return self.running.url

    def __exit__(self, *exc) -> None:
        try:
            self._run(self.running.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_status_of_a_ready_receipt_printer(transport):
    with SimThread(lambda: run_escpos_printer_sim(transport)) as sim:
        result = invoke("status", "--url", sim.url, "--protocol", "escpos", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ready"] is True and data["problems"] == [] and data["protocol"] == "escpos"
    assert data["raw"] == {"dle_eot_1": "0x12", "dle_eot_2": "0x12", "dle_eot_3": "0x12", "dle_eot_4": "0x12"}
    assert data["width_dots"] == 576


def test_status_of_a_receipt_printer_out_of_paper_exits_1():
    with SimThread(lambda: run_escpos_printer_sim("pty", paper="out")) as sim:
        result = invoke("status", "--url", sim.url, "--json")
        people = invoke("status", "--url", sim.url)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["paper_out"] is True and data["problems"] == ["paper_out"] and data["reasons"] == ["out of paper"]
    assert data["raw"]["dle_eot_4"] == "0x7E"
    assert people.exit_code == 1 and "not ready: out of paper" in people.stdout


def test_status_of_a_label_printer_with_the_head_open():
    with SimThread(lambda: run_tspl_printer_sim("pty")) as sim:
        sim.call(lambda s: s.set(head_open=True))
        result = invoke("status", "--url", sim.url, "--protocol", "tspl", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["cover_open"] is True and data["raw"] == {"status": "0x01"} and data["label_size_mm"] == [76, 130]


def test_test_page_on_a_receipt_printer():
    with SimThread(lambda: run_escpos_printer_sim("pty")) as sim:
        result = invoke("test-page", "--url", sim.url, "--station", "东门 Station 7", "--profile", "receipt-58mm",
                        "--json")
        jobs = sim.call(lambda s: list(s.jobs))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["printed"] is True and data["status"]["ready"] is True
    assert len(jobs) == 1 and jobs[0].lines == data["lines"] and jobs[0].lines[0] == "东门 Station 7"
    image = jobs[0].images[0]
    assert image.width == 384
    assert {r.text for r in zxingcpp.read_barcodes(image)} == {data["code128"], data["qr"]}


def test_test_page_on_a_label_printer():
    with SimThread(lambda: run_tspl_printer_sim("tcp")) as sim:
        result = invoke("test-page", "--url", sim.url, "--protocol", "tspl")
        labels = sim.call(lambda s: list(s.labels))
    assert result.exit_code == 0, result.output
    assert "test page sent" in result.stdout
    assert len(labels) == 1 and labels[0].texts[0].content == "postkiosk"
    assert len(zxingcpp.read_barcodes(labels[0].image)) == 2


def test_test_page_is_refused_when_the_printer_is_not_ready():
    with SimThread(lambda: run_tspl_printer_sim("pty")) as sim:
        sim.call(lambda s: s.set(paper_out=True))
        result = invoke("test-page", "--url", sim.url, "--protocol", "tspl", "--json")
        labels = sim.call(lambda s: list(s.labels))
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"error": "printer not ready: out of paper"}
    assert labels == []


def test_a_printer_that_does_not_answer_exits_2():
    with SimThread(lambda: run_escpos_printer_sim("pty", unsupported_status={1, 2, 3, 4})) as sim:
        result = invoke("status", "--url", sim.url, "--json")
    assert result.exit_code == 2
    assert "no answer to DLE EOT 1" in json.loads(result.stdout)["error"]


def test_bad_port_and_bad_profile_exit_2():
    result = invoke("status", "--url", "/dev/does-not-exist-printer", "--json")
    assert result.exit_code == 2 and "cannot open" in json.loads(result.stdout)["error"]
    result = invoke("status", "--url", "socket://127.0.0.1:9", "--profile", "receipt-99mm")
    assert result.exit_code == 2 and "unknown printer profile" in result.output


def invoke_cli(*args: str):
    """Through the mounted command line: ``postkiosk diag printer ...``."""
    from postkiosk.cli import app as cli_app

    return runner.invoke(cli_app, ["diag", "printer", *args], catch_exceptions=False)


def test_issue_forms_printer_given_before_the_command():
    with SimThread(lambda: run_escpos_printer_sim("pty")) as sim:
        status = invoke_cli("--protocol", "escpos", "--url", sim.url, "status", "--json")
        page = invoke_cli("--protocol", "escpos", "--url", sim.url, "--profile", "receipt-58mm", "test-page",
                          "--json")
        jobs = sim.call(lambda s: list(s.jobs))
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["protocol"] == "escpos"
    assert page.exit_code == 0, page.output
    assert len(jobs) == 1 and jobs[0].images[0].width == 384  # the group's --profile reached test-page
    with SimThread(lambda: run_tspl_printer_sim("tcp")) as sim:
        status = invoke_cli("--protocol", "tspl", "--url", sim.url, "status", "--json")
        page = invoke_cli("--protocol", "tspl", "--url", sim.url, "test-page")
        labels = sim.call(lambda s: list(s.labels))
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["label_size_mm"] == [76, 130]
    assert page.exit_code == 0 and len(labels) == 1


def test_help_without_options_a_missing_url_and_conflicting_options():
    result = invoke_cli("--help")
    assert result.exit_code == 0 and "--protocol" in result.stdout and "test-page" in result.stdout
    assert invoke_cli("status", "--help").exit_code == 0
    result = invoke_cli("--protocol", "tspl", "status", "--json")
    assert result.exit_code == 2 and "give --url" in json.loads(result.stdout)["error"]
    result = invoke_cli("--protocol", "tspl", "--url", "x", "status", "--protocol", "escpos")
    assert result.exit_code == 2
    assert "--protocol given twice with different values (tspl before the command, escpos after it)" in \
        " ".join(result.stderr.split())
