"""Native Code 128 (GS k 73) and QR (GS ( k) encoders of firmware_bridge.escpos.

Golden bytes were derived by hand from the command layout in hardware-protocols.md §4.1 (python-escpos
Dummy output quoted there) and the Epson GS k / GS ( k reference; where python-escpos 3.1 can express
the same thing (code set B only, no "{" escaping; qr(native=True)) its Dummy printer is the second,
independent encoder.
"""

import os

import numpy as np
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import escpos
from firmware_bridge.escpos import Hri, Op, code128, code128_data, code128_modules, parse_code128, qr_code

PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
DIGITISH = st.text(st.sampled_from("0123456789{A-"), min_size=1, max_size=40)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def decode_all(data: bytes) -> list[escpos.Command]:
    buf, out = bytearray(data), []
    while buf:
        consumed, command = escpos.decode(buf)
        assert consumed, f"stuck on {bytes(buf[:16]).hex(' ')}"
        del buf[:consumed]
        if command is not None:
            out.append(command)
    return out


@pytest.fixture(scope="module")
def dummy(tmp_path_factory):
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(tmp_path_factory.mktemp("escpos")))
    printer = pytest.importorskip("escpos.printer")
    return printer.Dummy()


# -- golden bytes ------------------------------------------------------------------------------


def test_golden_code128_of_a_waybill_number_uses_code_set_c_for_the_digit_run():
    # GS h 80, GS w 2, GS f 0, GS H 2 (below), GS k 73 n=15:
    # {B "CP1" {C 00 00 00 03 (= "00000003") {B "CN"
    assert code128("CP100000003CN") == h(
        "1D 68 50 1D 77 02 1D 66 00 1D 48 02 1D 6B 49 0F"
        " 7B 42 43 50 31 7B 43 00 00 00 03 7B 42 43 4E")
    # start + 11 symbols + check + stop: the same width zxing-cpp chooses for this content
    assert code128_modules("CP100000003CN") == 156 == zxingcpp.create_barcode(
        "CP100000003CN", zxingcpp.BarcodeFormat.Code128).to_image(add_quiet_zones=False).shape[1]
    assert code128_modules("CP100000003CN", compact=False) == 178


@pytest.mark.parametrize("data, wire", [
    ("12", "7B 43 0C"),  # all digits, even: set C only
    ("123", "7B 43 0C 7B 42 33"),  # odd: the last digit back in set B
    ("1234AB", "7B 43 0C 22 7B 42 41 42"),  # 4 digits at the start pay for the switch
    ("A1234", "7B 42 41 7B 43 0C 22"),  # 4 at the end too
    ("A1234B", "7B 42 41 31 32 33 34 42"),  # 4 in the middle do not (two switches)
    ("A12345B", "7B 42 41 31 32 33 34 35 42"),
    ("A123456B", "7B 42 41 7B 43 0C 22 38 7B 42 42"),
    ("A1234567B", "7B 42 41 31 7B 43 17 2D 43 7B 42 42"),  # odd run in the middle: lead digit in B
    ("{x}", "7B 42 7B 7B 78 7D"),  # a literal "{" is doubled
])
def test_golden_code128_data(data, wire):
    assert code128_data(data) == h(wire)
    assert parse_code128(h(wire))[0] == data


@pytest.mark.parametrize("data, height, module, hri, pos", [
    ("CP100000003CN", 80, 2, Hri.BELOW, "BELOW"),
    ("SF1234567890", 64, 3, Hri.NONE, "OFF"),
    ("PK-A07 628415", 162, 6, Hri.ABOVE, "ABOVE"),
    ("x", 1, 2, Hri.BOTH, "BOTH"),
])
def test_code128_set_b_matches_python_escpos(dummy, data, height, module, hri, pos):
    dummy.clear()
    dummy.barcode("{B" + data, "CODE128", function_type="B", height=height, width=module, pos=pos, align_ct=False)
    assert code128(data, height=height, module=module, hri=hri, compact=False) == dummy.output


def test_golden_qr_code():
    # hardware-protocols.md §4.1: qr("PKG123", native=True, size=6, ec=0)
    assert qr_code("PKG123", module=6, ec="L") == h(
        "1D 28 6B 04 00 31 41 32 00  1D 28 6B 03 00 31 43 06  1D 28 6B 03 00 31 45 30"
        "  1D 28 6B 09 00 31 50 30 50 4B 47 31 32 33  1D 28 6B 03 00 31 51 30")


