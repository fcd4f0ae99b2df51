"""Checking and masking the personal data a courier types in (phone numbers, tracking numbers)."""

from __future__ import annotations

import re

from lockers.errors import InvalidInput

_MOBILE = re.compile(r"1[3-9]\d{9}")
_TRACKING = re.compile(r"[A-Z0-9]{6,32}")


def normalize_phone(raw: str) -> str:
    """A mainland mobile number as 11 digits; spaces, dashes and a +86/0086 prefix are dropped."""
    digits = re.sub(r"[\s\-()]", "", raw or "")
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix):]
    if not _MOBILE.fullmatch(digits):
        raise InvalidInput("phone", "a mobile number has 11 digits and starts with 13 to 19")
    return digits


def mask_phone(phone: str) -> str:
    """``13812345678`` -> ``138****5678`` (rule R10)."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "*" * len(phone)


def normalize_tracking(raw: str) -> str:
    """A tracking number in capitals without spaces; 6 to 32 letters and digits."""
    value = re.sub(r"\s", "", raw or "").upper()
    if not _TRACKING.fullmatch(value):
        raise InvalidInput("tracking", "a tracking number has 6 to 32 letters and digits")
    return value


def mask_tracking(tracking: str) -> str:
    """Shown to people other than its courier: the last 4 characters only."""
    return "*" * max(0, len(tracking) - 4) + tracking[-4:]
