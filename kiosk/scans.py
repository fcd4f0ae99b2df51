"""What a scanned code does, depending on what the kiosk shows.

The kiosk opens no scanner: the service hands :class:`ScanRouter` an async source of
``hal.scanner.ScannedCode`` values (the scanner itself, or a fake in tests). Every read first becomes a
typed value (``hal.codes.classify``: pickup code or token, payment code, ID number, S10 item, waybill,
or unknown); then the screen decides.

The server knows its own screen (``Terminal.screen``: home, door, result). Which page the browser shows
on the home screen, it learns from the page itself: every page listens to ``GET /api/events?page=NAME``
(a name of :data:`PAGES`), and the page that connected last and still listens is ``Terminal.page``.

=====================  ==================================================================================
screen / page          what a read does
=====================  ==================================================================================
door screen            nothing (logged), so nobody's open door is replaced
result screen, home,   a pickup token (bare, or in the notice's link) or an 8-digit pickup code opens that
help, no page          parcel's door, as ``POST /api/pickups`` would. A refusal (wrong or used code, fee
                       due, door unavailable, terminal busy) is the ``scan_refused`` result; any other
                       read the ``scan_not_pickup`` result with a line saying what it was instead
pickup page            the same, but refusals and other reads are told on the page (``scan_rejected``
                       event), so the keypad and what was typed stay
courier deposit page   a waybill number (any carrier) or S10 item number is sent to the page as a ``scan``
                       event ``{kind, carrier, number, message}`` that fills the tracking number field;
                       anything else is explained (``scan_rejected``)
payment page           a payment code goes to the payment flow's consumer (``payments``); anything else
                       is explained
courier login and      everything is explained (log in first; deliver from the deposit page)
retrieve pages
=====================  ==================================================================================

Explanations never echo the code. They are rendered at routing time in every kiosk language: the events
route hands a page the one for its language (:func:`localise`); the result page picks its own from the
screen's detail. Refusal messages come from ``kiosk.errors.describe``, the one error table.

Logs never hold a code: only its kind and mask (``PK1-…WXYZ``, ``******78``, ``SF*********6739``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

from hal.codes import (
    CARRIERS,
    DEFAULT_PAYMENT_RULES,
    PICKUP_TOKEN_PREFIX,
    PICKUP_TOKEN_RE,
    CarrierWaybill,
    PaymentCode,
    PaymentCodeRules,
    PickupCode,
    PickupToken,
    PostalItem,
    Read,
    ResidentIdNumber,
    Unknown,
    classify,
)
from hal.scanner import ScannedCode
from kiosk import i18n
from kiosk.errors import TerminalBusy, describe
from kiosk.i18n import _
from kiosk.terminal import Terminal
from lockers.custody import Custody
from lockers.errors import CustodyError, FeeDue, KeypadPaused

log = logging.getLogger(__name__)

#: a pickup token anywhere in a scanned text (the format lives in ``hal.codes``)
TOKEN_RE = PICKUP_TOKEN_RE

#: the page names a page may give ``GET /api/events?page=``
PAGES = frozenset({"home", "pickup", "help", "result", "door", "courier_login", "courier_deposit",
                   "courier_retrieve", "payment"})
#: pages where a pickup code or token opens its door (no page listening counts as home)
PICKUP_PAGES = frozenset({"home", "pickup", "help", "result", "door"})
#: pages shown only to a logged-in courier
COURIER_PAGES = frozenset({"courier_deposit", "courier_retrieve"})

#: the payment flow's hand-over: called with each payment code read on the payment page
PaymentConsumer = Callable[[PaymentCode], Awaitable[None]]


def pickup_token(text: str) -> str | None:
    """The pickup token in ``text`` (the token itself or a link ending in it), upper-cased; else None."""
    found = TOKEN_RE.findall(text.strip())
    return found[0].upper() if len(found) == 1 else None


def mask(token: str) -> str:
    """``PK1-…WXYZ``: enough to match a log line to a notice, far too little to use."""
    return f"{PICKUP_TOKEN_PREFIX}…{token[-4:]}"


def listening_page(page: str | None, *, courier: bool) -> str | None:
    """The page name to register for an events connection: None for names not in :data:`PAGES`; a
    courier page without a live courier session counts as the login page (it gets no waybills)."""
    if page not in PAGES:
        return None
    if page in COURIER_PAGES and not courier:
        return "courier_login"
    return page


def localise(data: dict[str, Any], locale: str) -> dict[str, Any]:
    """An event's data for a page in ``locale``: ``messages`` (locale -> text) becomes ``message``."""
    if "messages" not in data:
        return data
    out = {k: v for k, v in data.items() if k != "messages"}
    texts = data["messages"]
    out["message"] = texts.get(locale) or texts.get(i18n.DEFAULT) or next(iter(texts.values()), "")
    return out