@pytest.mark.parametrize("data, module, ec, level", [
    ("PKG123", 6, "L", 0),
    ("https://track.example.cn/CP100000003CN", 4, "M", 1),
    ("取件码 A1", 4, "H", 3),  # UTF-8 bytes, as python-escpos sends them
    ("x" * 300, 16, "Q", 2),  # pL pH = 303 = 2F 01
])
def test_qr_code_matches_python_escpos(dummy, data, module, ec, level):
    dummy.clear()
    dummy.qr(data, native=True, size=module, ec=level)
    assert qr_code(data, module=module, ec=ec) == dummy.output


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data, kwargs, match", [
    ("", {}, "at least one"),
    ("取件码", {}, "printable ASCII"),
    ("A\nB", {}, "printable ASCII"),
    ("A" * 254, {}, "at most 255"),
    ("{" * 127, {}, "at most 255"),
    ("A", {"height": 0}, "height"),
    ("A", {"height": 256}, "height"),
    ("A", {"module": 1}, "module"),
    ("A", {"module": 7}, "module"),
])
def test_code128_refuses(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        code128(data, **kwargs)


def test_code128_error_does_not_echo_the_data():
    with pytest.raises(ValueError) as err:
        code128("张三13812345678")
    assert "张" not in str(err.value) and "1381" not in str(err.value)


@pytest.mark.parametrize("data, kwargs, match", [
    ("", {}, "at least one"),
    ("A", {"module": 0}, "1-16"),
    ("A", {"module": 17}, "1-16"),
    ("A", {"ec": "X"}, "error correction"),
    ("A" * 1274, {"ec": "H"}, "do not fit"),
    ("码" * 778, {"ec": "M"}, "do not fit"),  # 2334 UTF-8 bytes > 2331
])
def test_qr_code_refuses(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        qr_code(data, **kwargs)


@pytest.mark.parametrize("payload, match", [
    (b"", "code set selection"),
    (b"AB", "code set selection"),
    (b"{B", "no characters"),
    (b"{C\x64", "0-99"),
    (b"{BA{", "lone"),
    (b"{BA{1", "not supported"),  # FNC1
    (b"{CA{{", "not supported"),  # "{{" is set B only
    (b"{A\x60", "code set A"),
    (b"{B\x1f", "code set B"),
])
def test_parse_code128_refuses_what_a_printer_would(payload, match):
    with pytest.raises(ValueError, match=match):
        parse_code128(payload)


def test_parse_code128_reads_code_set_a():
    assert parse_code128(b"{AAB\x0d{C\x01") == ("AB\r01", 5)


# -- properties --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(PRINTABLE, DIGITISH), st.booleans())
def test_code128_data_round_trips_and_compact_is_never_wider(data, compact):
    payload = code128_data(data, compact=compact)
    assert parse_code128(payload)[0] == data
    assert code128_modules(data) <= code128_modules(data, compact=False)
    assert payload.startswith((b"{B", b"{C"))


@settings(max_examples=60, deadline=None)
@given(st.one_of(PRINTABLE, DIGITISH))
def test_code128_picture_scans_back(data):
    picture = escpos.code128_picture(data, module=2, height=40, hri=Hri.NONE)
    bars = ~np.asarray(picture, dtype=bool)
    assert picture.height == 40 and (bars == bars[0]).all()  # every row the same bars
    framed = np.pad(np.asarray(picture, dtype=np.uint8) * 255, 24, constant_values=255)
    assert [r.text for r in zxingcpp.read_barcodes(framed)] == [data]


# -- the decoder side --------------------------------------------------------------------------


def test_encoded_codes_decode_into_barcode_and_qr_blocks():
    stream = code128("CP100000003CN") + qr_code("https://track.example.cn/CP100000003CN")
    commands = decode_all(stream)
    assert b"".join(c.raw for c in commands) == stream
    assert [c.op for c in commands] == [Op.SETTING] * 4 + [Op.BARCODE] + [Op.BLOCK] * 5
    barcode = commands[4]
    assert barcode.args == (escpos.CODE128,) and parse_code128(barcode.data) == ("CP100000003CN", 11)
    store = commands[8]
    assert store.data == b"\x31\x50\x30https://track.example.cn/CP100000003CN"


def test_pictures_have_the_requested_module_size_and_hri_rows():
    plain = escpos.code128_picture("CP100000003CN", module=3, height=50, hri=Hri.NONE)
    both = escpos.code128_picture("CP100000003CN", module=3, height=50, hri=Hri.BOTH)
    assert plain.size == (156 * 3, 50)
    assert both.width == plain.width and both.height > plain.height + 20
    qr = escpos.qr_picture("https://track.example.cn/CP100000003CN", module=5, ec="M")
    assert qr.size == (29 * 5, 29 * 5)  # version 3
    with pytest.raises(ValueError):
        escpos.qr_picture("x" * 3000, ec="H")
