"""Named crashpoints at every step boundary of the custody flows, for the crash tests (T-A1).

``POSTKIOSK_CRASH_AT=deposit.reserved:2`` kills the process with SIGKILL the second time that point
is passed; ``POSTKIOSK_CRASH_AT=*:17`` kills it at the 17th crashpoint of any name. Unset (always, in
service) a crashpoint costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal

_plan: tuple[str, int] | None | bool = False  # False: environment not read yet
_passed: dict[str, int] = {}

#: every crashpoint, so a test can be sure it visits them all
POINTS = (
    "deposit.reserved", "deposit.unlock_sent", "deposit.door_open_recorded", "deposit.stored",
    "deposit.notice_accepted", "deposit.cancelled",
    "pickup.intent", "pickup.unlock_sent", "pickup.door_open_recorded", "pickup.collected", "pickup.refused",
    "retrieve.intent", "retrieve.unlock_sent", "retrieve.door_open_recorded", "retrieve.returned",
    "technician.intent", "technician.unlock_sent", "technician.door_open_recorded",
    "dropoff.reserved", "dropoff.stored", "collect.intent", "collect.dispatched",
)


def _read_plan() -> tuple[str, int] | None:
    value = os.environ.get("POSTKIOSK_CRASH_AT", "")
    if not value:
        return None
    name, _, count = value.rpartition(":")
    return (name, int(count)) if name and count.isdigit() else (value, 1)


def crashpoint(name: str) -> None:
    global _plan
    if _plan is False:
        _plan = _read_plan()
    if _plan is None:
        return
    target, count = _plan  # type: ignore[misc]
    key = "*" if target == "*" else name
    if target not in ("*", name):
        return
    _passed[key] = _passed.get(key, 0) + 1
    if _passed[key] == count:
        os.kill(os.getpid(), signal.SIGKILL)