def in_every_language(render: Callable[[], str]) -> dict[str, str]:
    """``render()`` in every kiosk language: locale -> text."""
    out = {}
    for locale in i18n.LANGUAGES:
        token = i18n.set_language(locale)
        try:
            out[locale] = render()
        finally:
            i18n._current.reset(token)
    return out


def messages(err: Exception) -> dict[str, Any]:
    """``describe(err)``'s message in every kiosk language: locale -> text."""
    return in_every_language(lambda: describe(err)[1]["message"])


def explanation(read: Read, page: str | None) -> str | None:
    """Why ``read`` does nothing on ``page``, for the person at the kiosk (in the current language).
    None when the page's own words suffice (an unknown code on a pickup page). Never holds the code."""
    pickup_page = page is None or page in PICKUP_PAGES
    match read:
        case Unknown(reason="undecodable"):
            return _("The code could not be read. Please hold it steady under the scanner and try again.")
        case PaymentCode():
            return _("This is a payment code. To pay, first choose what to pay for.")
        case ResidentIdNumber():
            return _("This is an ID card number. It is not needed here and was not kept.")
        case CarrierWaybill() | PostalItem() if page == "courier_retrieve":
            return _("This looks like a waybill number. To deliver a parcel, go to the delivery screen first.")
        case CarrierWaybill() | PostalItem() if page != "payment":
            return _("This looks like a waybill number. Couriers scan waybills after logging in.")
        case PickupCode() | PickupToken() if not pickup_page:
            return _("This is a pickup code. To collect a parcel, choose “Pick up a parcel” on the home screen.")
    if pickup_page:
        return None
    if page == "courier_deposit":
        return _("This code is not a waybill number. Please scan the waybill's barcode, or type the number.")
    if page == "payment":
        return _("This is not a payment code. Please show the payment code of your wallet app.")
    return _("This code is not used on this screen.")


