"""Technician maintenance actions on the whole wall. The only place "open all" exists (T-B4).

Opening all doors goes door by door through :meth:`Custody.technician_open`, so every door gets its
own committed intent and journal row naming the technician and the reason; the boards' own
"unlock every lock" frames are never sent by postkiosk. It needs an explicit confirmation phrase.
Remote (head-office) commands may never call it (PickPoint, 2020: 2,732 lockers force-opened).
"""

from __future__ import annotations

import logging

from hal.errors import HalError
from lockers.custody import Custody
from lockers.errors import CustodyError, InvalidInput

log = logging.getLogger(__name__)

CONFIRMATION = "OPEN ALL"


async def open_all(custody: Custody, *, technician: str, reason: str, confirmation: str) -> dict[str, str]:
    """Open every door, one at a time. ``technician`` is the logged-in technician's name.

    Returns compartment label -> "opened" or why not (a door in use by a flow is skipped).
    """
    if confirmation != CONFIRMATION:
        raise InvalidInput("confirmation", f"type {CONFIRMATION!r} to open every door")
    if not reason.strip():
        raise InvalidInput("reason", "opening every door needs a reason")
    actor = f"technician:{technician}"
    log.warning("%s opens every door: %s", actor, reason)
    results: dict[str, str] = {}
    for label in sorted(custody.layout):
        try:
            await custody.technician_open(actor, label, f"open all: {reason}")
            results[label] = "opened"
        except (CustodyError, HalError) as err:
            results[label] = getattr(err, "code", type(err).__name__)
    return results
