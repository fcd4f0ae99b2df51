"""What a person sees when something goes wrong: one table, keyed by the kind of problem, of what
happened and what to do next, in plain words (issue 9).

Pages show a problem from this table (the posting page's printer and reader messages, the door that
did not open, the lost connection), the API's error answers carry the same two sentences
(``kiosk.errors.describe``), and ``/problem/{key}`` shows any of them as a screen of its own with the
station's phone. Colour is never the only signal: every problem has words, and the voice reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.i18n import _


@dataclass(frozen=True)
class Problem:
    key: str
    what: str  # what happened
    next: str  # what to do now

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "what": self.what, "next": self.next}


def _table() -> dict[str, tuple[str, str]]:
    """Built per call so the texts are in the language of the current request."""
    return {
        "door_jammed": (_("The door did not open."),
                        _("Nothing was changed and your code stays valid. Please try again, or call the staff.")),
        "printer_paper_out": (_("The printer is out of paper."),
                              _("The staff have been told. Your printout comes as soon as paper is loaded.")),
        "printer_cover_open": (_("The printer's cover is open."),
                               _("Your printout comes as soon as it is closed. Please wait or call the staff.")),
        "printer_offline": (_("The printer is not answering."),
                            _("Your printout comes as soon as it is back. Please wait or call the staff.")),
        "reader_not_responding": (_("The ID card reader is not responding."),
                                  _("Place the card on the reader again. If it still fails, please ask the staff.")),
        "card_unreadable": (_("The card could not be read."),
                            _("Leave it flat on the reader, or place it again.")),
        "wrong_code": (_("That code is not right."),
                       _("Please check the code in your message and enter it again.")),
        "network_down": (_("The connection to the kiosk service was lost."),
                         _("It reconnects by itself. Nothing you did is lost; please wait a moment.")),
        "payment_not_confirmed": (_("The payment was not confirmed."),
                                  _("Nothing was charged. Please try again or pay at the counter.")),
        "payment_unsettled": (_("The payment could not be settled yet."),
                              _("If money was taken, it is returned to your wallet automatically. "
                                "Please ask the staff before paying again.")),
        "payment_refunded": (_("The payment could not be completed."),
                             _("The money taken is returned to your wallet. Please try again or pay at the counter.")),
        "wallet_not_accepted": (_("This wallet is not accepted here."),
                                _("Nothing was charged. Please use WeChat Pay, Alipay or e-CNY, or pay at the counter.")),
        "payments_offline": (_("Paying by phone is not possible right now: the network is down."),
                             _("Please pay at the counter. Picking up and delivering parcels work as usual.")),
        "camera_down": (_("The surveillance camera is not working."),
                        _("Posting is paused until it works again. Picking up parcels works as usual.")),
        "no_compartment": (_("No compartment is free right now."),
                           _("Please hand the parcel in at the counter.")),
        "scale_not_steady": (_("The scale has no steady weight yet."),
                             _("Put the parcel in the middle of the scale and keep still.")),
    }


KEYS = tuple(_table())


def problem(key: str | None) -> Problem | None:
    """The problem ``key`` in the current language, or None for an unknown key."""
    if not key:
        return None
    entry = _table().get(key)
    return Problem(key, *entry) if entry else None


#: why a payment by code failed (an error code or a gateway reason) -> the problem the screen shows
PAYMENT_REASONS = {"payment_unsettled": "payment_unsettled", "payment_refunded": "payment_refunded", "payment_channel_unavailable": "wallet_not_accepted",
                   "payment_code_unknown": "wallet_not_accepted", "payments_offline": "payments_offline",
                   "payment_pending": "payment_unsettled"}


def payment_problem(reason: str | None) -> Problem:
    """The problem a failed payment shows: nothing charged (the default), a wallet not accepted, a
    payment not settled yet, or no network."""
    found = problem(PAYMENT_REASONS.get(reason or "", "payment_not_confirmed"))
    assert found is not None
    return found


#: the posting page's status keys -> problems (lockers.posting uses its own words for its state)
POSTING_MESSAGES = {
    "printer_paper_out": "printer_paper_out", "printer_cover_open": "printer_cover_open",
    "printer_offline": "printer_offline", "card_unreadable": "card_unreadable",
    "payment_failed": "payment_not_confirmed", "payments_offline": "payments_offline", "scale_timeout": "scale_not_steady",
    "dropoff_no_compartment": "no_compartment", "dropoff_door_unavailable": "door_jammed",
}
