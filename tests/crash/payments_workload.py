"""One life of the payment desk for the payment crash test (T-F1), and the zygote that forks it.

``python -m tests.crash.payments_workload`` is the zygote (the same protocol as ``zygote.py``): it
imports the payment stack once, starts no thread, no event loop and no database, then forks one child
per life. Driver -> zygote: one life spec per line (JSON). Zygote -> driver: ``{"ready": pid}`` once,
then per life ``{"pid": pid}`` right after the fork and ``{"pid": pid, "status": code}`` when it has
ended (``-9``: SIGKILL, by the driver or by a crashpoint). EOF on stdin: the zygote kills a child
still running and exits.

A life (:func:`run`) is the station's payment side as it runs in service: ``lockers.db.Database`` on
a real file, :class:`~lockers.payments.PaymentDesk` with a :class:`WeChatV2Acquirer` pointed at the
driver's WeChat Pay v2 simulator, timings scaled down about 250 times (:data:`SETTINGS`), and
``reconcile()`` at start-up. Then the residents: each trial records a service in a table of this
harness (``pk_services``, ``waiting``), pays it with a fresh payment code the driver has scripted a
gateway fault for, and gives the service in ``on_paid`` (the transaction that commits ``paid``). Some
trials pay again for a service an earlier, killed life left unpaid; some pay for a service that was
cancelled meanwhile (``on_paid`` refuses: the money must go back).

Exit codes: 0 clean stop; 70 an unexpected exception (the traceback is in the lane's log).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import os
import signal
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Any

import httpx

import lockers.crash
from lockers import payments
from lockers.acquirers.wechat_v2 import WeChatV2Acquirer
from lockers.db import Database
from lockers.payments import AlreadyPaid, PaymentDesk, PaymentPending, PaymentSettings

log = logging.getLogger("crash.payments")

#: what a life needs and httpx otherwise imports lazily: imported once, in the zygote, before forking
PRELOAD = ("anyio._backends._asyncio", "httpcore._async.connection_pool", "httpcore._async.http11",
           "httpcore._backends.anyio", "httpcore._backends.auto")

EXIT_OK = 0
EXIT_ERROR = 70
PR_SET_PDEATHSIG = 1
PURPOSE = "posting"

#: the §4.4 timings scaled down (5 s / 30 s / 15 s become 20 ms / 120 ms / 60 ms) so thousands of
#: trials fit in minutes; the ratios between them are kept
SETTINGS: dict[str, float | int] = {
    "query_interval": 0.02,
    "give_up_after": 0.12,
    "reverse_not_before": 0.06,
    "reverse_retry_interval": 0.02,
    "reverse_attempts_inline": 3,
    "alert_after_reverse_attempts": 5,
    "call_timeout": 0.1,
    "reconcile_margin": 0.1,  # 2 s in service, scaled the same way
}

SERVICES_SCHEMA = """
CREATE TABLE IF NOT EXISTS pk_services (
    reference   TEXT PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('waiting', 'given', 'cancelled')),
    order_no    TEXT,
    amount_fen  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
)
"""


class ServiceGone(Exception):
    """``on_paid`` found the service no longer waiting (cancelled meanwhile): nothing to give."""


def give_service(conn: sqlite3.Connection, order: payments.PaymentResult) -> None:
    """``on_paid``: give the service in the transaction that commits ``paid``, or refuse it."""
    cur = conn.execute("UPDATE pk_services SET state = 'given', order_no = ? WHERE reference = ? AND state = 'waiting'",
                       (order.order_no, order.reference))
    if cur.rowcount != 1:
        raise ServiceGone(order.reference)


async def _service_for(db: Database, trial: dict[str, Any]) -> str | None:
    """Record (or, for a retry, pick) the trial's service and count the attempt; its reference."""
    def tx(conn: sqlite3.Connection) -> str | None:
        reference = None
        if trial.get("retry"):
            row = conn.execute(
                "SELECT s.reference FROM pk_services s WHERE s.state = 'waiting' AND NOT EXISTS ("
                " SELECT 1 FROM payment_orders o WHERE o.reference = s.reference"
                " AND o.state NOT IN ('failed', 'reversed', 'refunded')) ORDER BY s.rowid LIMIT 1").fetchone()
            reference = row[0] if row else None
        if reference is None:
            reference = trial["ref"]
            conn.execute("INSERT INTO pk_services (reference, state, amount_fen) VALUES (?, 'waiting', ?)",
                         (reference, trial["amount"]))
        conn.execute("UPDATE pk_services SET attempts = attempts + 1 WHERE reference = ?", (reference,))
        if trial.get("cancel"):  # the posting is cancelled while the resident scans: on_paid refuses
            conn.execute("UPDATE pk_services SET state = 'cancelled' WHERE reference = ?", (reference,))
        return reference

    return await db.write(tx)


