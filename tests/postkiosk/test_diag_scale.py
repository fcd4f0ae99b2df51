import json

from typer.testing import CliRunner

from postkiosk.diag_scale import app
from simulators.scale import run_scale_sim
from tests.postkiosk.test_diag_printer import SimThread

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_read_a_stable_weight():
    with SimThread(lambda: run_scale_sim("pty", rate_hz=50)) as sim:
        sim.call(lambda s: s.put_weight(1234))
        result = invoke("read", "--url", sim.url, "--json", "--timeout", "3")
        people = invoke("read", "--url", sim.url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("grams", "stable", "overload", "kind")} == {
        "grams": 1234, "stable": True, "overload": False, "kind": "gross"}
    assert people.exit_code == 0 and "1234 g (stable, gross)" in people.stdout


def test_read_the_current_reading_of_a_platter_that_never_settles():
    with SimThread(lambda: run_scale_sim("tcp", rate_hz=50)) as sim:
        sim.call(lambda s: (s.put_weight(700), s.hold_unstable()))
        current = invoke("read", "--url", sim.url, "--current", "--json")
        # Long enough that readings surely arrive on a loaded machine (with none at all the answer
        # is "sent nothing", exit 2), and they never settle.
        stable = invoke("read", "--url", sim.url, "--stable", "--timeout", "1.5", "--json")
    assert current.exit_code == 0, current.output
    assert json.loads(current.stdout)["stable"] is False
    assert stable.exit_code == 1 and "did not settle" in json.loads(stable.stdout)["error"]


def test_overload_exits_1():
    with SimThread(lambda: run_scale_sim("pty", rate_hz=50, capacity_g=15000)) as sim:
        sim.call(lambda s: s.put_weight(20000))
        result = invoke("read", "--url", sim.url, "--json")
        current = invoke("read", "--url", sim.url, "--current")
    assert result.exit_code == 1 and "capacity" in json.loads(result.stdout)["error"]
    assert current.exit_code == 0 and "OVERLOAD" in current.stdout


def test_a_silent_scale_exits_2():
    with SimThread(lambda: run_scale_sim("pty")) as sim:
        sim.call(lambda s: s.stop_streaming())
        result = invoke("read", "--url", sim.url, "--timeout", "0.3", "--json")
    assert result.exit_code == 2 and "sent nothing" in json.loads(result.stdout)["error"]


def test_issue_form_through_the_mounted_cli():
    from postkiosk.cli import app as cli_app

    with SimThread(lambda: run_scale_sim("pty", rate_hz=50)) as sim:
        sim.call(lambda s: s.put_weight(2500))
        result = runner.invoke(cli_app, ["diag", "scale", "--url", sim.url, "read", "--json", "--timeout", "3"])
        both = runner.invoke(cli_app, ["diag", "scale", "--url", sim.url, "--baudrate", "9600", "read",
                                       "--url", sim.url, "--timeout", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["grams"] == 2500
    assert both.exit_code == 0 and "2500 g" in both.stdout
    assert runner.invoke(cli_app, ["diag", "scale", "read", "--help"]).exit_code == 0
    result = runner.invoke(cli_app, ["diag", "scale", "read"])
    assert result.exit_code == 2 and "give --url" in result.stderr
    result = runner.invoke(cli_app, ["diag", "scale", "--url", "/dev/a", "read", "--url", "/dev/b"])
    assert result.exit_code == 2 and "--url given twice" in result.stderr
