import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge import scanner_lines as sl
from firmware_bridge.scanner_lines import ScanLine, decode, encode

TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@pytest.mark.parametrize("wire, consumed, line", [
    (b"PK1-AB\r", 7, ScanLine(b"PK1-AB")),
    (b"PK1-AB\n", 7, ScanLine(b"PK1-AB")),
    (b"PK1-AB\r\n", 8, ScanLine(b"PK1-AB")),
    (b"PK1-AB\rNEXT", 7, ScanLine(b"PK1-AB")),
    (b"PK1-AB", 0, None),  # no suffix yet: need more bytes
    (b"\r", 1, None),  # empty lines are skipped
    (b"\n", 1, None),
    (b"\r\nX\r", 2, None),
    ("取件 PK1\r".encode(), len("取件 PK1\r".encode()), ScanLine("取件 PK1".encode())),
    (b"\xff\xfeAB\r", 5, ScanLine(b"\xff\xfeAB")),
])
def test_golden_lines(wire, consumed, line):
    assert decode(wire) == (consumed, line)


@pytest.mark.parametrize("wire, line", [
    (b"]Q1PK1-AB\r", ScanLine(b"PK1-AB", "]Q1")),
    (b"]C0SF1234567890\r\n", ScanLine(b"SF1234567890", "]C0")),
    (b"]E06901234567892\n", ScanLine(b"6901234567892", "]E0")),
    (b"PK1-AB\r", ScanLine(b"PK1-AB", None)),  # AIM id missing: kept whole
    (b"]Q\r", ScanLine(b"]Q", None)),  # too short for an identifier
])
def test_golden_aim_identifiers(wire, line):
    assert decode(wire, aim_ids=True) == (len(wire), line)


def test_an_identifier_alone_is_an_empty_line():
    assert decode(b"]Q1\r", aim_ids=True) == (4, None)


def test_aim_prefix_is_data_when_aim_ids_are_off():
    assert decode(b"]Q1PK1\r") == (7, ScanLine(b"]Q1PK1"))


def test_flush_ends_a_line_without_suffix():
    assert decode(b"]Q1PK1-AB", aim_ids=True, flush=True) == (9, ScanLine(b"PK1-AB", "]Q1"))
    assert decode(b"", flush=True) == (0, None)


def test_overlong_lines_are_dropped():
    assert decode(b"x" * 20, max_length=16) == (20, None)
    assert decode(b"x" * 20 + b"\rOK\r", max_length=16) == (21, None)
    assert decode(b"x" * 16, max_length=16) == (0, None)


def test_text_is_none_for_undecodable_bytes():
    assert ScanLine(b"\xff").text is None
    assert ScanLine("码".encode()).text == "码"


def test_encode_golden():
    assert encode(TOKEN) == TOKEN.encode() + b"\r"
    assert encode("码", symbology="]Q1", suffix=b"\r\n") == b"]Q1\xe7\xa0\x81\r\n"


def lines_of(buf: bytes, **kw):
    rest, found = bytearray(buf), []
    while rest:
        consumed, line = decode(rest, **kw)
        assert 0 <= consumed <= len(rest)
        if consumed == 0:
            break
        if line is not None:
            found.append(line)
        del rest[:consumed]
    return found, bytes(rest)


@given(st.binary(max_size=300), st.booleans(), st.booleans())
def test_never_raises_and_always_makes_progress(buf, aim_ids, flush):
    found, rest = lines_of(buf, aim_ids=aim_ids, flush=flush, max_length=64)
    assert b"\r" not in rest and b"\n" not in rest
    assert len(rest) <= 64
    if flush:
        assert rest == b""
    for line in found:
        assert line.data and b"\r" not in line.data and b"\n" not in line.data


codes = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), min_size=1, max_size=40)
suffixes = st.sampled_from([b"\r", b"\n", b"\r\n"])
aim = st.sampled_from(["]Q1", "]C0", "]E0", "]d2"])


@given(st.lists(st.tuples(codes, aim, suffixes), max_size=5), st.booleans())
def test_encoded_codes_come_back(items, aim_ids):
    wire = b"".join(encode(t, symbology=s if aim_ids else None, suffix=x) for t, s, x in items)
    found, rest = lines_of(wire, aim_ids=aim_ids)
    assert rest == b""
    assert [(line.text, line.symbology) for line in found] == [(t, s if aim_ids else None) for t, s, _ in items]


def test_max_line_fits_the_largest_qr():
    assert sl.MAX_LINE >= 2953