class ScanRouter:
    """Routes scanned codes by the screen and page on show (module docstring). :meth:`run` consumes a
    source until it ends; :meth:`handle` routes one code and says what it did: "pickup", "refused",
    "not_pickup", "ignored", "waybill", "payment" or "rejected".

    ``payments`` is the payment flow's consumer of payment codes read on the payment page (None: no
    payment flow, such codes are explained away); ``rules`` the payment code formats accepted.
    """

    def __init__(self, custody: Custody, terminal: Terminal, *, payments: PaymentConsumer | None = None,
                 rules: PaymentCodeRules = DEFAULT_PAYMENT_RULES,
                 on_fee: Callable[[FeeDue], bool] | None = None) -> None:
        self.custody = custody
        self.terminal = terminal
        self.payments = payments
        self.on_fee = on_fee  # a fee due: True when the resident can pay it here (the fee page)
        self.rules = rules

    async def run(self, source: AsyncIterable[ScannedCode]) -> None:
        async for code in source:
            await self.handle(code)

    async def handle(self, code: ScannedCode) -> str:
        screen = self.terminal.screen.name
        if screen == "door":
            # nobody's open door is replaced: the read is not acted on, and the door page says why
            log.info("scan not acted on: a door flow is on screen")
            page = self.terminal.page
            if page is not None:
                self.terminal.publish_to_page(page, "scan_rejected", {"kind": "busy", "error": "terminal_busy",
                                                                      "messages": messages(TerminalBusy())})
            return "ignored"
        if code.error is not None:  # undecodable bytes around a token are never acted on
            read: Read = Unknown("undecodable", len(code.text))
        else:
            read = classify(code.text, code.symbology, rules=self.rules)
        page = None if screen == "result" else self.terminal.page
        log.info("scan: %r (symbology %s) on page %s", read, code.symbology, page or "-")
        if page is None or page in PICKUP_PAGES:
            return await self._for_pickup(read, inline=page == "pickup")
        if page == "courier_deposit" and isinstance(read, CarrierWaybill | PostalItem):
            return self._waybill(read)
        if page == "payment" and isinstance(read, PaymentCode):
            return await self._payment(read)
        return self._reject(page, read)

    # ------------------------------------------------------------ pickup pages

    async def _for_pickup(self, read: Read, *, inline: bool) -> str:
        if isinstance(read, PickupToken | PickupCode):
            return await self._pickup(read, inline=inline)
        if inline:
            self._reject("pickup", read)
        else:
            detail: dict[str, Any] = {"kind": read.kind}
            if explanation(read, None) is not None:
                detail["messages"] = in_every_language(lambda: explanation(read, None) or "")
            self.terminal.show_result("scan_not_pickup", "warn", **detail)
        return "not_pickup"

    async def _pickup(self, read: PickupToken | PickupCode, *, inline: bool) -> str:
        try:
            if self.terminal.busy:
                raise TerminalBusy()
            if isinstance(read, PickupToken):
                ticket = await self.custody.pickup(token=read.token)
            else:
                ticket = await self.custody.pickup(read.code)
        except (CustodyError, TerminalBusy) as err:
            return self._refused(err, read, inline)
        except Exception as err:  # one bad scan must not stop the scanner for everyone after
            log.exception("scan: pickup with %r failed", read)
            return self._refused(err, read, inline)
        self.terminal.door_flow("pickup", ticket)
        return "pickup"

    def _refused(self, err: Exception, read: Read, inline: bool) -> str:
        if isinstance(err, FeeDue) and self.on_fee is not None and self.on_fee(err):
            err.pay_url = "/fee"  # type: ignore[attr-defined]
        status, body = describe(err)
        log.info("scan: pickup with %r refused: %s", read, body["error"])
        if inline:
            data: dict[str, Any] = {"kind": read.kind, "error": body["error"], "messages": messages(err)}
            if isinstance(err, KeypadPaused):
                data["retry_after"] = body["retry_after"]
            if "pay_url" in body:
                data["pay_url"] = body["pay_url"]
            if self.terminal.publish_to_page("pickup", "scan_rejected", data):
                return "refused"
        extra = {"pay_url": body["pay_url"]} if "pay_url" in body else {}
        self.terminal.show_result("scan_refused", "error" if status >= 500 else "warn", error=body["error"],
                                  message=body["message"], messages=messages(err), **extra)
        return "refused"

    # ------------------------------------------------------------ courier and payment pages

    def _waybill(self, read: CarrierWaybill | PostalItem) -> str:
        if isinstance(read, PostalItem):
            carrier = "chinapost" if read.valid else None
        else:
            carrier = read.carrier
        name = CARRIERS[carrier] if carrier else None

        def label() -> str:
            if name is None:
                return _("Waybill number scanned. The carrier was not recognised.")
            shown = name.name_zh if i18n.language().startswith("zh") else name.name
            return _("Waybill number scanned: %(carrier)s.", carrier=shown)

        data = {"kind": read.kind, "carrier": carrier, "number": read.number, "messages": in_every_language(label)}
        if not self.terminal.publish_to_page("courier_deposit", "scan", data):
            log.info("scan: the deposit page stopped listening; %r dropped", read)
            return self._reject(None, read)
        return "waybill"

    async def _payment(self, read: PaymentCode) -> str:
        if self.payments is None:
            log.info("scan: %r on the payment page, but no payment flow takes it", read)
            return self._send_rejection("payment", read, "payment_unavailable", in_every_language(
                lambda: _("Payment by code is not available right now. Please ask the staff.")))
        try:
            await self.payments(read)
        except Exception as err:  # the payment flow's failure must not stop the scanner
            log.exception("scan: the payment flow failed to take %r", read)
            return self._send_rejection("payment", read, "payment_failed", messages(err))
        return "payment"

    def _reject(self, page: str | None, read: Read) -> str:
        text = in_every_language(lambda: explanation(read, page) or _("This code is not used on this screen."))
        return self._send_rejection(page, read, read.kind, text)

    def _send_rejection(self, page: str | None, read: Read, reason: str, texts: dict[str, str]) -> str:
        data = {"kind": read.kind, "error": reason, "messages": texts}
        if page is None or not self.terminal.publish_to_page(page, "scan_rejected", data):
            # the page went away meanwhile: say it on the result screen instead
            self.terminal.show_result("scan_refused", "warn", error=reason, message=texts[i18n.DEFAULT],
                                      messages=texts)
        log.info("scan: %r not for page %s (%s)", read, page or "-", reason)
        return "rejected"
