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

import importlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from lockers import payments
from lockers.acquirers.wechat_v2 import WeChatV2Acquirer
from lockers.db import Database
from lockers.payments import AlreadyPaid, PaymentDesk, PaymentPending, PaymentSettings
from tests.crash.forkserver import serve

log = logging.getLogger("crash.payments")

#: what a life needs and httpx otherwise imports lazily: imported once, in the zygote, before forking
PRELOAD = ("anyio._backends._asyncio", "httpcore._async.connection_pool", "httpcore._async.http11",
           "httpcore._backends.anyio", "httpcore._backends.auto")

EXIT_OK = 0
EXIT_ERROR = 70
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


def main() -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    serve(run, exit_error=EXIT_ERROR,
          banner=lambda spec: f"life {spec.get('life')} trials {len(spec['trials'])}")


if __name__ == "__main__":
    main()
