"""Identifier rules for what the station reads: pure functions, no I/O.

Resident ID numbers (GB 11643-1999, check character by ISO 7064 MOD 11-2) and UPU S10 item numbers
(``rules-and-identifiers.md`` §3.1, §3.2). Classification of a whole scanned text into a typed value
is built on these.
"""

from __future__ import annotations

import datetime as dt
import re

#: GB 11643 weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2: 2^(18-i) mod 11 for digit i = 1..17
ID_WEIGHTS = tuple(pow(2, 18 - i, 11) for i in range(1, 18))
ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dXx]$")


def resident_id_check_char(body17: str) -> str:
    """The check character ("0".."9" or "X") for the first 17 digits of a resident ID number."""
    if len(body17) != 17 or not body17.isascii() or not body17.isdigit():
        raise ValueError("a resident ID body has 17 digits")
    return ID_CHECK[sum(int(d) * w for d, w in zip(body17, ID_WEIGHTS)) % 11]


class InvalidIdNumber(ValueError):
    """A resident ID number that fails a rule; ``reason`` is a short machine word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_resident_id(number: str, *, today: dt.date | None = None) -> tuple[str, dt.date, str]:
    """Validate an 18-character resident ID number: returns (normalised number, birth date, sex "M"/"F").

    Raises :class:`InvalidIdNumber` with reason ``format``, ``check`` or ``birth_date``. A lowercase
    ``x`` is accepted and normalised to ``X``. Messages never contain the number.
    """
    if not isinstance(number, str) or not _ID_RE.match(number):
        raise InvalidIdNumber("format", "a resident ID number has 17 digits and a check character 0-9 or X")
    number = number.upper()
    if resident_id_check_char(number[:17]) != number[17]:
        raise InvalidIdNumber("check", "the check character does not match")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber("birth_date", "the birth date is not a real date") from None
    if birth > (today or dt.date.today()) or birth.year < 1850:
        raise InvalidIdNumber("birth_date", "the birth date is in the future or implausibly old")
    return number, birth, "M" if int(number[16]) % 2 else "F"


def age_on(birth: dt.date, day: dt.date) -> int:
    """Whole years of age on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_S10_RE = re.compile(r"^([A-Z]{2})(\d{8})(\d)([A-Z]{2})$")
S10_RESERVED_FIRST = frozenset("JKSTW")


def s10_check_digit(serial8: str) -> int:
    """UPU S10 check digit of an 8-digit serial. ``11 - (sum mod 11)``, 10 -> 0, 11 -> 5 (the last
    branch is as the spec states; no published vector covers it)."""
    if len(serial8) != 8 or not serial8.isascii() or not serial8.isdigit():
        raise ValueError("an S10 serial has 8 digits")
    c = 11 - sum(int(d) * w for d, w in zip(serial8, S10_WEIGHTS)) % 11
    return {10: 0, 11: 5}.get(c, c)


def s10_valid(text: str) -> bool:
    """True when ``text`` is an S10 item identifier (2 letters, 8 digits, check digit, 2-letter country)
    with a correct check digit and a service indicator not reserved (J, K, S, T, W)."""
    m = _S10_RE.match(text)
    return bool(m) and m.group(1)[0] not in S10_RESERVED_FIRST and s10_check_digit(m.group(2)) == int(m.group(3))


def make_s10(service: str, serial8: str, country: str = "CN") -> str:
    """An S10 identifier with its check digit."""
    return f"{service}{serial8}{s10_check_digit(serial8)}{country}"