async def _trial(desk: PaymentDesk, db: Database, trial: dict[str, Any], sabotage: str | None) -> str:
    """One resident paying for one service; what came of it (for the log)."""
    reference = await _service_for(db, trial)
    assert reference is not None
    amount = await db.read(lambda c: c.execute("SELECT amount_fen FROM pk_services WHERE reference = ?",
                                               (reference,)).fetchone()[0])
    on_paid = None if sabotage == "orphan" else give_service
    try:
        result = await desk.pay(PURPOSE, reference, amount, trial["code"], on_paid=on_paid)
    except (PaymentPending, AlreadyPaid) as err:
        return err.code
    if sabotage == "double_charge" and result.paid and trial.get("code2"):
        await desk.pay("posting_again", reference, amount, trial["code2"])
    if sabotage == "free_service":
        await db.write(lambda c: c.execute(
            "UPDATE pk_services SET state = 'given' WHERE reference = ? AND state = 'waiting'", (reference,)))
    return result.state


async def run(spec: dict[str, Any]) -> int:
    """One life: open, reconcile what the previous life left, run the trials, stop."""
    settings = PaymentSettings(station_id=spec["station"], **spec.get("settings", SETTINGS))
    db = Database(Path(spec["db"]), mounts=spec.get("mounts"))
    await db.open()
    client = httpx.AsyncClient(verify=False, timeout=settings.call_timeout)  # plain http on loopback
    acquirer = WeChatV2Acquirer(spec["gateway"], appid=spec["appid"], mch_id=spec["mch_id"],
                                api_key=spec["api_key"], timeout=settings.call_timeout, client=client)
    try:
        await db.write(lambda c: c.execute(SERVICES_SCHEMA))
        desk = PaymentDesk(db, {"wechat": acquirer}, settings=settings)
        await desk.reconcile()
        log.info("life %s: reconciled", spec.get("life"))
        for trial in spec["trials"]:
            outcome = await _trial(desk, db, trial, spec.get("sabotage"))
            log.info("life %s: trial %s (%s) -> %s", spec.get("life"), trial["ref"], trial["fault"], outcome)
    finally:
        await client.aclose()
        await db.close()
    return EXIT_OK


# -- the zygote ---------------------------------------------------------------------------------------


def _child(spec: dict[str, Any], keep_fds: tuple[int, ...]) -> None:
    code = EXIT_ERROR
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        log_fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        for fd in (null, log_fd, *keep_fds):
            if fd > 2:
                os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if spec.get("crash_at"):
            os.environ["POSTKIOSK_CRASH_AT"] = spec["crash_at"]
        else:
            os.environ.pop("POSTKIOSK_CRASH_AT", None)
        lockers.crash._plan = False  # read the environment again at the first crashpoint
        lockers.crash._passed.clear()
        logging.basicConfig(level=logging.WARNING if not spec.get("verbose") else logging.INFO, stream=sys.stderr,
                            force=True, format=f"%(asctime)s {os.getpid()} %(levelname)s %(name)s: %(message)s")
        print(f"--- life {spec.get('life')} pid {os.getpid()} crash_at {spec.get('crash_at')}"
              f" trials {len(spec['trials'])}", file=sys.stderr, flush=True)
        code = asyncio.run(run(spec))
    except BaseException:  # noqa: BLE001 - whatever it is, it is reported through the exit code
        traceback.print_exc()
        code = EXIT_ERROR
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    out = os.fdopen(os.dup(stdout_fd), "w", buffering=1)

    def say(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    for module in PRELOAD:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()
    say({"ready": os.getpid()})
    zombie: int | None = None
    child: int | None = None
    try:
        for line in sys.stdin:
            if zombie is not None:
                os.waitpid(zombie, 0)
                zombie = None
            if not line.strip():
                continue
            spec = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(spec, (stdin_fd, stdout_fd, out.fileno()))  # never returns
            child = pid
            say({"pid": pid})
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            status = -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status
            child, zombie = None, pid  # reaped at the next spec: the pid cannot be reused meanwhile
            say({"pid": pid, "status": status})
    finally:
        if child is not None:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        if zombie is not None:
            os.waitpid(zombie, 0)


if __name__ == "__main__":
    main()
