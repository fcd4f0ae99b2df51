"""The kill -9 driver (T-A1): kill the real service at every crashpoint and at random moments,
restart it, let it reconcile, check the custody invariants after every kill. The lives deposit, pick up,
refuse, retrieve, open doors for a technician, and handle outbound mail (drop-offs, collections).

Processes, per lane (``POSTKIOSK_CRASH_LANES``, default: CPU cores + 1, at most 8; a life mostly
waits for doors and people, so 3 lanes use about 55% of a 2-core runner):

* the wall (``tests/crash/wall.py``): the simulated Kerong CU16 boards on TCP plus the wall's HTTP
  API; it outlives every kill, as the physical wall outlives a crash of the Pi, and counts every
  unlock pulse per door;
* the zygote (``tests/crash/zygote.py``): imports the service once and forks one child per trial;
* the child: one life of the service (``tests/crash/workload.py``), killed with SIGKILL by this
  driver at a random moment, or by itself at a named crashpoint (``POSTKIOSK_CRASH_AT=name:n``).

In this process: the residents' phones (a threaded HTTP server receiving the webhook SMS and handing
codes and QR tokens to the workload) and, after every trial, the checks on the database the dead
child left behind: ``lockers.invariants.check`` (states, one parcel per compartment and one
compartment per parcel, live codes and tokens unique, outbound parcels consistent with their
postings, ``PRAGMA integrity_check``),
``check_pulses`` against the wall's pulse counters (no door opened without an intent committed
first), the journal hash chain (incrementally per trial, ``journal.verify`` in full per epoch), and
what the child itself checked right after reconciling (nothing left dangling).

Every name in ``lockers.crash.POINTS`` (plus crashpoint names found in ``lockers/custody.py`` that
POINTS does not list) must fire at least ``POSTKIOSK_CRASH_PER_POINT`` (3) times; a planned point
the workload did not reach in that trial does not count and is planned again. Random kills:
``POSTKIOSK_CRASH_RANDOM`` (2,000; 20,000 with ``DEEP=1``). The compartments fill up with
"check required" after many interrupted deposits (no product path clears them), so after
``Options.epoch_trials`` trials or when fewer than ``Options.min_free`` compartments are free the
lane starts an epoch: a new database (a copy of a template with two couriers), an emptied wall
(pulse counters are kept, a baseline is subtracted), ``Options.stock`` parcels stored and
``Options.stock_outbound`` outbound parcels dropped off.

``POSTKIOSK_CRASH_SEED`` (with the same ``POSTKIOSK_CRASH_LANES``) fixes the master seed: each
lane's schedule and every trial seed derive from it; timing does not, so a replay is close, not
exact. A failure reports the seed, lane, epoch, trial spec and crash plan and keeps the working
directory (the epoch's database, the children's log, the wall and zygote logs).
``POSTKIOSK_CRASH_KEEP_GOING=1`` records violations and carries on in a new epoch (exploration).

``python -m tests.crash.driver`` runs the whole thing outside pytest and prints the summary.
"""

from __future__ import annotations

import ast
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lockers import accounts, crash, invariants, journal
from lockers.db import check_location, connect
from lockers.errors import StorageError
from lockers.keys import DeviceKeys

REPO = Path(__file__).resolve().parents[2]
FLOWS = ("deposit", "pickup", "retrieve", "technician")  # tracker kinds: the f-string crashpoints' prefixes
#: crashpoint prefix -> the workload focus (``workload.FOCUS_WEIGHTS``) whose lives reach it. A resident's
#: drop-off passes the generic points as kind "deposit", a courier's collection as kind "retrieve"; the
#: points named after them only the outbound flows reach.
FOCUS_OF = {"deposit": "deposit", "pickup": "pickup", "retrieve": "retrieve", "technician": "technician",
            "dropoff": "dropoff", "collect": "collect"}

EXIT_NAMES = {0: "clean stop", -9: "SIGKILL", 70: "unexpected exception"}


