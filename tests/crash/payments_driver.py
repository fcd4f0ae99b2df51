"""The payment kill -9 driver (T-F1): gateway faults plus a kill -9 at every payment crashpoint.

Processes: this one runs the WeChat Pay v2 simulator (``simulators.pay_gateway``) on its event loop,
so the gateway outlives every kill and is the ground truth for money; each lane (``PK_PAY_LANES``,
default CPU cores + 2, at most 6: a life mostly waits for the gateway and the scaled timers) has
its own station database and a zygote (``tests/crash/payments_workload.py``) that forks one life
of the payment desk at a time.

A life gets a few trials (a service to pay, a fresh payment code, the gateway fault scripted for
that code) and one crash plan: a named crashpoint (``POSTKIOSK_CRASH_AT=payment.<point>:n``, the
first trials chosen so the flow reaches it), a SIGKILL from here at a random moment, or none. Every
``payment.*`` crashpoint in ``lockers/payments.py`` must fire ``PK_PAY_PER_POINT`` (3) times; the run
goes on until ``PK_PAY_TRIALS`` (5,000) pay attempts have started and every point has.

After every life (the child is dead) the lane's database and the gateway's per-order ledger are
checked (:func:`check_money`): per service at most one kept charge; a given service has exactly one
kept charge, on its own order, which the kiosk holds as ``paid``; a kept charge belongs to a given
service or to an order still open (a reverse is scheduled). At the end each lane reconciles once
more without a crash, held gateway answers are let land, and the same checks run strictly (no open
order may remain). Reverse timing: every reverse must reach the gateway at least
``reverse_not_before`` after the order's ``submitted_at`` (committed just before the pay call). The
arrival times are recorded at the gateway by wrapping its request handlers; if the simulator no
longer has them, the check is skipped and the summary says so.

``PK_PAY_SEED`` fixes the master seed (timing is real, so a replay is close, not exact). A failure
keeps the working directory (databases, lane logs) and reports it.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hal.codes import PaymentCode, classify
from lockers.db import check_location
from lockers.errors import StorageError
from lockers.payments import OPEN_STATES, TRANSITIONS
from simulators.pay_gateway import Scenario, run_pay_gateway
from tests.crash.payments_workload import SETTINGS

REPO = Path(__file__).resolve().parents[2]
APPID, MCH_ID, API_KEY = "wx2421b1c4370ec43b", "10000100", "crash-key-0123456789abcdef0123456"
REVERSE_NOT_BEFORE = float(SETTINGS["reverse_not_before"])
CALL_TIMEOUT = float(SETTINGS["call_timeout"])
GIVE_UP = float(SETTINGS["give_up_after"])
#: the reason PaymentDesk records on a ``paid`` order whose service refused it, just before reversing it
SERVICE_REFUSED = "service_refused"

# -- faults ------------------------------------------------------------------------------------------

#: fault name -> draw weight; :func:`scenario` turns a name into the gateway's script
FAULT_WEIGHTS: dict[str, float] = {
    "success": 3, "userpaying_success": 2, "userpaying_fail": 1, "userpaying_never": 1, "late_success": 1,
    "systemerror": 1, "http500": 1, "timeout": 1.5, "duplicate": 0.5, "notenough": 1, "reverse_errors": 1,
    "cancelled": 0.7,
}
#: crashpoint -> faults whose pay flow passes it. A named life's first trial takes them in turn (so
#: each point meets its first fault on its first try), the other trials draw among them
REACHES: dict[str, tuple[str, ...]] = {
    "payment.created": tuple(FAULT_WEIGHTS),
    "payment.pay_sent": tuple(FAULT_WEIGHTS),
    "payment.submitted": tuple(FAULT_WEIGHTS),
    "payment.paid": ("cancelled", "success", "userpaying_success", "duplicate"),
    "payment.failed": ("notenough", "userpaying_fail"),
    "payment.user_paying": ("userpaying_success", "userpaying_never", "systemerror", "http500", "timeout"),
    "payment.timeout": ("userpaying_never", "late_success", "reverse_errors"),
    "payment.reversing": ("userpaying_never", "late_success", "reverse_errors", "cancelled"),
    "payment.reversed": ("userpaying_never", "reverse_errors"),
    "payment.retry": ("reverse_errors",),
    "payment.refunded": ("cancelled", "late_success"),
}


def scenario(fault: str, rnd: random.Random) -> Scenario:
    """The gateway script for one trial's fault."""
    then = rnd.choice(("success", "success", "fail"))
    if fault in ("success", "cancelled"):
        return Scenario("success") if rnd.random() < 0.6 else Scenario("userpaying", after_queries=rnd.randint(1, 3))
    if fault == "userpaying_success":
        return Scenario("userpaying", then="success", after_queries=rnd.randint(1, 4))
    if fault == "userpaying_fail":
        return Scenario("userpaying", then="fail", after_queries=rnd.randint(1, 4))
    if fault == "userpaying_never":
        return Scenario("userpaying", then="never")
    if fault == "late_success":  # lands after the kiosk gave up polling ("late success at 31 s")
        return Scenario("userpaying", then="success", after_seconds=GIVE_UP + rnd.uniform(0.004, 0.03))
    if fault in ("systemerror", "http500"):
        return Scenario(fault, then=then, after_queries=rnd.randint(1, 3))
    if fault == "timeout":  # the pay call times out; the trade lands (or fails) later, maybe after a reverse
        return Scenario("timeout", then=then, delay=rnd.uniform(CALL_TIMEOUT + 0.01, 0.4))
    if fault == "duplicate":
        return Scenario("duplicate")
    if fault == "notenough":
        return Scenario("notenough")
    if fault == "reverse_errors":
        kind = rnd.choice(("userpaying", "timeout"))
        delay = rnd.uniform(CALL_TIMEOUT + 0.01, 0.3) if kind == "timeout" else 0.0
        return Scenario(kind, then="never" if kind == "userpaying" else then, delay=delay,
                        reverse_errors=rnd.randint(1, 2))
    raise ValueError(f"unknown fault {fault!r}")


