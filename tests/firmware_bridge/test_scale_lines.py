from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.scale_lines import Kind, ParseError, ScaleReading, Stability, Unit, decode, encode, parse_line

ST, US, OL = Stability.STABLE, Stability.UNSTABLE, Stability.OVERLOAD
GS, NT, TR = Kind.GROSS, Kind.NET, Kind.TARE


@pytest.mark.parametrize("line, reading, grams", [
    ("ST,GS,+  1.234kg", ScaleReading(ST, GS, Decimal("1.234"), Unit.KG), 1234),
    ("ST,GS,+  4.876kg", ScaleReading(ST, GS, Decimal("4.876"), Unit.KG), 4876),  # §8's example
    ("US,NT,-  0.050kg", ScaleReading(US, NT, Decimal("-0.050"), Unit.KG), -50),
    ("ST,GS    20.7g", ScaleReading(ST, GS, Decimal("20.7"), Unit.G), 21),  # no comma before the value
    ("ST,+0001.500kg", ScaleReading(ST, None, Decimal("1.500"), Unit.KG), 1500),  # no kind, leading zeros
    ("ST,TR,+  0.120kg", ScaleReading(ST, TR, Decimal("0.120"), Unit.KG), 120),
    ("ST,GS,+  2.205lb", ScaleReading(ST, GS, Decimal("2.205"), Unit.LB), 1000),
    ("st,gs,+1.0KG", ScaleReading(ST, GS, Decimal("1.0"), Unit.KG), 1000),
    ("ST,GS,  0.0005kg", ScaleReading(ST, GS, Decimal("0.0005"), Unit.KG), 1),  # half up
    ("OL,GS,+ ------kg", ScaleReading(OL, GS, None, Unit.KG), None),
    ("OL,GS,+ 99.999kg", ScaleReading(OL, GS, Decimal("99.999"), Unit.KG), 99999),
    ("OL,GS,     OL kg", ScaleReading(OL, GS, None, Unit.KG), None),
])
def test_golden_lines(line, reading, grams):
    assert parse_line(line) == reading
    assert parse_line(line.encode()) == reading
    assert reading.grams == grams


@pytest.mark.parametrize("line", [
    "", "   ", "XX,GS,+  1.234kg", "ST,GS,+  1.234", "ST,GS,+  1.234oz", "ST,GS,+ ------kg",
    "US,GS,+kg", "ST,GS,+ 1.2.3kg", "ST,GS,+  9999999999999.999kg", "ST,GS,+  1.234kg" + " " * 60,
    b"ST,GS,+  1.\xff34kg",
])
def test_lines_that_are_not_readings(line):
    with pytest.raises(ParseError):
        parse_line(line)


def test_flags():
    assert parse_line("ST,GS,+1kg").stable and not parse_line("US,GS,+1kg").stable
    assert parse_line("OL,GS,+ ---kg").overload


@pytest.mark.parametrize("wire, consumed, reading", [
    (b"ST,GS,+  1.234kg\r\n", 18, ScaleReading(ST, GS, Decimal("1.234"), Unit.KG)),
    (b"ST,GS,+  1.234kg\rUS", 17, ScaleReading(ST, GS, Decimal("1.234"), Unit.KG)),
    (b"ST,GS,+  1.234kg\nUS", 17, ScaleReading(ST, GS, Decimal("1.234"), Unit.KG)),
    (b"ST,GS,+  1.234kg", 0, None),  # no line end yet
    (b"\r\n", 2, None),
    (b"garbage\r\nST,GS,+1kg\r\n", 9, None),  # a bad line is skipped, the next one is not lost
    (b"x" * 70 + b"\r\nST", 72, None),  # an overlong line is skipped
    (b"x" * 70, 70, None),  # a run that never ends is dropped
])
def test_framing(wire, consumed, reading):
    assert decode(wire) == (consumed, reading)


@pytest.mark.parametrize("reading, wire", [
    (ScaleReading(ST, GS, Decimal("1.234"), Unit.KG), b"ST,GS,+  1.234kg\r\n"),
    (ScaleReading(US, NT, Decimal("-0.050"), Unit.KG), b"US,NT,-  0.050kg\r\n"),
    (ScaleReading(ST, None, Decimal("20.7"), Unit.G), b"ST,+   20.7g\r\n"),
    (ScaleReading(OL, GS, None, Unit.KG), b"OL,GS,+ ------kg\r\n"),
])
def test_golden_encode(reading, wire):
    assert encode(reading) == wire
    assert decode(wire) == (len(wire), reading)


def test_the_variant_without_a_comma_before_the_value_round_trips():
    reading = ScaleReading(ST, GS, Decimal("20.7"), Unit.G)
    wire = encode(reading, comma_before_value=False)
    assert wire == b"ST,GS +   20.7g\r\n"
    assert decode(wire) == (len(wire), reading)


@given(st.binary(max_size=80))
def test_parse_line_raises_only_parse_error(data):
    try:
        reading = parse_line(data)
    except ParseError:
        return
    assert reading.grams is None or isinstance(reading.grams, int)


@given(st.binary(max_size=200))
def test_decode_never_raises(data):
    buf = bytearray(data)
    while buf:
        consumed, reading = decode(buf)
        assert 0 <= consumed <= len(buf)
        if not consumed:
            break
        del buf[:consumed]


readings = st.builds(
    ScaleReading,
    st.sampled_from(Stability),
    st.none() | st.sampled_from(Kind),
    st.builds(lambda n, e: Decimal(n).scaleb(-e), st.integers(-999999, 999999), st.integers(0, 3)),
    st.sampled_from(Unit),
)


@given(readings)
def test_encode_then_decode_is_identity(reading):
    wire = encode(reading)
    assert decode(wire) == (len(wire), reading)