def crashpoint_names() -> list[str]:
    """``lockers.crash.POINTS`` plus every crashpoint named in ``lockers/custody.py`` (f-strings over
    the flow kind are expanded), so a point added without being listed is still exercised."""
    names = set(crash.POINTS)
    tree = ast.parse((REPO / "lockers" / "custody.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "crashpoint" and node.args):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names.add(arg.value)
        elif isinstance(arg, ast.JoinedStr):
            tail = "".join(v.value for v in arg.values if isinstance(v, ast.Constant))
            if len(arg.values) == 2 and isinstance(arg.values[0], ast.FormattedValue):
                names.update(f"{flow}{tail}" for flow in FLOWS)
    return sorted(names)


def focus_for(point: str) -> str:
    """The workload focus a named crash plan at ``point`` runs with."""
    prefix = point.split(".")[0]
    if prefix not in FOCUS_OF:
        raise ValueError(f"crashpoint {point!r}: no workload focus reaches {prefix}.* (add it to FOCUS_OF)")
    return FOCUS_OF[prefix]


def unlisted_crashpoints() -> list[str]:
    return sorted(set(crashpoint_names()) - set(crash.POINTS))


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


@dataclass
class Options:
    random_kills: int = 2000
    per_point: int = 3
    lanes: int = 3  # lives mostly wait for doors and people: one lane more than cores keeps them busy
    seed: int = 0
    kill_window: float = 0.35  # random kills fall within this many seconds of the child's start
    early_share: float = 0.2  # this share of them within the first EARLY seconds (start-up, reconciliation)
    early: float = 0.05
    epoch_trials: int = 150
    min_free: int = 8
    stock: int = 6  # parcels stored (no kill) at the start of each epoch
    stock_outbound: int = 3  # and outbound parcels dropped off, for couriers to collect
    sms_failure: float = 0.1  # share of webhook SMS the phone refuses (503): notices are retried
    named_steps: int = 40
    random_steps: int = 200
    named_timeout: float = 30.0
    max_named_tries: int = 40  # per point; more without firing means the workload cannot reach it
    keep_going: bool = False  # after a violation: record it, start a new epoch, carry on (exploration)
    sabotage: str | None = None  # each lane's first trial does this damage (to prove a run can fail)
    workdir: Path | None = None

    @classmethod
    def from_env(cls, **overrides: Any) -> Options:
        deep = os.environ.get("DEEP", "") not in ("", "0")
        options = cls(
            random_kills=_env_int("POSTKIOSK_CRASH_RANDOM", 20000 if deep else 2000),
            per_point=_env_int("POSTKIOSK_CRASH_PER_POINT", 3),
            lanes=max(1, _env_int("POSTKIOSK_CRASH_LANES", min(8, (os.cpu_count() or 2) + 1))),
            seed=_env_int("POSTKIOSK_CRASH_SEED", random.SystemRandom().randrange(2 ** 31)),
            keep_going=os.environ.get("POSTKIOSK_CRASH_KEEP_GOING", "") not in ("", "0"),
        )
        for key, value in overrides.items():
            setattr(options, key, value)
        return options


# ---------------------------------------------------------------------------------------- phones


class Phones:
    """The residents' phones: receives the webhook SMS (``POST /<lane>/sms``), keeps the newest
    code and QR token per compartment, hands them out (``GET /<lane>/codes``). Refuses a share of
    the messages with 503 so the service's retries run too."""

    def __init__(self, failure: float, seed: int) -> None:
        self.failure = failure
        self._rnd = random.Random(seed)
        self._lock = threading.Lock()
        self.codes: dict[str, dict[str, dict[str, str]]] = {}
        self.received = 0
        self.refused = 0
        phones = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: nothing stays open
            timeout = 10

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any = None) -> None:
                data = json.dumps(body if body is not None else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                lane, _, what = self.path.strip("/").partition("/")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if what != "sms":
                    self._answer(404)
                    return
                message = json.loads(body)
                with phones._lock:
                    if phones._rnd.random() < phones.failure:
                        phones.refused += 1
                        self._answer(503, {"error": "try again"})
                        return
                    phones.received += 1
                    if message.get("template") == "pickup_notice":
                        params = message["params"]
                        phones.codes.setdefault(lane, {})[params["compartment"]] = {
                            "code": params["code"], "token": params["link"], "phone": message["phone"]}
                self._answer(200, {"ok": True})

            def do_GET(self) -> None:
                lane, _, what = self.path.strip("/").partition("/")
                if what != "codes":
                    self._answer(404)
                    return
                with phones._lock:
                    codes = {label: dict(entry) for label, entry in phones.codes.get(lane, {}).items()}
                self._answer(200, codes)

        class Server(ThreadingHTTPServer):
            daemon_threads = False  # server_close() waits for every handler

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a child killed mid-request is normal here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="crash-phones", daemon=True)
        self._thread.start()

    def prune(self, lane: str, keep: Callable[[str], bool]) -> None:
        """Forget codes of parcels that are no longer waiting (a resident deletes the message)."""
        with self._lock:
            entries = self.codes.get(lane, {})
            for label in [label for label, entry in entries.items() if not keep(entry["code"])]:
                del entries[label]

    def forget(self, lane: str) -> None:
        with self._lock:
            self.codes.pop(lane, None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


# ---------------------------------------------------------------------------------------- processes


class Lines:
    """JSON lines from a pipe, with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.fd = stream.fileno()
        self.buf = b""

    def read(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise EOFError("the process closed its output")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def _spawn(module: str, log: Path) -> tuple[subprocess.Popen[bytes], Lines]:
    env = {k: v for k, v in os.environ.items() if k != "POSTKIOSK_CRASH_AT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", module], cwd=REPO, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, bufsize=0)
    return proc, Lines(proc.stdout)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Close its stdin (both helpers exit on EOF), then SIGKILL if it does not go."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    finally:
        if proc.stdout:
            proc.stdout.close()


def connect_after_kill(db: Path) -> sqlite3.Connection:
    """The station's database as the checks read it, between lives (no child alive). Read-write on
    purpose: after a kill -9 mid-write the WAL may need recovery, which a read-only connection
    cannot do ("attempt to write a readonly database"); the checks only run SELECTs."""
    return sqlite3.connect(db, timeout=10)


def _http(url: str, method: str = "GET", timeout: float = 10.0) -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


# ---------------------------------------------------------------------------------------- trials


@dataclass
class Plan:
    kind: str  # "named" | "random" | "stock" | "sabotage" | "start"
    seed: int
    steps: int
    crash_at: str | None = None
    point: str | None = None
    focus: str | None = None
    kill_after: float | None = None  # random: seconds after the fork
    sabotage: str | None = None
    timeout: float = 30.0
    actors: int | None = None  # None: the life decides (one, or two flows at once)
    outbound: int = 0  # stock: drop-offs stored after the deposits

    def describe(self) -> str:
        if self.kind == "named":
            return f"named crash {self.crash_at} (focus {self.focus})"
        if self.kind == "random":
            return f"random kill at {self.kill_after * 1000:.0f} ms"
        return self.kind + (f" {self.sabotage}" if self.sabotage else "")


@dataclass
class Outcome:
    plan: Plan
    pid: int
    status: int
    killed_by_driver: bool
    timed_out: bool
    seconds: float

    @property
    def fired(self) -> bool:
        """A named crashpoint killed the child (it was not us)."""
        return self.plan.kind == "named" and self.status == -9 and not self.killed_by_driver

    @property
    def random_kill(self) -> bool:
        return self.plan.kind == "random" and self.killed_by_driver and self.status == -9


class Violation(AssertionError):
    pass


class Lane:
    """One wall, one zygote, one database (per epoch): trials run here one after another."""

    def __init__(self, index: int, root: Path, phones: Phones, options: Options) -> None:
        self.index = index
        self.name = f"lane{index}"
        self.root = root / self.name
        self.root.mkdir(parents=True, exist_ok=True)
        self.phones = phones
        self.options = options
        self.wall: subprocess.Popen[bytes] | None = None
        self.zygote: subprocess.Popen[bytes] | None = None
        self.epoch = 0
        self.epoch_trials = 0
        self.trials = 0
        self.db: Path | None = None
        self.keys: DeviceKeys | None = None
        self.baseline: dict[str, int] = {}
        self.labels: dict[tuple[int, int], str] = {}
        self.mounts: str | None = None
        self._journal = (0, journal.GENESIS)
        self.child_log = self.root / "children.log"
        self.findings = self.root / "findings.jsonl"
        self._findings_seen = 0
        self.free = 32
        self.last_event: str | None = None  # the newest journal row after the last trial

    # -- processes --------------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the wall and the zygote (both import for about a second: lanes start in parallel)."""
        self.wall, self._wall_lines = _spawn("tests.crash.wall", self.root / "wall.log")
        self.zygote, self.lines = _spawn("tests.crash.zygote", self.root / "zygote.log")

    def start(self) -> None:
        """Wait until both are ready."""
        info = self._wall_lines.read(60)
        if info is None:
            raise RuntimeError(f"{self.name}: the wall did not start; see {self.root / 'wall.log'}")
        self.bus, self.wall_http = info["bus"], f"http://127.0.0.1:{info['http']}"
        if self.lines.read(60) is None:
            raise RuntimeError(f"{self.name}: the zygote did not start; see {self.root / 'zygote.log'}")
        from tests.crash.workload import station_config

        cfg = station_config({"db": self.root / "x.sqlite3", "sms_url": "http://x", "bus": self.bus})
        for spec in cfg.layout():
            self.labels[(spec.board, spec.channel)] = spec.label
        try:  # T-A3 refuses tmpfs: a CI runner whose temp dir is tmpfs still runs T-A1 (process kills only)
            check_location(self.root / "x.sqlite3")
        except StorageError:
            self.mounts = ""

    def close(self) -> None:
        _stop(self.zygote)
        _stop(self.wall)

    # -- epochs -----------------------------------------------------------------------------

    def _template(self) -> Path:
        """A closed database with the schema and two couriers (Argon2 hashing is slow: do it once)."""
        template = self.root / "template.sqlite3"
        if not template.exists():
            conn = connect(template, mounts=self.mounts)
            try:
                conn.execute("BEGIN IMMEDIATE")
                for n, carrier in ((1, "SF"), (2, "YTO")):
                    accounts.create_courier(conn, login=f"1000000{n}", name=f"快递员{n}", carrier=carrier,
                                            pin="24681357", now=time.time())
                conn.execute("COMMIT")
            finally:
                conn.close()
            assert not template.with_name(template.name + "-wal").exists(), "the template must be checkpointed"
        return template

    def new_epoch(self, *, verify: bool = True) -> None:
        """A new database (a copy of the closed template), an emptied wall, a few parcels stored.
        ``verify``: check the whole journal chain of the epoch that ends (False after sabotage)."""
        if self.db is not None:
            if verify:
                self._verify_journal_full()
            shutil.rmtree(self.db.parent, ignore_errors=True)
        self.epoch += 1
        self.epoch_trials = 0
        folder = self.root / f"epoch{self.epoch:04d}"
        folder.mkdir()
        self.db = folder / "postkiosk.sqlite3"
        shutil.copyfile(self._template(), self.db)
        self.keys = DeviceKeys.load_or_create(folder / "device.key")
        _http(self.wall_http + "/crash/quiet")
        self.baseline = self._pulses(_http(self.wall_http + "/crash/reset", "POST"))
        self.phones.forget(self.name)
        self._journal = (0, journal.GENESIS)
        if self.options.stock:  # 0: the epoch starts with an empty wall (no outbound parcels either)
            seed = random.Random(self.options.seed * 7919 + self.index * 104729 + self.epoch).randrange(2 ** 32)
            outcome, _ = self.run(Plan("stock", seed, self.options.stock, focus="stock",
                                       outbound=self.options.stock_outbound))
            problems = self.check(outcome)
            if problems:
                raise Violation(f"{self.name} epoch {self.epoch}: stocking the wall: " + "; ".join(problems))

    def pulses(self) -> dict[str, int]:
        """Unlock pulses per compartment in this epoch, as the wall counted them."""
        state = _http(self.wall_http + "/crash/quiet")
        return {label: n - self.baseline.get(label, 0) for label, n in self._pulses(state).items()}

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the epoch's database (between trials: no child is alive)."""
        assert self.db is not None
        conn = connect_after_kill(self.db)
        try:
            return [tuple(row) for row in conn.execute(sql, args)]
        finally:
            conn.close()

    def _pulses(self, state: dict[str, Any]) -> dict[str, int]:
        pulses = {}
        for bank in state["banks"]:
            for board in bank["boards"]:
                for door in board["doors"]:
                    pulses[self.labels[(board["address"], door["channel"])]] = door["pulses"]
        return pulses

    # -- one trial --------------------------------------------------------------------------

    def spec(self, plan: Plan) -> dict[str, Any]:
        self.trials += 1
        self.epoch_trials += 1
        return {"trial": self.trials, "seed": plan.seed, "steps": plan.steps, "crash_at": plan.crash_at,
                "focus": plan.focus, "sabotage": plan.sabotage, "actors": plan.actors, "outbound": plan.outbound,
                "db": str(self.db), "mounts": self.mounts,
                "bus": self.bus, "wall_http": self.wall_http, "sms_url": f"{self.phones.url}/{self.name}/sms",
                "phone_url": f"{self.phones.url}/{self.name}/", "log": str(self.child_log),
                "findings": str(self.findings)}

    def run(self, plan: Plan) -> tuple[Outcome, dict[str, Any]]:
        spec = self.spec(plan)
        assert self.zygote is not None and self.zygote.stdin is not None
        started = time.monotonic()
        self.zygote.stdin.write((json.dumps(spec) + "\n").encode())
        hello = self.lines.read(30)
        if hello is None:
            raise RuntimeError(f"{self.name}: the zygote did not fork")
        pid = hello["pid"]
        killed = timed_out = False
        wait = plan.kill_after if plan.kill_after is not None else plan.timeout
        done = self.lines.read(max(0.0, wait - (time.monotonic() - started)))
        if done is None:
            os.kill(pid, signal.SIGKILL)  # still running (a zombie at worst: the zygote reaps it later)
            killed, timed_out = True, plan.kill_after is None
            done = self.lines.read(30)
            if done is None:
                raise RuntimeError(f"{self.name}: child {pid} did not die")
        assert done["pid"] == pid
        outcome = Outcome(plan, pid, done["status"], killed, timed_out, time.monotonic() - started)
        return outcome, spec

    # -- checks -----------------------------------------------------------------------------

    def check(self, outcome: Outcome) -> list[str]:
        problems: list[str] = []
        if outcome.status not in (0, -9):
            problems.append(f"child ended with {outcome.status} ({EXIT_NAMES.get(outcome.status, 'unexpected')});"
                            f" see {self.child_log}")
        if self.findings.exists():
            with self.findings.open("rb") as fh:
                fh.seek(self._findings_seen)
                for line in fh:
                    if line.endswith(b"\n"):
                        self._findings_seen += len(line)
                        finding = json.loads(line)
                        problems += [f"after reconciliation (trial {finding['trial']}): {p}"
                                     for p in finding["problems"]]
        state = _http(self.wall_http + "/crash/quiet")
        if state.get("clients"):
            problems.append("the wall still has a client connected after the child died")
        pulses = {label: n - self.baseline.get(label, 0) for label, n in self._pulses(state).items()}
        assert self.db is not None
        free, live = 0, set()
        try:
            conn = connect_after_kill(self.db)
            conn.row_factory = sqlite3.Row
            try:
                problems += invariants.check(conn)
                problems += invariants.check_pulses(conn, pulses)
                problems += self._verify_journal(conn)
                last = conn.execute("SELECT kind FROM events ORDER BY id DESC LIMIT 1").fetchone()
                self.last_event = last[0] if last else None
                free = conn.execute("SELECT COUNT(*) FROM compartments WHERE state = 'free'").fetchone()[0]
                live = {bytes(r[0]) for r in conn.execute(
                    "SELECT code_hmac FROM parcels WHERE state IN ('stored', 'picking_up') AND code_hmac IS NOT NULL")}
            finally:
                conn.close()
        except (sqlite3.Error, UnicodeDecodeError) as err:  # a damaged file's errors may not even decode
            problems.append(f"the database cannot be read: {type(err).__name__}: {err}")
        keys = self.keys
        assert keys is not None
        self.phones.prune(self.name, lambda code: keys.mac("code", code) in live)
        self.free = free
        return problems

    def _verify_journal(self, conn: sqlite3.Connection) -> list[str]:
        last_id, last_hash = self._journal
        top = conn.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0
        if top < last_id:
            return [f"journal: rows {top + 1}..{last_id} vanished"]
        for row in conn.execute("SELECT id, at, kind, actor, compartment, parcel_id, detail, prev_hash, hash"
                                " FROM events WHERE id > ? ORDER BY id", (last_id,)):
            if row["id"] != last_id + 1:
                return [f"journal: row {last_id + 1} is missing"]
            if row["prev_hash"] != last_hash:
                return [f"journal: row {row['id']} does not link to row {last_id}"]
            digest = journal._digest(row["prev_hash"], row["at"], row["kind"], row["actor"], row["compartment"],
                                     row["parcel_id"], row["detail"])
            if digest != row["hash"]:
                return [f"journal: row {row['id']} does not match its hash"]
            last_id, last_hash = row["id"], row["hash"]
        self._journal = (last_id, last_hash)
        return []

    def _verify_journal_full(self) -> None:
        assert self.db is not None
        conn = connect_after_kill(self.db)
        conn.row_factory = sqlite3.Row
        try:
            result = journal.verify(conn)
        finally:
            conn.close()
        if not result.ok:
            raise Violation(f"{self.name} epoch {self.epoch}: journal.verify: row {result.first_bad_id}: {result.reason}")

    def needs_new_epoch(self) -> bool:
        return self.epoch_trials >= self.options.epoch_trials or self.free < self.options.min_free


# ---------------------------------------------------------------------------------------- schedule


class Schedule:
    """One lane's share of the work: its named points (each until fired ``per_point`` times) and
    its share of random kills, interleaved so named crashes meet varied states."""

    def __init__(self, lane: int, options: Options, points: list[str]) -> None:
        self.options = options
        self.rnd = random.Random(options.seed * 1000 + lane)
        self.points = points[lane::options.lanes]
        self.fired = {p: 0 for p in self.points}
        self.tries = {p: 0 for p in self.points}
        share, extra = divmod(options.random_kills, options.lanes)
        self.random_goal = share + (1 if lane < extra else 0)
        self.random_kills = 0
        self.sabotaged = False

    def _named_left(self) -> list[str]:
        return [p for p in self.points if self.fired[p] < self.options.per_point
                and self.tries[p] < self.options.max_named_tries]

    def next(self) -> Plan | None:
        if self.options.sabotage and not self.sabotaged:
            self.sabotaged = True
            return Plan("sabotage", 0, 0, sabotage=self.options.sabotage)
        named = self._named_left()
        named_weight = sum(self.options.per_point - self.fired[p] for p in named)
        random_left = self.random_goal - self.random_kills
        if not named and random_left <= 0:
            return None
        seed = self.rnd.randrange(2 ** 32)
        o = self.options
        if named and (random_left <= 0 or self.rnd.random() < 3 * named_weight / (3 * named_weight + random_left)):
            point = min(named, key=lambda p: (self.fired[p], self.tries[p], self.rnd.random()))
            self.tries[point] += 1
            n = self.rnd.choice((1, 1, 1, 2, 3))  # mostly the first pass, sometimes a later one
            return Plan("named", seed, o.named_steps, crash_at=f"{point}:{n}", point=point,
                        focus=focus_for(point), timeout=o.named_timeout)
        if self.rnd.random() < o.early_share:
            at = self.rnd.uniform(0.0, o.early)
        else:
            at = self.rnd.uniform(0.0, o.kill_window)
        return Plan("random", seed, o.random_steps, kill_after=at)

    def record(self, outcome: Outcome) -> None:
        if outcome.fired and outcome.plan.point in self.fired:
            self.fired[outcome.plan.point] += 1
        elif outcome.random_kill:
            self.random_kills += 1


# ---------------------------------------------------------------------------------------- driver


@dataclass
class Summary:
    seed: int
    lanes: int
    trials: int = 0
    random_kills: int = 0
    named: dict[str, int] = field(default_factory=dict)
    unreached: list[str] = field(default_factory=list)
    clean_stops: int = 0
    timeouts: int = 0
    epochs: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sms_received: int = 0
    sms_refused: int = 0
    unlisted_points: list[str] = field(default_factory=list)
    workdir: str = ""
    seconds_by_kind: dict[str, float] = field(default_factory=dict)  # trial time (fork to death) per plan kind
    trials_by_kind: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds: driver, walls, service lives
    landed_after: dict[str, int] = field(default_factory=dict)  # random kills by the newest journal row

    def timing(self) -> str:
        kinds = " ".join(f"{k}={self.trials_by_kind[k]}x{self.seconds_by_kind[k] / self.trials_by_kind[k] * 1000:.0f}ms"
                         for k in sorted(self.trials_by_kind))
        cpu = " ".join(f"{k}={v:.0f}s" for k, v in self.cpu.items())
        landed = " ".join(f"{k}={n}" for k, n in sorted(self.landed_after.items(), key=lambda kv: -kv[1]))
        return f"trial kinds: {kinds}; cpu: {cpu}; random kills landed after: {landed}"

    def line(self) -> str:
        named = " ".join(f"{p}={n}" for p, n in sorted(self.named.items()))
        return (f"T-A1 kill -9: trials={self.trials} random_kills={self.random_kills}"
                f" named_kills={sum(self.named.values())} [{named}] clean_stops={self.clean_stops}"
                f" timeouts={self.timeouts} epochs={self.epochs} violations={len(self.violations)}"
                f" unreached={self.unreached or 0} lanes={self.lanes} seed={self.seed}"
                f" wall={self.seconds:.1f}s")


class Driver:
    """Owns every process and the phones; ``with Driver(options) as d: d.run()``."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._tmp: Path | None = None
        if options.workdir is None:
            self._tmp = options.workdir = Path(tempfile.mkdtemp(prefix="postkiosk-crash-"))
        self.root = options.workdir
        self.phones: Phones | None = None
        self.lanes: list[Lane] = []
        self.keep = False  # keep the working directory (after a failure)
        self._stop = threading.Event()

    def __enter__(self) -> Driver:
        try:
            self.phones = Phones(self.options.sms_failure, self.options.seed)
            for index in range(self.options.lanes):
                lane = Lane(index, self.root, self.phones, self.options)
                self.lanes.append(lane)
                lane.spawn()
            for lane in self.lanes:
                lane.start()
                lane.new_epoch()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for lane in self.lanes:
            lane.close()
        if self.phones is not None:
            self.phones.close()
            self.phones = None
        if self._tmp is not None and not self.keep:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: this process, the walls, the zygotes' children (the service lives)."""
        tick = os.sysconf("SC_CLK_TCK")

        def stat(pid: int) -> list[int]:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            return [int(f) for f in fields[11:15]]  # utime stime cutime cstime

        me = os.times()
        out = {"driver": me.user + me.system}
        try:
            out["walls"] = sum(sum(stat(lane.wall.pid)[:2]) for lane in self.lanes if lane.wall) / tick
            out["lives"] = sum(sum(stat(lane.zygote.pid)[2:]) for lane in self.lanes if lane.zygote) / tick
        except (OSError, ValueError):
            pass
        return out

    # -- single trials (for the focused tests) ------------------------------------------------

    def trial(self, plan: Plan, lane: int = 0) -> tuple[Outcome, list[str]]:
        """Run one trial on ``lane`` and check; returns the outcome and the problems found."""
        outcome, _ = self.lanes[lane].run(plan)
        return outcome, self.lanes[lane].check(outcome)

    # -- the whole run ------------------------------------------------------------------------

    def run(self) -> Summary:
        o = self.options
        points = crashpoint_names()
        summary = Summary(seed=o.seed, lanes=o.lanes, unlisted_points=unlisted_crashpoints(), workdir=str(self.root))
        schedules = [Schedule(i, o, points) for i in range(o.lanes)]
        stop = self._stop
        lock = threading.Lock()
        errors: list[BaseException] = []
        started = time.monotonic()

        def work(lane: Lane, schedule: Schedule) -> None:
            try:
                while not stop.is_set():
                    plan = schedule.next()
                    if plan is None:
                        return
                    outcome, spec = lane.run(plan)
                    problems = lane.check(outcome)
                    schedule.record(outcome)
                    with lock:
                        summary.trials += 1
                        summary.trials_by_kind[plan.kind] = summary.trials_by_kind.get(plan.kind, 0) + 1
                        summary.seconds_by_kind[plan.kind] = summary.seconds_by_kind.get(plan.kind, 0) + outcome.seconds
                        summary.clean_stops += outcome.status == 0
                        summary.timeouts += outcome.timed_out
                        if outcome.random_kill:
                            key = lane.last_event or "nothing"
                            summary.landed_after[key] = summary.landed_after.get(key, 0) + 1
                        if problems:
                            summary.violations.append(
                                f"{lane.name} epoch {lane.epoch} trial {spec['trial']} ({plan.describe()},"
                                f" seed {plan.seed}, master seed {o.seed}): " + "; ".join(problems)
                                + f"\n    spec: {json.dumps(spec)}")
                            if not o.keep_going:
                                stop.set()
                                return
                    if problems or lane.needs_new_epoch():
                        lane.new_epoch()
                        with lock:
                            summary.epochs += 1
            except BaseException as err:  # noqa: BLE001 - reported after the threads end
                with lock:
                    errors.append(err)
                stop.set()

        threads = [threading.Thread(target=work, args=(lane, schedule), name=f"crash-{lane.name}", daemon=True)
                   for lane, schedule in zip(self.lanes, schedules)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except BaseException:  # a timeout or ^C: stop the lanes, then the processes (see close)
            stop.set()
            self.keep = True
            raise
        summary.seconds = time.monotonic() - started
        summary.epochs += len(self.lanes)
        for schedule in schedules:
            summary.random_kills += schedule.random_kills
            summary.named.update(schedule.fired)
            if not summary.violations and not errors:
                summary.unreached += [p for p in schedule.points if schedule.fired[p] < o.per_point]
        assert self.phones is not None
        summary.sms_received, summary.sms_refused = self.phones.received, self.phones.refused
        summary.cpu = self.cpu()
        if summary.violations or errors or summary.unreached:
            self.keep = True
        if errors:
            raise errors[0]
        if not summary.violations:
            for lane in self.lanes:  # the whole chain of the last epoch, once
                lane._verify_journal_full()
        return summary


def main() -> int:
    options = Options.from_env()
    with Driver(options) as driver:
        summary = driver.run()
    print(summary.line())
    print(summary.timing())
    for violation in summary.violations:
        print("VIOLATION", violation)
    if summary.violations or summary.unreached:
        print(f"working directory kept: {summary.workdir}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