def wechat_code(rnd: random.Random) -> str:
    """A fresh WeChat payment code (18 digits, prefix 10-15) that the kiosk reads as one: a few of
    these shapes are also valid resident ID numbers, which the scanner rules refuse as payment."""
    while True:
        code = f"1{rnd.randrange(6)}" + "".join(rnd.choice("0123456789") for _ in range(16))
        read = classify(code)
        if isinstance(read, PaymentCode) and read.channel == "wechat":
            return code


def payment_crashpoints() -> list[str]:
    """Every crashpoint of ``lockers/payments.py``: the literal names plus ``payment.{state}`` for
    every state a transition can enter, so a point added there is exercised here without a list."""
    names: set[str] = set()
    tree = ast.parse((REPO / "lockers" / "payments.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "crashpoint" and node.args):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names.add(arg.value)
        elif isinstance(arg, ast.JoinedStr):
            head = "".join(v.value for v in arg.values if isinstance(v, ast.Constant))
            names.update(f"{head}{state}" for targets in TRANSITIONS.values() for state in targets)
    return sorted(names)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


@dataclass
class Options:
    trials: int = 5000
    per_point: int = 3
    lanes: int = 4
    seed: int = 0
    kill_window: float = 0.5  # random kills fall within this many seconds of the fork
    early_share: float = 0.2  # this share within the first EARLY seconds (start-up, reconcile)
    early: float = 0.05
    random_share: float = 0.5  # share of lives (besides named ones) that get a random kill
    life_trials: int = 8
    named_trials: int = 3
    retry_share: float = 0.15  # trials that pay again for a service an earlier life left unpaid
    life_timeout: float = 60.0  # a life that runs longer has hung: a violation
    max_named_tries: int = 40
    sabotage: str | None = None  # every life does this damage (to prove the checks can fail)
    workdir: Path | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> Options:
        options = cls(
            trials=_env_int("PK_PAY_TRIALS", 5000),
            per_point=_env_int("PK_PAY_PER_POINT", 3),
            lanes=max(1, _env_int("PK_PAY_LANES", min(8, 3 * (os.cpu_count() or 2) + 2))),
            seed=_env_int("PK_PAY_SEED", random.SystemRandom().randrange(2 ** 31)),
        )
        for key, value in overrides.items():
            setattr(options, key, value)
        return options


# -- the gateway's clock ---------------------------------------------------------------------------------

_ORDER_NO = re.compile(rb"<out_trade_no>(?:<!\[CDATA\[)?([A-Za-z0-9_\-|*@]{1,32})")


class GatewayClock:
    """Wall-clock arrival times of pay and reverse requests per order, taken in the gateway's own
    handlers (wrapped on the instance; the simulator file is not changed), and the pay requests still
    held (the ``timeout`` scenario answers late): the end waits for them to land."""

    def __init__(self, running: Any) -> None:
        self.pay_at: dict[str, float] = {}
        self.reverse_at: dict[str, list[float]] = {}
        self.held = 0
        gateway = getattr(running, "gateway", None)
        self.available = all(callable(getattr(gateway, name, None)) for name in ("micropay", "reverse"))
        if self.available:
            self._wrap(gateway)

    def _wrap(self, gateway: Any) -> None:
        micropay, reverse = gateway.micropay, gateway.reverse

        async def timed_micropay(body: bytes) -> tuple[int, bytes]:
            order_no = _order_no(body)
            if order_no:
                self.pay_at.setdefault(order_no, time.time())
            self.held += 1
            try:
                return await micropay(body)
            finally:
                self.held -= 1

        async def timed_reverse(body: bytes) -> tuple[int, bytes]:
            order_no = _order_no(body)
            if order_no:
                self.reverse_at.setdefault(order_no, []).append(time.time())
            return await reverse(body)

        gateway.micropay, gateway.reverse = timed_micropay, timed_reverse

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until no pay request is held (or ``timeout``); without the wrapper, the longest delay."""
        if not self.available:
            await asyncio.sleep(0.5)
            return
        deadline = time.monotonic() + timeout
        while self.held and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


def _order_no(body: bytes) -> str | None:
    found = _ORDER_NO.search(body)
    return found.group(1).decode() if found else None


# -- the checks ------------------------------------------------------------------------------------------


def read_lane(db: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The lane's payment orders and services (no life is running). A life killed before the schema
    was created left no tables: nothing to read yet. Opened read-write: after a kill -9 the WAL may
    need recovery, which a read-only connection cannot do ("attempt to write a readonly database");
    only SELECTs are run, and the next life would recover the same way."""
    if not db.exists():
        return [], {}
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return (_rows(conn, "SELECT out_trade_no, purpose, reference, state, reason, submitted_at"
                            " FROM payment_orders ORDER BY id"),
                {r["reference"]: r for r in _rows(conn, "SELECT * FROM pk_services")})
    finally:
        conn.close()


def _rows(conn: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    try:
        return [dict(r) for r in conn.execute(sql)]
    except sqlite3.OperationalError as err:
        if "no such table" not in str(err):
            raise
        return []


def check_money(orders: list[dict[str, Any]], services: dict[str, dict[str, Any]],
                ledger: dict[str, tuple[int, int]], *, final: bool) -> list[str]:
    """The three T-F1 invariants over one station's orders and services and the gateway's ledger
    (order number -> (charges, refunds)). ``final``: after the last clean reconcile, an open order
    is itself a violation and no longer excuses a kept charge."""
    problems: list[str] = []
    by_no = {o["out_trade_no"]: o for o in orders}
    kept: Counter[str] = Counter()
    for no, (charges, refunds) in ledger.items():
        if charges > 1 or refunds > charges:
            problems.append(f"order {no}: charged {charges} times, refunded {refunds} times")
        order = by_no.get(no)
        if order is None:
            problems.append(f"order {no}: known to the gateway, not to the kiosk")
            continue
        kept[order["reference"]] += max(0, charges - refunds)
    for reference, money in kept.items():
        if money > 1:
            problems.append(f"double charge: service {reference} has {money} kept charges")
    for reference, service in services.items():
        if service["state"] != "given":
            continue
        order = by_no.get(service["order_no"] or "")
        charges, refunds = ledger.get(service["order_no"] or "", (0, 0))
        if order is None or order["state"] != "paid" or order["reference"] != reference or charges - refunds != 1:
            problems.append(f"service {reference} given without a confirmed payment (order {service['order_no']}:"
                            f" kiosk {order['state'] if order else None}, gateway {charges} charged {refunds} refunded)")
    for no, (charges, refunds) in ledger.items():
        order = by_no.get(no)
        if order is None or charges - refunds < 1:
            continue
        service = services.get(order["reference"])
        if service is not None and service["state"] == "given" and service["order_no"] == no:
            continue
        if not final and (order["state"] in OPEN_STATES
                          or (order["state"] == "paid" and order["reason"] == SERVICE_REFUSED)):
            continue  # a reverse is scheduled (reconcile() drives it at start-up); the final check is strict
        problems.append(f"captured payment without a fulfilled service or a scheduled reverse: order {no}"
                        f" ({order['purpose']} {order['reference']}) is {order['state']}"
                        f" ({order['reason']}), service {service['state'] if service else None}")
    if final:
        problems += [f"order {o['out_trade_no']} still {o['state']} after the final reconcile"
                     for o in orders if o["state"] in OPEN_STATES]
    return problems


def check_reverse_timing(orders: list[dict[str, Any]], reverse_at: dict[str, list[float]]) -> tuple[int, list[str]]:
    """Every reverse reached the gateway at least ``reverse_not_before`` after the order's
    ``submitted_at`` (committed just before the pay call, so the pay call is no earlier); returns
    (reverses checked, problems)."""
    checked, problems = 0, []
    for order in orders:
        times = reverse_at.get(order["out_trade_no"])
        if not times or order["submitted_at"] is None:
            continue
        checked += 1
        early = min(times) - order["submitted_at"]
        if early < REVERSE_NOT_BEFORE:
            problems.append(f"order {order['out_trade_no']}: reversed {early * 1000:.0f} ms after the pay call"
                            f" (not before {REVERSE_NOT_BEFORE * 1000:.0f} ms)")
    return checked, problems


# -- lanes -----------------------------------------------------------------------------------------------


@dataclass
class Plan:
    kind: str  # "named" | "random" | "clean" | "final"
    trials: list[dict[str, Any]]
    crash_at: str | None = None
    point: str | None = None
    kill_after: float | None = None

    def describe(self) -> str:
        if self.kind == "named":
            return f"named crash {self.crash_at}"
        if self.kind == "random":
            return f"random kill at {self.kill_after * 1000:.0f} ms"  # type: ignore[operator]
        return self.kind


@dataclass
class Outcome:
    plan: Plan
    status: int
    killed_by_driver: bool
    seconds: float

    @property
    def fired(self) -> bool:
        return self.plan.kind == "named" and self.status == -9 and not self.killed_by_driver

    @property
    def random_kill(self) -> bool:
        return self.plan.kind == "random" and self.killed_by_driver and self.status == -9


class Lane:
    """One station database and one zygote; lives run here one after another."""

    def __init__(self, index: int, root: Path, gateway_url: str, options: Options) -> None:
        self.index = index
        self.name = f"lane{index}"
        self.station = f"L{index}"
        self.root = root / self.name
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = self.root / "station.sqlite3"
        self.log = self.root / "lives.log"
        self.gateway_url = gateway_url
        self.options = options
        self.mounts: str | None = None
        try:  # the database refuses tmpfs (T-A3); a temp dir on tmpfs still runs the process kills
            check_location(self.db)
        except StorageError:
            self.mounts = ""
        self.proc: asyncio.subprocess.Process | None = None
        self.lives = 0
        self.refs = 0

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "POSTKIOSK_CRASH_AT"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with (self.root / "zygote.log").open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.crash.payments_workload", cwd=REPO, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err)
        if await self._read(60) is None:
            raise RuntimeError(f"{self.name}: the zygote did not start; see {self.root / 'zygote.log'}")

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def _read(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            return None
        if not line:
            raise EOFError(f"{self.name}: the zygote closed its output; see {self.root / 'zygote.log'}")
        return json.loads(line)

    def trial(self, fault: str, rnd: random.Random, running: Any) -> dict[str, Any]:
        """A trial spec: a fresh service (or a retry of an unpaid one), a fresh code scripted with the fault."""
        self.refs += 1
        code = wechat_code(rnd)
        running.script(scenario(fault, rnd), auth_code=code)
        trial = {"ref": f"S{self.index}-{self.refs}", "code": code, "fault": fault,
                 "amount": rnd.randrange(100, 3000), "cancel": fault == "cancelled",
                 "retry": fault != "cancelled" and rnd.random() < self.options.retry_share}
        if self.options.sabotage == "double_charge":
            trial["code2"] = wechat_code(rnd)
            running.script(Scenario("success"), auth_code=trial["code2"])
        return trial

    async def run(self, plan: Plan) -> Outcome:
        assert self.proc is not None and self.proc.stdin is not None
        self.lives += 1
        spec = {"life": f"{self.name}/{self.lives}", "station": self.station, "db": str(self.db),
                "mounts": self.mounts, "gateway": self.gateway_url, "appid": APPID, "mch_id": MCH_ID,
                "api_key": API_KEY, "trials": plan.trials, "crash_at": plan.crash_at, "log": str(self.log),
                "sabotage": self.options.sabotage if plan.kind != "final" else None}
        self.proc.stdin.write((json.dumps(spec) + "\n").encode())
        await self.proc.stdin.drain()
        hello = await self._read(30)
        if hello is None:
            raise RuntimeError(f"{self.name}: the zygote did not fork")
        started = time.monotonic()
        wait = plan.kill_after if plan.kill_after is not None else self.options.life_timeout
        done = await self._read(wait)
        killed = done is None
        if done is None:
            os.kill(hello["pid"], signal.SIGKILL)  # still running (a zombie at worst: the zygote reaps it)
            done = await self._read(30)
            if done is None:
                raise RuntimeError(f"{self.name}: life {hello['pid']} did not die")
        assert done["pid"] == hello["pid"]
        outcome = Outcome(plan, done["status"], killed, time.monotonic() - started)
        if killed and plan.kill_after is None:
            outcome.status = -999  # hung: life_timeout passed
        return outcome

    def state(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], int, str | None]:
        """Orders, services, pay attempts started so far, and the newest payment journal row."""
        orders, services = read_lane(self.db)
        attempts = sum(s["attempts"] for s in services.values())
        row = None
        if self.db.exists():
            conn = sqlite3.connect(self.db, timeout=10)  # read-write: a killed life may leave a WAL to recover
            conn.row_factory = sqlite3.Row
            try:
                row = next(iter(_rows(conn, "SELECT kind FROM events WHERE kind LIKE 'payment%'"
                                            " ORDER BY id DESC LIMIT 1")), None)
            finally:
                conn.close()
        return orders, services, attempts, row["kind"] if row else None


class Schedule:
    """Crash plans for the whole run: named points until each fired ``per_point`` times, the rest
    random kills or clean lives, until ``trials`` pay attempts have started."""

    def __init__(self, options: Options, points: list[str]) -> None:
        self.options = options
        self.rnd = random.Random(options.seed)
        self.fired = {p: 0 for p in points}
        self.tries = {p: 0 for p in points}
        self.pending: Counter[str] = Counter()  # named plans out in lives right now
        self.attempts: dict[str, int] = {}  # per lane
        self.faults: Counter[str] = Counter()

    def named_left(self) -> list[str]:
        o = self.options
        return [p for p in self.fired if self.fired[p] + self.pending[p] < o.per_point and self.tries[p] < o.max_named_tries]

    def done(self) -> bool:
        unfinished = [p for p in self.fired if self.fired[p] < self.options.per_point
                      and self.tries[p] < self.options.max_named_tries]
        return not unfinished and not self.pending and sum(self.attempts.values()) >= self.options.trials

    def fault(self, rnd: random.Random, among: tuple[str, ...] | None = None) -> str:
        names = list(among or FAULT_WEIGHTS)
        fault = rnd.choices(names, [FAULT_WEIGHTS[n] for n in names])[0]
        self.faults[fault] += 1
        return fault

    def next(self, lane: Lane, running: Any) -> Plan | None:
        o, rnd = self.options, self.rnd
        named = self.named_left()
        if not named and sum(self.attempts.values()) >= o.trials:
            return None  # a named plan still out may come back unfired: its lane plans it again
        if named and (sum(self.attempts.values()) >= o.trials or rnd.random() < 0.3):
            point = min(named, key=lambda p: (self.fired[p] + self.pending[p], self.tries[p], rnd.random()))
            self.tries[point] += 1
            self.pending[point] += 1
            n = 1 if self.tries[point] == 1 else rnd.choice((1, 1, 1, 2))
            reaches = REACHES.get(point, tuple(FAULT_WEIGHTS))
            first = reaches[(self.tries[point] - 1) % len(reaches)]
            self.faults[first] += 1
            trials = [lane.trial(first, rnd, running)]
            trials += [lane.trial(self.fault(rnd, reaches), rnd, running) for _ in range(o.named_trials - 1)]
            return Plan("named", trials, crash_at=f"{point}:{n}", point=point)
        trials = [lane.trial(self.fault(rnd), rnd, running) for _ in range(o.life_trials)]
        if rnd.random() < o.random_share:
            at = rnd.uniform(0.0, o.early if rnd.random() < o.early_share else o.kill_window)
            return Plan("random", trials, kill_after=at)
        return Plan("clean", trials)

    def record(self, outcome: Outcome) -> None:
        point = outcome.plan.point
        if point is not None:
            self.pending[point] -= 1
            if self.pending[point] <= 0:
                del self.pending[point]
            if outcome.fired:
                self.fired[point] += 1


@dataclass
class Summary:
    seed: int
    lanes: int
    trials: int = 0
    lives: int = 0
    random_kills: int = 0
    named: dict[str, int] = field(default_factory=dict)
    clean_stops: int = 0
    unreached: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    landed_after: Counter[str] = field(default_factory=Counter)
    reverses_checked: int | None = None  # None: the gateway gave no timestamps, the check was skipped
    orders: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds: this process (gateway, checks), lives
    seconds: float = 0.0
    workdir: str = ""

    def line(self) -> str:
        named = " ".join(f"{p.removeprefix('payment.')}={n}" for p, n in sorted(self.named.items()))
        timing = "skipped (no gateway timestamps)" if self.reverses_checked is None else str(self.reverses_checked)
        return (f"T-F1 kill -9 payments: trials={self.trials} lives={self.lives} orders={self.orders}"
                f" random_kills={self.random_kills} named_kills={sum(self.named.values())} [{named}]"
                f" clean_stops={self.clean_stops} reverse_timing_checked={timing}"
                f" violations={len(self.violations)} unreached={self.unreached or 0} lanes={self.lanes}"
                f" seed={self.seed} wall={self.seconds:.1f}s")

    def details(self) -> str:
        faults = " ".join(f"{k}={v}" for k, v in sorted(self.faults.items()))
        landed = " ".join(f"{k.removeprefix('payment_')}={n}" for k, n in self.landed_after.most_common())
        cpu = " ".join(f"{k}={v:.0f}s" for k, v in self.cpu.items())
        return f"faults: {faults}; random kills landed after: {landed}; cpu: {cpu}"


class Driver:
    """``summary = await Driver(options).run()``: owns the gateway, the lanes and the working directory."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._tmp = options.workdir is None
        self.root = options.workdir or Path(tempfile.mkdtemp(prefix="postkiosk-paycrash-"))
        self.root.mkdir(parents=True, exist_ok=True)

    async def run(self) -> Summary:
        o = self.options
        summary = Summary(seed=o.seed, lanes=o.lanes, workdir=str(self.root))
        started, cpu = time.monotonic(), os.times()
        running = await run_pay_gateway(appid=APPID, mch_id=MCH_ID, api_key=API_KEY)
        _no_delay(running)
        clock = GatewayClock(running)
        summary.reverses_checked = 0 if clock.available else None
        lanes = [Lane(i, self.root, running.url, o) for i in range(o.lanes)]
        schedule = Schedule(o, payment_crashpoints())
        failed = asyncio.Event()
        try:
            await asyncio.gather(*(lane.start() for lane in lanes))
            await asyncio.gather(*(self._work(lane, schedule, running, summary, failed) for lane in lanes))
            if not failed.is_set():
                await self._finish(lanes, running, clock, summary)
        finally:
            await asyncio.gather(*(lane.close() for lane in lanes), return_exceptions=True)
            await running.close()
        summary.seconds = time.monotonic() - started
        end = os.times()  # the zygotes are reaped by now: their lives count as our children
        summary.cpu = {"driver": end.user + end.system - cpu.user - cpu.system,
                       "lives": end.children_user + end.children_system - cpu.children_user - cpu.children_system}
        summary.named = dict(schedule.fired)
        summary.faults = dict(schedule.faults)
        summary.trials = sum(schedule.attempts.values())
        summary.orders = len(running.orders)
        if not summary.violations:
            summary.unreached = [p for p, n in schedule.fired.items() if n < o.per_point]
        if self._tmp and not summary.violations and not summary.unreached:
            shutil.rmtree(self.root, ignore_errors=True)
        return summary

    async def _work(self, lane: Lane, schedule: Schedule, running: Any, summary: Summary,
                    failed: asyncio.Event) -> None:
        while not failed.is_set():
            plan = schedule.next(lane, running)
            if plan is None:
                return
            outcome = await lane.run(plan)
            schedule.record(outcome)
            orders, services, attempts, last = lane.state()
            schedule.attempts[lane.name] = attempts
            summary.lives += 1
            summary.clean_stops += outcome.status == 0
            if outcome.random_kill:
                summary.random_kills += 1
                summary.landed_after[last or "nothing"] += 1
            problems = self._problems(outcome, lane)
            problems += check_money(orders, services, ledger(running, lane.station), final=False)
            if problems:
                summary.violations.append(f"{lane.name} life {lane.lives} ({plan.describe()}, master seed"
                                          f" {self.options.seed}): " + "; ".join(problems[:10])
                                          + f"\n    log: {lane.log}")
                failed.set()

    def _problems(self, outcome: Outcome, lane: Lane) -> list[str]:
        if outcome.status == -999:
            return [f"the life hung for {self.options.life_timeout:.0f} s and was killed"]
        if outcome.status not in (0, -9):
            return [f"the life ended with exit code {outcome.status} (unexpected exception); see {lane.log}"]
        return []

    async def _finish(self, lanes: list[Lane], running: Any, clock: GatewayClock, summary: Summary) -> None:
        """Let held answers land, reconcile each lane without a crash, then check strictly."""
        await clock.drain()
        for _ in range(3):
            outcomes = await asyncio.gather(*(lane.run(Plan("final", [])) for lane in lanes))
            for lane, outcome in zip(lanes, outcomes):
                problems = self._problems(outcome, lane)
                if problems:
                    summary.violations.append(f"{lane.name} final reconcile: " + "; ".join(problems))
            if not any(o["state"] in OPEN_STATES for lane in lanes for o in read_lane(lane.db)[0]):
                break
        await clock.drain()
        checked = 0
        for lane in lanes:
            orders, services = read_lane(lane.db)
            problems = check_money(orders, services, ledger(running, lane.station), final=True)
            if clock.available:
                n, late = check_reverse_timing(orders, clock.reverse_at)
                checked += n
                problems += late
            if problems:
                summary.violations.append(f"{lane.name} after the final reconcile (master seed {self.options.seed}): "
                                          + "; ".join(problems[:10]) + (f" (+{len(problems) - 10} more)"
                                                                        if len(problems) > 10 else ""))
        summary.reverses_checked = checked if clock.available else None


def _no_delay(running: Any) -> None:
    """TCP_NODELAY on the simulator's listening socket (accepted sockets inherit it): uvicorn writes
    a response's head and body separately, and with Nagle plus the client's delayed ACK every
    request takes 40 ms, which would dwarf the scaled 20 ms query interval."""
    sock = getattr(running, "_sock", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def ledger(running: Any, station: str) -> dict[str, tuple[int, int]]:
    """The gateway's money per order of one station: order number -> (charges, refunds)."""
    prefix = f"{station}_"
    return {no: (running.charges(no), order.refunds) for no, order in list(running.orders.items())
            if no.startswith(prefix)}


def main() -> int:
    summary = asyncio.run(Driver(Options.from_env()).run())
    print(summary.line())
    print(summary.details())
    for violation in summary.violations:
        print("VIOLATION", violation)
    if summary.violations or summary.unreached:
        print(f"working directory kept: {summary.workdir}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
