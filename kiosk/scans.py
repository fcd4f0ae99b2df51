"""What a scanned code does, depending on what the kiosk shows.

The kiosk opens no scanner: the service hands :class:`ScanRouter` an async source of
``hal.scanner.ScannedCode`` values (the scanner itself, or a fake in tests).

* Home or result screen (nobody's door open): a pickup token, bare (``PK1-...``) or inside the
  notice's link (``https://.../p/PK1-...``), opens that parcel's door as ``POST /api/pickups`` with a
  token would. A refusal (unknown or used token, fee due, door unavailable, terminal busy) is shown
  as the ``scan_refused`` result; any other code as ``scan_not_pickup``.
* Door screen: scans are ignored (logged), so nobody's open door is replaced.

Refusal messages come from ``kiosk.errors.describe``, the one error table. It needs the exception
itself (fee, seconds left), which the screen cannot keep, so the message is rendered at show time
in every kiosk language and stored in the screen's detail; the result page picks the one for its
own language. Logs never hold a code: only that a token was scanned, masked ``PK1-…WXYZ``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterable
from typing import Any

from hal.scanner import ScannedCode
from kiosk import i18n
from kiosk.errors import TerminalBusy, describe
from kiosk.terminal import Terminal
from lockers.custody import TOKEN_PREFIX, Custody
from lockers.errors import CustodyError

log = logging.getLogger(__name__)

#: a pickup token anywhere in a scanned text: the prefix and 26 base32 characters (128 bits), not
#: part of a longer word
TOKEN_RE = re.compile(rf"(?<![A-Za-z0-9]){re.escape(TOKEN_PREFIX)}[A-Z2-7]{{26}}(?![A-Za-z0-9])", re.IGNORECASE)


def pickup_token(text: str) -> str | None:
    """The pickup token in ``text`` (the token itself or a link ending in it), upper-cased; else None."""
    found = TOKEN_RE.findall(text.strip())
    return found[0].upper() if len(found) == 1 else None


def mask(token: str) -> str:
    """``PK1-…WXYZ``: enough to match a log line to a notice, far too little to use."""
    return f"{TOKEN_PREFIX}…{token[-4:]}"


class ScanRouter:
    """Routes scanned codes by the screen on show. :meth:`run` consumes a source until it ends;
    :meth:`handle` routes one code and says what it did ("pickup", "refused", "not_pickup",
    "ignored")."""

    def __init__(self, custody: Custody, terminal: Terminal) -> None:
        self.custody = custody
        self.terminal = terminal

    async def run(self, source: AsyncIterable[ScannedCode]) -> None:
        async for code in source:
            await self.handle(code)

    async def handle(self, code: ScannedCode) -> str:
        if self.terminal.screen.name == "door":
            log.info("scan ignored: a door flow is on screen")
            return "ignored"
        token = pickup_token(code.text) if code.error is None else None
        if token is None:
            log.info("scan: not a pickup code (%d chars, symbology %s, %s)", len(code.text), code.symbology,
                     code.error or "readable")
            self.terminal.show_result("scan_not_pickup", "warn")
            return "not_pickup"
        log.info("scan: pickup token %s", mask(token))
        try:
            if self.terminal.busy:
                raise TerminalBusy()
            ticket = await self.custody.pickup(token=token)
        except (CustodyError, TerminalBusy) as err:
            return self._refused(err, token)
        except Exception as err:  # one bad scan must not stop the scanner for everyone after
            log.exception("scan: pickup with token %s failed", mask(token))
            return self._refused(err, token)
        self.terminal.door_flow("pickup", ticket)
        return "pickup"

    def _refused(self, err: Exception, token: str) -> str:
        status, body = describe(err)
        log.info("scan: pickup with token %s refused: %s", mask(token), body["error"])
        self.terminal.show_result("scan_refused", "error" if status >= 500 else "warn", error=body["error"],
                                  message=body["message"], messages=messages(err))
        return "refused"


def messages(err: Exception) -> dict[str, Any]:
    """``describe(err)``'s message in every kiosk language: locale -> text."""
    out = {}
    for locale in i18n.LANGUAGES:
        token = i18n.set_language(locale)
        try:
            out[locale] = describe(err)[1]["message"]
        finally:
            i18n._current.reset(token)
    return out
