"""Print one label or receipt when the printer is ready, and tell the resident why it is waiting.

At a self-service kiosk the printer runs out of paper or is left with its cover open while a
resident stands in front of it. :func:`print_when_ready` keeps the job and polls the printer's
state; each change (out of paper, cover open, offline, ready again) goes to ``on_status`` so the
kiosk can show it; the job goes out once, as soon as the printer is ready.

Once any byte of a job may have left, the job is done: it is never resent automatically. A
write that fails midway raises :class:`PrintOutcomeUnknown`, because a second waybill label for
the same item is worse than a reprint by staff: two labels with one number can both end up on
parcels, and the carrier then scans one number for two items. A reprint is a deliberate act with
the old label in hand.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from PIL import Image

from hal.errors import DeviceIOError, DeviceTimeout
from hal.printer import Printer, PrinterNotReady, PrinterStatus
from lockers.errors import CustodyError

log = logging.getLogger(__name__)

OnStatus = Callable[[PrinterStatus], Awaitable[None] | None]


class PrinterWaitTimeout(CustodyError, TimeoutError):
    """The printer was not ready within ``give_up_after`` seconds; nothing was printed.
    :attr:`status` is the last state read (None when the printer never answered)."""

    code = "printer_not_ready"

    def __init__(self, waited: float, status: PrinterStatus | None) -> None:
        reasons = ", ".join(status.reasons) if status is not None else "no answer"
        super().__init__(f"printer not ready after {waited:.1f} s ({reasons}); nothing was printed")
        self.status = status


class PrintOutcomeUnknown(CustodyError):
    """The job was being sent when the link failed: part of it, or all of it, may be on paper.
    It is not resent: staff check the printer and reprint by hand if needed."""

    code = "print_outcome_unknown"


async def print_when_ready(printer: Printer, image: Image.Image, *, on_status: OnStatus, poll: float = 1.0,
                           give_up_after: float | None = None) -> PrinterStatus:
    """Print ``image`` (a 1-bit label or receipt) once the printer is ready; return the state it
    was printed in.

    ``on_status(status)`` (a function or a coroutine function) is called each time the printer's
    problems change from what was last reported, starting from "ready": never when the printer is
    ready at once; with the paper-out state, then with the ready state once paper is loaded. A
    printer that does not answer its status request counts as offline
    (``PrinterStatus(online=False)``) and is asked again.

    ``poll``: seconds between status requests while waiting. ``give_up_after``: seconds; None waits
    until cancelled. Raises :class:`PrinterWaitTimeout` (nothing printed) when the time is up,
    :class:`PrintOutcomeUnknown` when the link fails while the job is being sent (never resent:
    see the module docstring), ``DeviceIOError`` when the link is gone before anything was sent
    (the caller reopens the printer), ValueError for an image the printer cannot take.
    Cancelling while waiting sends nothing; cancelling while sending leaves a partial job.
    """
    if poll <= 0:
        raise ValueError(f"poll must be a positive number of seconds, not {poll!r}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = None if give_up_after is None else started + give_up_after
    reported: tuple[str, ...] = ()
    last: PrinterStatus | None = None
    while True:
        status = await _read_status(printer)
        last = status
        if status.problems != reported:
            reported = status.problems
            await _call(on_status, status)
        if status.ready:
            try:
                await _send_once(printer, image)
            except PrinterNotReady as err:  # changed between our read and the printer's own: nothing sent
                last = err.status
                if err.status.problems != reported:
                    reported = err.status.problems
                    await _call(on_status, err.status)
            else:
                return status
        if deadline is None:
            await asyncio.sleep(poll)
            continue
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise PrinterWaitTimeout(loop.time() - started, last)
        await asyncio.sleep(min(poll, remaining))  # one last look at the deadline itself


async def _read_status(printer: Printer) -> PrinterStatus:
    try:
        return await printer.status()
    except DeviceTimeout:
        return PrinterStatus(online=False)


async def _send_once(printer: Printer, image: Image.Image) -> None:
    """The one attempt to send the job. ``PrinterNotReady`` means nothing was sent; any other
    failure of the link may come after some bytes left, so it ends the job. (It may also be the
    printer's own status check failing before any byte left; ``hal.printer`` does not tell the two
    apart, so this assumes the worse one.)"""
    try:
        await printer.print_image(image)
    except PrinterNotReady:
        raise
    except DeviceIOError as err:  # DeviceTimeout included: the printer stopped taking data
        log.error("print job interrupted on %s (%s); not resending", printer.link.url, type(err).__name__)
        raise PrintOutcomeUnknown("the printer failed while the job was being sent; part of it may have printed. "
                                  "It is not resent automatically: check the printer and reprint by hand") from err


async def _call(on_status: OnStatus, status: PrinterStatus) -> None:
    result = on_status(status)
    if inspect.isawaitable(result):
        await result
