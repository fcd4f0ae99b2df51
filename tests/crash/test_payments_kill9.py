"""T-F1: 5,000 pay attempts with gateway faults, a kill -9 at every payment crashpoint (each at least
3 times) and at random moments; after every life and after a last clean reconcile: 0 double
charges, 0 services given without a confirmed payment, 0 captured payments without a fulfilled
service or a scheduled reverse or refund. Reverses never sooner than ``reverse_not_before``.

The machinery is in ``payments_driver.py`` (gateway, lanes, schedule, checks) and
``payments_workload.py`` (one life of the payment desk; the zygote). Counts: ``PK_PAY_TRIALS``
(5,000), ``PK_PAY_PER_POINT`` (3), ``PK_PAY_LANES``, ``PK_PAY_SEED``.
"""

from __future__ import annotations

import pytest

from tests.crash.payments_driver import (
    FAULT_WEIGHTS,
    REACHES,
    REVERSE_NOT_BEFORE,
    Driver,
    Options,
    check_money,
    check_reverse_timing,
    payment_crashpoints,
)

EXPECTED_POINTS = {f"payment.{p}" for p in ("pay_sent", "created", "submitted", "user_paying", "paid", "timeout",
                                            "reversing", "retry", "reversed", "refunded", "failed")}


def test_every_payment_crashpoint_is_found_and_reachable():
    points = set(payment_crashpoints())
    assert points >= EXPECTED_POINTS
    assert points <= set(REACHES), f"no fault reaches {sorted(points - set(REACHES))}: add it to REACHES"
    assert all(set(faults) <= set(FAULT_WEIGHTS) for faults in REACHES.values())


def _order(no: str, ref: str, state: str, submitted_at: float = 100.0) -> dict:
    return {"out_trade_no": no, "purpose": "posting", "reference": ref, "state": state, "reason": None,
            "submitted_at": submitted_at}


def test_check_money_accepts_a_paid_service_and_an_open_order_before_the_end():
    orders = [_order("L0_1", "S1", "paid"), _order("L0_2", "S2", "user_paying"), _order("L0_3", "S3", "refunded")]
    services = {"S1": {"state": "given", "order_no": "L0_1"}, "S2": {"state": "waiting", "order_no": None},
                "S3": {"state": "waiting", "order_no": None}}
    ledger = {"L0_1": (1, 0), "L0_2": (1, 0), "L0_3": (1, 1)}
    assert check_money(orders, services, ledger, final=False) == []
    final = check_money(orders, services, ledger, final=True)
    assert any("captured payment" in p and "L0_2" in p for p in final)
    assert any("still user_paying" in p for p in final)


@pytest.mark.parametrize(("orders", "services", "ledger", "expected"), [
    ([_order("L0_1", "S1", "paid"), _order("L0_2", "S1", "paid")],
     {"S1": {"state": "given", "order_no": "L0_1"}}, {"L0_1": (1, 0), "L0_2": (1, 0)}, "double charge"),
    ([_order("L0_1", "S1", "user_paying")], {"S1": {"state": "given", "order_no": "L0_1"}}, {"L0_1": (1, 0)},
     "given without a confirmed payment"),
    ([_order("L0_1", "S1", "paid")], {"S1": {"state": "given", "order_no": "L0_1"}}, {"L0_1": (1, 1)},
     "given without a confirmed payment"),
    ([_order("L0_1", "S1", "paid")], {"S1": {"state": "cancelled", "order_no": None}}, {"L0_1": (1, 0)},
     "captured payment without a fulfilled service"),
    ([], {}, {"L0_9": (1, 0)}, "known to the gateway, not to the kiosk"),
])
def test_check_money_reports_each_violation(orders, services, ledger, expected):
    assert any(expected in p for p in check_money(orders, services, ledger, final=False))


def test_check_reverse_timing_reports_an_early_reverse():
    orders = [_order("L0_1", "S1", "reversed", 100.0), _order("L0_2", "S2", "reversed", 100.0)]
    checked, problems = check_reverse_timing(orders, {"L0_1": [100.0 + REVERSE_NOT_BEFORE],
                                                      "L0_2": [100.0 + REVERSE_NOT_BEFORE / 2]})
    assert checked == 2 and len(problems) == 1 and "L0_2" in problems[0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("sabotage", "expected"), [
    ("free_service", "given without a confirmed payment"),
    ("double_charge", "double charge"),
    ("orphan", "captured payment without a fulfilled service"),
])
async def test_the_driver_reports_deliberate_damage(tmp_path, sabotage, expected):
    """A harness that cannot fail is a defect: the damage a life does on purpose must be reported."""
    options = Options.from_env(trials=16, per_point=0, lanes=1, seed=11, random_share=0.0,
                               sabotage=sabotage, workdir=tmp_path / "run")
    summary = await Driver(options).run()
    assert summary.violations and expected in summary.violations[0], summary.violations


@pytest.mark.timeout(900)
async def test_kill9_at_every_payment_crashpoint_with_gateway_faults(report_line):
    options = Options.from_env()
    summary = await Driver(options).run()
    report_line(summary.line())
    report_line(summary.details())
    assert not summary.violations, (
        f"{len(summary.violations)} violation(s); replay with PK_PAY_SEED={summary.seed};"
        f" working directory kept: {summary.workdir}\n" + "\n".join(summary.violations))
    assert not summary.unreached, f"payment crashpoints the workload could not reach: {summary.unreached}"
    assert set(summary.named) >= EXPECTED_POINTS
    assert min(summary.named.values()) >= options.per_point
    assert summary.trials >= options.trials
