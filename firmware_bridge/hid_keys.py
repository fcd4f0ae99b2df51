"""Keystrokes of a USB HID "keyboard wedge" scanner, turned back into the codes it typed (§3.1).

A wedge scanner types each code as key presses and ends it with Enter. Linux hands them over as
input events ``(type, code, value)``, the way ``/dev/input/eventN`` and python-evdev report them::

    type  EV_KEY (1): code = KEY_* number, value 1 key down, 0 key up, 2 autorepeat
          EV_SYN (0) SYN_REPORT after each batch, EV_MSC (4) MSC_SCAN with the USB usage: ignored

    "P1" then Enter on a US layout is, between the SYN/MSC events:
    (1, KEY_LEFTSHIFT 42, 1) (1, KEY_P 25, 1) (1, KEY_P 25, 0) (1, KEY_LEFTSHIFT 42, 0)
    (1, KEY_1 2, 1) (1, KEY_1 2, 0) (1, KEY_ENTER 28, 1) (1, KEY_ENTER 28, 0)

:class:`KeyDecoder` is a pure state machine (which modifiers are held, the characters so far):
``feed(type, code, value)`` returns a :class:`TypedLine` when Enter or keypad Enter ends a code.
It has no clock: for a scanner set to send no Enter the caller calls :meth:`KeyDecoder.flush` once
the keys have been quiet for its inter-key timeout.

Rules:

* US layout. Shift (either) selects the upper character; Caps Lock toggles on its key-down and
  swaps the case of letters only. The keypad gives digits and operators whatever Num Lock says
  (scanners that use the keypad expect Num Lock on).
* A character is typed on key-down and on autorepeat (as a text field would show it).
* A key with no character in the table, or any key while Ctrl, Alt or Meta is held (Alt+keypad
  codes for non-ASCII text are not supported), is not typed but counted in
  :attr:`TypedLine.skipped_keys`: such a code is incomplete and must not be acted on.
* Empty lines are ignored. A line longer than ``max_length`` characters (a stuck key) is dropped
  when its Enter comes.

Key numbers are the kernel's (``linux/input-event-codes.h``, a stable user-space ABI), kept in a
small table here rather than taken from ``evdev.ecodes``: ``firmware_bridge`` then needs no
vendor library, the simulators and tests can use it anywhere, and a test checks the table against
``evdev.ecodes`` where evdev is installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EV_SYN = 0
EV_KEY = 1
EV_MSC = 4
SYN_REPORT = 0
MSC_SCAN = 4
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2

KEY_ENTER = 28
KEY_KPENTER = 96
KEY_LEFTSHIFT = 42
KEY_RIGHTSHIFT = 54
KEY_CAPSLOCK = 58
KEY_LEFTCTRL = 29
KEY_RIGHTCTRL = 97
KEY_LEFTALT = 56
KEY_RIGHTALT = 100
KEY_LEFTMETA = 125
KEY_RIGHTMETA = 126
KEY_NUMLOCK = 69

SHIFTS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
BLOCKING_MODIFIERS = frozenset({KEY_LEFTCTRL, KEY_RIGHTCTRL, KEY_LEFTALT, KEY_RIGHTALT, KEY_LEFTMETA, KEY_RIGHTMETA})
ENTERS = frozenset({KEY_ENTER, KEY_KPENTER})
MAX_LINE = 4096


def _row(first_code: int, plain: str, shifted: str) -> dict[int, tuple[str, str]]:
    return {first_code + i: (p, s) for i, (p, s) in enumerate(zip(plain, shifted, strict=True))}


#: key number -> (character, character with Shift), US layout
US_LAYOUT: dict[int, tuple[str, str]] = {
    **_row(2, "1234567890-=", "!@#$%^&*()_+"),  # KEY_1 .. KEY_EQUAL
    **_row(16, "qwertyuiop[]", "QWERTYUIOP{}"),  # KEY_Q .. KEY_RIGHTBRACE
    **_row(30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),  # KEY_A .. KEY_GRAVE
    **_row(43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),  # KEY_BACKSLASH .. KEY_SLASH
    15: ("\t", "\t"),  # KEY_TAB
    57: (" ", " "),  # KEY_SPACE
    86: ("\\", "|"),  # KEY_102ND (the extra ISO key; backslash on a US map)
}

#: keypad key number -> character (Num Lock on)
KEYPAD: dict[int, str] = {
    55: "*", 71: "7", 72: "8", 73: "9", 74: "-", 75: "4", 76: "5", 77: "6", 78: "+",
    79: "1", 80: "2", 81: "3", 82: "0", 83: ".", 98: "/", 117: "=", 121: ",",
}


@dataclass(frozen=True)
class TypedLine:
    """One code as typed. ``skipped_keys`` > 0: keys that gave no character were pressed inside it."""

    text: str
    skipped_keys: int = 0

    def __repr__(self) -> str:  # the text may be a pickup token or an ID number
        return f"TypedLine({len(self.text)} chars, skipped_keys={self.skipped_keys})"


class KeyDecoder:
    """Feeds on input events, returns whole lines. One instance per device (it holds modifier state)."""

    def __init__(self, *, max_length: int = MAX_LINE) -> None:
        self.max_length = max_length
        self.caps_lock = False
        self._held: set[int] = set()
        self._chars: list[str] = []
        self._skipped = 0
        self._overflow = False
        self.dropped_lines = 0

    @property
    def pending(self) -> bool:
        """Something was typed since the last line ended."""
        return bool(self._chars or self._skipped or self._overflow)

    def feed(self, type_: int, code: int, value: int) -> TypedLine | None:
        """One input event; a :class:`TypedLine` when it ended a code, else None."""
        if type_ != EV_KEY:
            return None
        if value == KEY_UP:
            self._held.discard(code)
            return None
        if value not in (KEY_DOWN, KEY_REPEAT):
            return None
        if code in SHIFTS or code in BLOCKING_MODIFIERS or code == KEY_NUMLOCK:
            self._held.add(code)
            return None
        if code == KEY_CAPSLOCK:
            if value == KEY_DOWN:
                self.caps_lock = not self.caps_lock
            return None
        if code in ENTERS and not self._held & BLOCKING_MODIFIERS:
            return self._end_line() if value == KEY_DOWN else None
        char = None if self._held & BLOCKING_MODIFIERS else self._char(code)
        if char is None:
            self._skipped += 1
        elif len(self._chars) >= self.max_length:
            self._overflow = True
        else:
            self._chars.append(char)
        return None

    def flush(self) -> TypedLine | None:
        """End the current line without an Enter (the caller's inter-key timeout ran out)."""
        return self._end_line()

    def _char(self, code: int) -> str | None:
        if code in KEYPAD:
            return KEYPAD[code]
        pair = US_LAYOUT.get(code)
        if pair is None:
            return None
        shifted = bool(self._held & SHIFTS)
        plain, upper = pair
        if self.caps_lock and plain.isalpha():
            shifted = not shifted
        return upper if shifted else plain

    def _end_line(self) -> TypedLine | None:
        text, skipped, overflow = "".join(self._chars), self._skipped, self._overflow
        self._chars, self._skipped, self._overflow = [], 0, False
        if overflow:
            self.dropped_lines += 1
            return None
        if not text and not skipped:
            return None
        return TypedLine(text, skipped)


def decode_events(events: Iterable[tuple[int, int, int]], *, flush: bool = False) -> list[TypedLine]:
    """Every line in a recorded event sequence; ``flush`` also ends a last line without Enter."""
    decoder = KeyDecoder()
    lines = [line for event in events if (line := decoder.feed(*event)) is not None]
    if flush and (last := decoder.flush()) is not None:
        lines.append(last)
    return lines


def key_events(text: str, *, enter: bool = True, msc_scan: bool = True) -> list[tuple[int, int, int]]:
    """The events a US-layout wedge scanner produces typing ``text`` (for simulators and tests):
    Shift pressed around upper characters, MSC_SCAN before each key change, SYN_REPORT after it.
    Raises ``ValueError`` for a character a US keyboard cannot type."""
    by_char: dict[str, tuple[int, bool]] = {}
    for code, (plain, upper) in US_LAYOUT.items():
        by_char.setdefault(plain, (code, False))
        by_char.setdefault(upper, (code, True))
    events: list[tuple[int, int, int]] = []

    def press(code: int, value: int) -> None:
        if msc_scan:
            events.append((EV_MSC, MSC_SCAN, 0x70000 + code))  # a plausible usage; decoders ignore it
        events.append((EV_KEY, code, value))
        events.append((EV_SYN, SYN_REPORT, 0))

    for char in text:
        if char not in by_char:
            raise ValueError(f"a US keyboard cannot type {char!r}")
        code, shifted = by_char[char]
        if shifted:
            press(KEY_LEFTSHIFT, KEY_DOWN)
        press(code, KEY_DOWN)
        press(code, KEY_UP)
        if shifted:
            press(KEY_LEFTSHIFT, KEY_UP)
    if enter:
        press(KEY_ENTER, KEY_DOWN)
        press(KEY_ENTER, KEY_UP)
    return events
