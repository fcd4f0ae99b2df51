"""T-A1: kill -9 at every crashpoint (each at least 3 times) and at 2,000 random moments across
deposit, pickup, refusal, courier retrieval and technician open; restart, reconcile, check the
invariants after every kill. 0 violations.

The machinery is in ``driver.py`` (processes, schedule, checks), ``workload.py`` (one life of the
service and the people using it), ``zygote.py`` (fork per life) and ``wall.py`` (the simulated wall
as its own process). Counts: ``POSTKIOSK_CRASH_RANDOM`` (2,000; 20,000 with ``DEEP=1``),
``POSTKIOSK_CRASH_PER_POINT`` (3), ``POSTKIOSK_CRASH_LANES`` (2), ``POSTKIOSK_CRASH_SEED``.
"""

from __future__ import annotations

import os
import random

import pytest

from lockers import crash
from tests.crash.driver import Driver, Options, Plan, crashpoint_names, unlisted_crashpoints

DEEP = os.environ.get("DEEP", "") not in ("", "0")


@pytest.fixture(scope="module")
def lab():
    """One lane (wall, zygote, phones) shared by the focused tests; each starts a new epoch."""
    with Driver(Options.from_env(lanes=1, stock=0, seed=20261123)) as driver:
        yield driver


def _one(lab: Driver, plan: Plan):
    outcome, problems = lab.trial(plan)
    return outcome, problems


def test_points_lists_every_crashpoint_in_custody():
    assert unlisted_crashpoints() == [], "crashpoints missing from lockers.crash.POINTS"
    assert set(crash.POINTS) <= set(crashpoint_names())


@pytest.mark.parametrize(("point", "pulses", "compartment", "intent"), [
    ("deposit.reserved", 0, "free", "unknown"),  # no pulse yet: door closed and empty, so no check needed
    ("deposit.unlock_sent", 1, "check_required", "unknown"),  # pulsed, door sprang open, nobody saw it
    ("deposit.door_open_recorded", 1, "check_required", "opened"),
])
def test_a_deposit_killed_at_a_crashpoint_is_reconciled_without_a_second_pulse(lab, point, pulses, compartment,
                                                                                 intent):
    lane = lab.lanes[0]
    lane.new_epoch()
    outcome, problems = _one(lab, Plan("named", 1, 5, crash_at=f"{point}:1", point=point, focus="deposit_only",
                                       timeout=20, actors=1))
    assert outcome.fired, f"{point} was not reached (exit {outcome.status})"
    assert problems == []
    assert lane.query("SELECT id, state FROM parcels") == [(1, "depositing")]
    assert sum(lane.pulses().values()) == pulses

    outcome, problems = _one(lab, Plan("start", 2, 0, focus="idle", timeout=20))  # restart: reconcile, stop
    assert outcome.status == 0 and problems == []
    assert lane.query("SELECT state FROM parcels WHERE id = 1") == [("cancelled",)]
    assert lane.query("SELECT c.state FROM compartments c JOIN parcels p ON p.compartment_id = c.id"
                      " WHERE p.id = 1") == [(compartment,)]
    assert lane.query("SELECT outcome, resolved_at IS NOT NULL FROM door_intents") == [(intent, 1)]
    assert lane.query("SELECT COUNT(*) FROM events WHERE kind = 'deposit_interrupted' AND parcel_id = 1") == [(1,)]
    assert sum(lane.pulses().values()) == pulses  # start-up pulses nothing; nothing is re-sent


@pytest.mark.parametrize(("sabotage", "expected"), [
    ("db", "occupied with no live parcel"),
    ("pulse", "pulses but 0 intents"),
    ("journal", "journal: row"),
    ("posting", "no parcel of it was dispatched"),
])
def test_the_driver_reports_deliberate_damage(lab, sabotage, expected):
    """A harness that cannot fail is a defect: damage done on purpose must be reported."""
    lane = lab.lanes[0]
    lane.new_epoch(verify=False)
    outcome, problems = _one(lab, Plan("sabotage", 3, 0, sabotage=sabotage, timeout=20))
    assert outcome.status == 0
    assert any(expected in p for p in problems), problems


def test_the_driver_reports_a_corrupted_database_file(lab):
    lane = lab.lanes[0]
    lane.new_epoch(verify=False)
    outcome, problems = _one(lab, Plan("stock", 4, 3, focus="stock", timeout=30))
    assert outcome.status == 0 and problems == []
    assert lane.query("SELECT COUNT(*) FROM parcels WHERE state = 'stored'") == [(3,)]
    assert lane.db is not None
    size = lane.db.stat().st_size
    rnd = random.Random(5)
    with lane.db.open("r+b") as fh:  # scribble over every page but the header page
        for offset in range(4096, size, 4096):
            fh.seek(offset + rnd.randrange(0, 3000))
            fh.write(rnd.randbytes(64))
    problems = lane.check(outcome)
    assert any("integrity_check" in p or "cannot be read" in p for p in problems), problems
    lane.new_epoch(verify=False)


def test_a_full_run_fails_on_a_violation_and_keeps_its_evidence(tmp_path):
    options = Options.from_env(lanes=2, random_kills=4, per_point=0, seed=7, stock=2, sabotage="db",
                               workdir=tmp_path / "run")
    driver = Driver(options)
    with driver:
        summary = driver.run()
        processes = [p for lane in driver.lanes for p in (lane.wall, lane.zygote)]
    assert summary.violations and "occupied with no live parcel" in summary.violations[0]
    assert "master seed 7" in summary.violations[0] and '"sabotage": "db"' in summary.violations[0]
    assert (tmp_path / "run").is_dir()  # kept for the post-mortem
    assert all(p.poll() is not None for p in processes)  # and every process is gone


@pytest.mark.timeout(4 * 3600 if DEEP else 900)
def test_kill9_at_every_crashpoint_and_at_random_moments(report_line):
    options = Options.from_env()
    with Driver(options) as driver:
        summary = driver.run()
    report_line(summary.line())
    assert not summary.violations, (
        f"{len(summary.violations)} violation(s); replay with POSTKIOSK_CRASH_SEED={summary.seed};"
        f" working directory kept: {summary.workdir}\n" + "\n".join(summary.violations))
    assert not summary.unreached, f"crashpoints the workload could not reach: {summary.unreached}"
    assert set(summary.named) >= set(crash.POINTS)
    assert min(summary.named.values()) >= options.per_point
    assert summary.random_kills >= options.random_kills
