import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import hid_keys as hk
from firmware_bridge.hid_keys import KeyDecoder, TypedLine, decode_events, key_events

# Shaped like an evtest capture of a wedge scanner reading the QR "]Q1PK-7a" (AIM id on), then Enter:
# (seconds, type, code, value). MSC_SCAN carries the USB usage (page 7), SYN_REPORT closes each report.
# The scanner holds Left Shift across "PK", as many do.
CAPTURE = [
    (0.000000, 4, 4, 0x70030), (0.000000, 1, 27, 1), (0.000000, 0, 0, 0),  # ]
    (0.003981, 4, 4, 0x70030), (0.003981, 1, 27, 0), (0.003981, 0, 0, 0),
    (0.007990, 4, 4, 0x700E1), (0.007990, 1, 42, 1), (0.007990, 0, 0, 0),  # Shift down
    (0.011994, 4, 4, 0x70014), (0.011994, 1, 16, 1), (0.011994, 0, 0, 0),  # Q
    (0.015979, 4, 4, 0x70014), (0.015979, 1, 16, 0), (0.015979, 0, 0, 0),
    (0.019987, 4, 4, 0x700E1), (0.019987, 1, 42, 0), (0.019987, 0, 0, 0),  # Shift up
    (0.023989, 4, 4, 0x7001E), (0.023989, 1, 2, 1), (0.023989, 0, 0, 0),  # 1
    (0.027982, 4, 4, 0x7001E), (0.027982, 1, 2, 0), (0.027982, 0, 0, 0),
    (0.031990, 4, 4, 0x700E1), (0.031990, 1, 42, 1), (0.031990, 0, 0, 0),  # Shift down
    (0.035986, 4, 4, 0x70013), (0.035986, 1, 25, 1), (0.035986, 0, 0, 0),  # P
    (0.039985, 4, 4, 0x70013), (0.039985, 1, 25, 0), (0.039985, 0, 0, 0),
    (0.043991, 4, 4, 0x7000E), (0.043991, 1, 37, 1), (0.043991, 0, 0, 0),  # K
    (0.047983, 4, 4, 0x7000E), (0.047983, 1, 37, 0), (0.047983, 0, 0, 0),
    (0.051987, 4, 4, 0x700E1), (0.051987, 1, 42, 0), (0.051987, 0, 0, 0),  # Shift up
    (0.055990, 4, 4, 0x7002D), (0.055990, 1, 12, 1), (0.055990, 0, 0, 0),  # -
    (0.059984, 4, 4, 0x7002D), (0.059984, 1, 12, 0), (0.059984, 0, 0, 0),
    (0.063988, 4, 4, 0x7005F), (0.063988, 1, 71, 1), (0.063988, 0, 0, 0),  # keypad 7
    (0.067985, 4, 4, 0x7005F), (0.067985, 1, 71, 0), (0.067985, 0, 0, 0),
    (0.071989, 4, 4, 0x70004), (0.071989, 1, 30, 1), (0.071989, 0, 0, 0),  # a
    (0.075986, 4, 4, 0x70004), (0.075986, 1, 30, 0), (0.075986, 0, 0, 0),
    (0.079990, 4, 4, 0x70028), (0.079990, 1, 28, 1), (0.079990, 0, 0, 0),  # Enter
    (0.083985, 4, 4, 0x70028), (0.083985, 1, 28, 0), (0.083985, 0, 0, 0),
]


def events(capture):
    return [(t, c, v) for _, t, c, v in capture]


def test_a_captured_scan_decodes_to_its_text():
    assert decode_events(events(CAPTURE)) == [TypedLine("]Q1PK-7a")]


def test_the_capture_one_event_at_a_time_ends_only_at_enter():
    decoder = KeyDecoder()
    results = [decoder.feed(*e) for e in events(CAPTURE)]
    assert [r for r in results if r is not None] == [TypedLine("]Q1PK-7a")]
    assert results.index(TypedLine("]Q1PK-7a")) == len(CAPTURE) - 5  # the Enter key-down
    assert not decoder.pending


