"""The last guard between personal data and the log (T-E1): every record is rewritten with ID
numbers and mobile phone numbers masked, whatever code logged it and however.

The flows never log personal data in the first place (the canary test checks that); this filter is
for what nobody meant to log: a library's exception text, a repr someone forgot. It masks

* an 18-character resident ID number whose GB 11643 check character is right: all but the last 4;
* a mainland mobile number (11 digits, 1[3-9]..., also spaced 3-4-4 or dashed): ``138****5678``;
* a payment-code-shaped run of 16 to 24 digits: all but the last 4 (payment codes are 1-minute
  bearer tokens, never to be logged).

It runs on the formatted message, once per record, and replaces ``record.msg`` and ``args``.
"""

from __future__ import annotations

import logging
import re

from hal.codes import resident_id_check_char

_ID = re.compile(r"(?<![0-9A-Za-z])(\d{17})([0-9Xx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
_LONG_DIGITS = re.compile(r"(?<!\d)\d{16,24}(?!\d)")


def _mask_id(match: re.Match[str]) -> str:
    body, check = match.group(1), match.group(2).upper()
    if resident_id_check_char(body) != check:
        return match.group(0)
    return "*" * 14 + body[-3:] + check


def redact(text: str) -> str:
    """``text`` with ID numbers, mobile numbers and payment-code-shaped digit runs masked."""
    text = _ID.sub(_mask_id, text)
    text = _LONG_DIGITS.sub(lambda m: "*" * (len(m.group(0)) - 4) + m.group(0)[-4:], text)
    return _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


class RedactingFilter(logging.Filter):
    """Masks personal data in every record that passes (add it to the handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(root: logging.Logger | None = None) -> None:
    """Put the filter on every handler of ``root`` (the root logger by default)."""
    root = root or logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
