"""Domain errors of the custody layer. ``kiosk/`` maps each to a screen and a message in one table."""


class CustodyError(Exception):
    """Root of every custody error. ``code`` is a stable key the kiosk uses to pick its message."""

    code = "custody_error"


class StorageError(CustodyError):
    """The database cannot be used safely (settings, schema, disk)."""

    code = "storage"


class InvalidInput(CustodyError):
    """A field a person entered is malformed (phone, tracking number, size)."""

    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ConsentMissing(CustodyError):
    """The courier did not record the recipient's consent to locker delivery (rule R1)."""

    code = "consent_missing"


class NoCompartmentFree(CustodyError):
    """No free compartment of the requested size or larger."""

    code = "no_compartment"


class WrongCode(CustodyError):
    """The pickup code matches no parcel waiting here."""

    code = "wrong_code"

    def __init__(self, attempts_left: int) -> None:
        super().__init__("wrong pickup code")
        self.attempts_left = attempts_left


class KeypadPaused(CustodyError):
    """Too many wrong codes in a row: the keypad is paused."""

    code = "keypad_paused"

    def __init__(self, seconds_left: float) -> None:
        super().__init__(f"keypad paused for {seconds_left:.0f} s")
        self.seconds_left = seconds_left


class LoginFailed(CustodyError):
    """Unknown courier or wrong PIN (the two are not told apart)."""

    code = "login_failed"


class AccountLocked(CustodyError):
    """Too many failed logins: the account is locked for a while."""

    code = "account_locked"

    def __init__(self, seconds_left: float) -> None:
        super().__init__(f"account locked for {seconds_left:.0f} s")
        self.seconds_left = seconds_left


class NotAllowed(CustodyError):
    """The person is not allowed to do this (another courier's parcel, no session)."""

    code = "not_allowed"


class FlowConflict(CustodyError):
    """The action does not fit the flow's current step (cancel after storing, a door already busy)."""

    code = "conflict"


class DoorUnavailable(CustodyError):
    """The lock bus did not accept the command; nothing was opened."""

    code = "door_unavailable"


class UnknownToken(CustodyError):
    """A scanned pickup token matches no parcel waiting here (tokens are 128-bit: not counted as guesses)."""

    code = "unknown_token"


class FeeDue(CustodyError):
    """The free storage period is over and a fee is due before the door opens (rule R8)."""

    code = "fee_due"

    def __init__(self, fee_fen: int, free_until: float, ticket: str | None = None,
                 reference: str | None = None) -> None:
        super().__init__(f"storage fee of {fee_fen} fen due")
        self.fee_fen = fee_fen
        self.free_until = free_until
        #: a short-lived in-memory proof that the pickup code was right (for ``Custody.pickup_paid``)
        self.ticket = ticket
        #: the payment reference of this fee (``p<parcel>d<days>``): paid once, never charged twice
        self.reference = reference