def test_the_key_table_matches_the_kernel_numbers_in_evdev():
    ecodes = pytest.importorskip("evdev.ecodes")
    named = {"KEY_ENTER": hk.KEY_ENTER, "KEY_KPENTER": hk.KEY_KPENTER, "KEY_LEFTSHIFT": hk.KEY_LEFTSHIFT,
             "KEY_RIGHTSHIFT": hk.KEY_RIGHTSHIFT, "KEY_CAPSLOCK": hk.KEY_CAPSLOCK, "KEY_LEFTCTRL": hk.KEY_LEFTCTRL,
             "KEY_RIGHTCTRL": hk.KEY_RIGHTCTRL, "KEY_LEFTALT": hk.KEY_LEFTALT, "KEY_RIGHTALT": hk.KEY_RIGHTALT,
             "KEY_LEFTMETA": hk.KEY_LEFTMETA, "KEY_RIGHTMETA": hk.KEY_RIGHTMETA, "KEY_NUMLOCK": hk.KEY_NUMLOCK,
             "EV_KEY": hk.EV_KEY, "EV_SYN": hk.EV_SYN, "EV_MSC": hk.EV_MSC, "MSC_SCAN": hk.MSC_SCAN}
    assert {name: getattr(ecodes, name) for name in named} == named
    letters = {getattr(ecodes, f"KEY_{c.upper()}"): c for c in string.ascii_lowercase}
    digits = {getattr(ecodes, f"KEY_{d}"): d for d in string.digits}
    punct = {ecodes.KEY_MINUS: "-", ecodes.KEY_EQUAL: "=", ecodes.KEY_LEFTBRACE: "[", ecodes.KEY_RIGHTBRACE: "]",
             ecodes.KEY_SEMICOLON: ";", ecodes.KEY_APOSTROPHE: "'", ecodes.KEY_GRAVE: "`",
             ecodes.KEY_BACKSLASH: "\\", ecodes.KEY_COMMA: ",", ecodes.KEY_DOT: ".", ecodes.KEY_SLASH: "/",
             ecodes.KEY_SPACE: " ", ecodes.KEY_TAB: "\t", ecodes.KEY_102ND: "\\"}
    assert {code: hk.US_LAYOUT[code][0] for code in {**letters, **digits, **punct}} == {**letters, **digits, **punct}
    keypad = {ecodes.KEY_KP0: "0", ecodes.KEY_KP1: "1", ecodes.KEY_KP9: "9", ecodes.KEY_KPDOT: ".",
              ecodes.KEY_KPMINUS: "-", ecodes.KEY_KPPLUS: "+", ecodes.KEY_KPASTERISK: "*", ecodes.KEY_KPSLASH: "/"}
    assert {code: hk.KEYPAD[code] for code in keypad} == keypad


def press(code, shift=False):
    out = [(1, hk.KEY_LEFTSHIFT, 1)] if shift else []
    out += [(1, code, 1), (1, code, 0)]
    return out + ([(1, hk.KEY_LEFTSHIFT, 0)] if shift else [])


def test_caps_lock_swaps_the_case_of_letters_only():
    seq = press(hk.KEY_CAPSLOCK) + press(30) + press(30, shift=True) + press(2) + press(2, shift=True)
    seq += press(hk.KEY_CAPSLOCK) + press(30) + press(hk.KEY_ENTER)
    assert decode_events(seq) == [TypedLine("Aa1!a")]


def test_keypad_enter_ends_a_code_and_right_shift_shifts():
    seq = [(1, hk.KEY_RIGHTSHIFT, 1)] + press(25) + [(1, hk.KEY_RIGHTSHIFT, 0)] + press(79) + press(hk.KEY_KPENTER)
    assert decode_events(seq) == [TypedLine("P1")]


def test_keys_without_a_character_or_under_ctrl_alt_are_counted_not_typed():
    f1 = 59
    seq = press(30) + press(f1) + [(1, hk.KEY_LEFTALT, 1)] + press(82) + press(80) + [(1, hk.KEY_LEFTALT, 0)]
    seq += [(1, hk.KEY_LEFTCTRL, 1)] + press(46) + [(1, hk.KEY_LEFTCTRL, 0)] + press(31) + press(hk.KEY_ENTER)
    assert decode_events(seq) == [TypedLine("as", skipped_keys=4)]


def test_autorepeat_types_again_but_a_repeated_enter_ends_nothing():
    seq = [(1, 30, 1), (1, 30, 2), (1, 30, 0), (1, hk.KEY_ENTER, 1), (1, hk.KEY_ENTER, 2), (1, hk.KEY_ENTER, 0)]
    assert decode_events(seq) == [TypedLine("aa")]


def test_empty_lines_are_ignored_and_flush_ends_a_code_without_enter():
    decoder = KeyDecoder()
    assert [decoder.feed(*e) for e in press(hk.KEY_ENTER)] == [None, None]
    for e in press(30) + press(31):
        assert decoder.feed(*e) is None
    assert decoder.pending
    assert decoder.flush() == TypedLine("as")
    assert decoder.flush() is None
    assert decode_events(press(30), flush=True) == [TypedLine("a")]
    assert decode_events(press(30)) == []


def test_an_overlong_line_is_dropped():
    decoder = KeyDecoder(max_length=3)
    for e in press(30) * 4 + press(hk.KEY_ENTER):
        assert decoder.feed(*e) is None
    assert decoder.dropped_lines == 1
    assert decode_events(press(31) + press(hk.KEY_ENTER)) == [TypedLine("s")]


def test_the_repr_does_not_show_the_text():
    assert "PK1" not in repr(TypedLine("PK1-SECRET"))


def test_key_events_refuse_what_a_us_keyboard_cannot_type():
    with pytest.raises(ValueError):
        key_events("取件")


@given(st.text(string.printable.replace("\r", "").replace("\n", "").replace("\x0b", "").replace("\x0c", ""),
               min_size=1, max_size=60), st.booleans())
def test_every_us_keyboard_text_roundtrips(text, msc):
    assert decode_events(key_events(text, msc_scan=msc)) == [TypedLine(text)]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 300), st.integers(-1, 3)), max_size=200))
def test_random_events_never_raise(seq):
    decoder = KeyDecoder(max_length=50)
    for event in seq:
        line = decoder.feed(*event)
        assert line is None or (0 < len(line.text) <= 50 or line.skipped_keys)
    decoder.flush()
    assert not decoder.pending
