"""Weighing-scale indicators that stream one reading per line (hardware-protocols.md §8).

Common Chinese and OEM indicators send, continuously at 9600 8N1 (some 4800/2400 or 7E1)::

    S T , G S , +   1 . 2 3 4 k g \\r \\n
    +-----+-----+-+-----------+---+-----+
    |stab.|kind |s| value     |unit| end|
    +-----+-----+-+-----------+---+-----+
    stability  ST stable | US unstable | OL overload
    kind       GS gross | NT net | TR tare        (optional; some models omit it)
    sign       + | - | nothing                    (spaces may follow it)
    value      right-aligned decimal, fixed decimals (leading zeros or spaces)
    unit       kg | g | lb                        (case ignored)

Variants seen in the field drop the comma before the value (``ST,GS    20.7g``). On overload the
value field may hold dashes or ``OL`` instead of digits; the reading then has no value. This format
is [ONE]/[UNVERIFIED]: confirm it against the scale actually bought.

Two layers, like every codec here:

* :func:`parse_line` turns one line (without its end) into a :class:`ScaleReading`, or raises
  :class:`ParseError`, the only exception it raises;
* :func:`decode` frames lines in a byte buffer and returns ``(consumed, reading | None)``, ``0``
  meaning "need more bytes". It never raises. Resynchronisation: CR, LF and CR LF all end a line;
  empty lines and lines that do not parse are consumed and come back as ``(n, None)``; a run of
  more than :data:`MAX_LINE` bytes without a line end is dropped.

Weights are kept exact (``Decimal``), and :attr:`ScaleReading.grams` rounds only once, half up, so
``1.234 kg`` is 1234 g and never 1233.9999.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MAX_LINE = 64
MAX_DIGITS = 12  # an indicator shows 6-8 digits; more is noise (and would overflow Decimal rounding)


class ParseError(ValueError):
    """A line that is not a scale reading."""


class Stability(enum.Enum):
    STABLE = "ST"
    UNSTABLE = "US"
    OVERLOAD = "OL"


class Kind(enum.Enum):
    GROSS = "GS"
    NET = "NT"
    TARE = "TR"


class Unit(enum.Enum):
    KG = "kg"
    G = "g"
    LB = "lb"


GRAMS_PER_UNIT = {Unit.KG: Decimal(1000), Unit.G: Decimal(1), Unit.LB: Decimal("453.59237")}


@dataclass(frozen=True)
class ScaleReading:
    """One line. ``value`` is what the display shows, signed, in ``unit``; None on an overload line
    without digits. ``kind`` is None when the model does not send one."""

    stability: Stability
    kind: Kind | None
    value: Decimal | None
    unit: Unit

    @property
    def grams(self) -> int | None:
        """The weight in whole grams (half up), or None without a value."""
        if self.value is None:
            return None
        return int((self.value * GRAMS_PER_UNIT[self.unit]).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    @property
    def stable(self) -> bool:
        return self.stability is Stability.STABLE

    @property
    def overload(self) -> bool:
        return self.stability is Stability.OVERLOAD


_LINE = re.compile(
    r"""^\s*(ST|US|OL)\s*,\s*(?:(GS|NT|TR)\s*,?)?   # stability, optional kind, optional comma
        \s*([+-]?)\s*                              # sign
        (\d+(?:\.\d*)?|\.\d+|[-\s.]*-[-\s.]*|OL)?  # value (dashes or OL on overload)
        \s*(kg|g|lb)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def parse_line(line: bytes | str) -> ScaleReading:
    """One line, without CR/LF, as a reading. Raises :class:`ParseError`."""
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError:
            raise ParseError("a scale line is ASCII") from None
    if len(line) > MAX_LINE:
        raise ParseError(f"a scale line is at most {MAX_LINE} characters")
    match = _LINE.match(line)
    if not match:
        raise ParseError("not a scale line")
    stability = Stability(match[1].upper())
    kind = Kind(match[2].upper()) if match[2] else None
    digits = match[4]
    value: Decimal | None = None
    if digits and digits[0] in "0123456789.":
        if len(digits) > MAX_DIGITS:
            raise ParseError(f"a value of more than {MAX_DIGITS} characters")
        try:
            value = Decimal(digits)
        except InvalidOperation:  # the pattern admits only numbers here; kept for safety
            raise ParseError("bad number") from None
        if match[3] == "-":
            value = -value
    elif stability is not Stability.OVERLOAD:
        raise ParseError("a reading that is not an overload needs a value")
    return ScaleReading(stability, kind, value, Unit(match[5].lower()))


def decode(buf: bytes | bytearray) -> tuple[int, ScaleReading | None]:
    """Take one line off the front of ``buf``: ``(consumed, reading)``; ``(n, None)`` skips an empty
    line, a line that does not parse, or an overlong run; ``(0, None)`` needs more bytes."""
    cr = buf.find(b"\r")
    lf = buf.find(b"\n")
    ends = [i for i in (cr, lf) if i >= 0]
    if not ends:
        return (len(buf), None) if len(buf) > MAX_LINE else (0, None)
    end = min(ends)
    consumed = end + 1
    if buf[end] == 0x0D and consumed < len(buf) and buf[consumed] == 0x0A:
        consumed += 1
    payload = bytes(buf[:end])
    if end > MAX_LINE or not payload.strip():
        return consumed, None
    try:
        return consumed, parse_line(payload)
    except ParseError:
        return consumed, None


def encode(reading: ScaleReading, *, value_width: int = 7, comma_before_value: bool = True,
           end: bytes = b"\r\n") -> bytes:
    """The line a scale sends for ``reading`` (what the simulator writes): ``ST,GS,+  1.234kg``.
    An overload without a value is sent as dashes."""
    kind = f"{reading.kind.value}," if reading.kind else ""
    if reading.value is None:
        sign, digits = "+", "-" * (value_width - 1)
    else:
        sign = "-" if reading.value < 0 else "+"
        digits = format(abs(reading.value), "f")
    head = f"{reading.stability.value},{kind}"
    if not comma_before_value and head.endswith(","):
        head = head[:-1] + " "
    return f"{head}{sign}{digits:>{value_width}}{reading.unit.value}".encode("ascii") + end
