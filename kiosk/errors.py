"""One table from error to what a person sees: HTTP status and a message in plain words.

Home Assistant's exception handler is the model: flows raise domain errors, this table is the only
place that turns them into screens.
"""

from __future__ import annotations

from typing import Any

from kiosk.i18n import _
from lockers import errors as e
from lockers.payments import AlreadyPaid, ChannelUnavailable, PaymentPending, PaymentsOffline
from lockers.posting import PostingRefused, PostingUnavailable
from lockers.station_ledger import InsufficientPrepaidBalance


class SessionRequired(Exception):
    """No live staff session with a role allowed here (never logged in, or idle too long)."""

    code = "session_required"


class StaffLoginFailed(Exception):
    """A technician or staff login with an unknown name or a wrong password."""

    code = "login_failed"


class TerminalBusy(Exception):
    """Another person's door flow is on screen."""

    code = "terminal_busy"


def money(fen: int) -> str:
    """Always yuan with the yuan sign, whatever the language (Babel would write CN¥ in some).

    One formatter for pages and API messages: this is :func:`kiosk.i18n.format_money`."""
    from kiosk.i18n import format_money  # the module already imports kiosk.i18n; kept local to this function

    return format_money(fen)


def describe(err: Exception) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body (``error``, ``message``, extra fields) for ``err``."""
    body: dict[str, Any] = {"error": getattr(err, "code", "error")}
    match err:
        case e.WrongCode():
            status = 400
            body["attempts_left"] = err.attempts_left
            body["message"] = _("That code is not right. Please check the code in your message. "
                                "%(left)s more tries before a short pause.", left=err.attempts_left)
        case e.KeypadPaused():
            status = 429
            body["retry_after"] = round(err.seconds_left)
            body["message"] = _("Too many wrong codes. Please wait %(seconds)s seconds, then try again.",
                                seconds=round(err.seconds_left))
        case e.InvalidInput():
            status = 422
            body["field"] = err.field
            body["message"] = {
                "phone": _("Please enter the recipient's 11-digit mobile number."),
                "tracking": _("Please enter the tracking number: 6 to 32 letters and digits."),
                "size": _("Please choose a compartment size."),
                "recipient_name": _("Please enter the recipient's name."),
                "recipient_phone": _("Please enter the recipient's phone: a mobile number, or a landline with its area code."),
                "recipient_address": _("Please enter the recipient's address with the province and the street."),
                "sender_phone": _("Please enter your own mobile number."),
                "declaration_missing": _("Please confirm that the item holds nothing that cannot be posted."),
                "quantity": _("Please choose how many items, 1 to 99."),
                "unknown_category": _("Please choose what you are sending."),
                "agreed": _("Please read the notice and agree before the card is read."),
                "from_posting": _("Please choose one of your recent recipients."),
            }.get(err.field) or _("Something you entered is not right: %(what)s", what=str(err))
            if str(err) == "this parcel is already in the locker":
                body["message"] = _("This parcel is already in the locker.")
        case PostingUnavailable():
            status = 503
            body["reason"] = err.reason
            body["message"] = (_("Posting is not available right now: the surveillance camera is not working. "
                                 "Picking up parcels works as usual.") if err.reason == "camera_down" else
                               _("Posting is not available at this kiosk right now. Please ask the staff."))
        case PostingRefused():
            status = 422
            body["reason"] = err.reason
            body["message"] = (_("This item must be inspected at the counter before it can be posted.")
                               if err.reason == "needs_counter_inspection" else
                               _("We cannot accept this item: it is on the list of items that cannot be posted."))
        case e.FeeDue():
            status = 402
            body["fee_fen"] = err.fee_fen
            pay_url = getattr(err, "pay_url", None)
            if pay_url:
                body["pay_url"] = pay_url
                body["message"] = _("The free storage time is over. A storage fee of %(fee)s is due. "
                                    "You can pay it here with your phone.", fee=money(err.fee_fen))
            else:
                body["message"] = _("The free storage time is over. A storage fee of %(fee)s is due. "
                                    "Please pay at the counter; your code stays valid.", fee=money(err.fee_fen))
        case e.UnknownToken():
            status = 404
            body["message"] = _("This QR code is not for a parcel in this locker, or it was already used.")
        case e.ConsentMissing():
            status = 422
            body["message"] = _("A parcel goes into the locker only if the recipient has agreed. "
                                "Please ask the recipient first, or deliver it to their address.")
        case e.NoCompartmentFree():
            status = 409
            body["message"] = _("No free compartment of this size. Choose a larger size, "
                                "or take the parcel to the counter.")
        case e.LoginFailed():
            status = 401
            body["message"] = _("Courier number or PIN is not right.")
        case e.AccountLocked():
            status = 423
            body["message"] = _("Too many failed logins. This account is locked for %(minutes)s minutes.",
                                minutes=max(1, round(err.seconds_left / 60)))
        case e.NotAllowed():
            status = 403
            body["message"] = _("You are not allowed to do this.")
        case InsufficientPrepaidBalance():
            status = 409
            body["message"] = _("Bill payment is not possible right now: the station's prepaid balance is too low. "
                                "Nothing was charged. Staff: please top up the prepaid balance.")
        case PaymentsOffline():
            status = 503
            body["message"] = _("Paying by phone is not possible right now: the network is down.")
        case ChannelUnavailable():
            status = 422
            body["message"] = _("This wallet is not accepted here. Please use WeChat Pay, Alipay or e-CNY.")
        case PaymentPending() | AlreadyPaid():
            status = 409
            body["message"] = _("An earlier payment for this is not settled yet. Please ask the staff before paying again.")
        case e.FlowConflict():
            status = 409
            body["message"] = _("This step is already over.")
        case e.DoorUnavailable():
            status = 503
            body["message"] = _("The door could not be opened. Nothing was changed. "
                                "Please try again, or call the staff.")
        case e.StorageError():
            status = 503
            body["message"] = _("The locker is under maintenance. Please ask the staff.")
        case StaffLoginFailed():
            status = 401
            body["message"] = _("Login or password is not right.")
        case SessionRequired():
            status = 401
            body["message"] = _("Please log in again.")
        case TerminalBusy():
            status = 409
            body["message"] = _("A door is open right now. Please wait a moment.")
        case _:
            status = 500
            body["error"] = "internal"
            body["message"] = _("Something went wrong. Nothing was changed. Please call the staff.")
    return status, body
