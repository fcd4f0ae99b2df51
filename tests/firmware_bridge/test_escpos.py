import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from firmware_bridge import escpos
from firmware_bridge.escpos import (
    Align, Command, ErrorCause, OfflineCause, Op, PaperSensor, PrinterState, StatusByteError, decode, decode_status,
    encode_status,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def image_from_rows(rows: list[str]) -> Image.Image:
    """'#' black, '.' white."""
    white = np.array([[c == "." for c in row] for row in rows], dtype=bool)
    return Image.fromarray(white)


def decode_all(data: bytes) -> list[Command]:
    buf = bytearray(data)
    out = []
    while buf:
        consumed, command = decode(buf)
        assert consumed, f"stuck on {bytes(buf[:16]).hex(' ')}"
        del buf[:consumed]
        if command is not None:
            out.append(command)
    return out


@pytest.fixture(scope="module")
def dummy(tmp_path_factory):
    """python-escpos as an independent second encoder (hardware-protocols.md §4.5). Importing it
    writes a capabilities cache: keep that in pytest's temporary directory."""
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(tmp_path_factory.mktemp("escpos")))
    printer = pytest.importorskip("escpos.printer")
    return printer.Dummy()


# -- golden bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoded, wire", [
    (escpos.init(), "1B 40"),
    (escpos.feed(6), "1B 64 06"),
    (escpos.cut(), "1D 56 00"),
    (escpos.cut(partial=True), "1D 56 01"),
    (escpos.align(Align.CENTER), "1B 61 01"),
    (escpos.emphasis(True), "1B 45 01"),
    (escpos.status_request(1), "10 04 01"),
    (escpos.status_request(4), "10 04 04"),
    (escpos.text_line("HELLO"), "48 45 4C 4C 4F 0A"),
    # §4.2: 取件码 is C8 A1 BC FE C2 EB in GB18030/GBK, wrapped in FS & ... FS .
    (escpos.text("取件码"), "1C 26 C8 A1 BC FE C2 EB 1C 2E"),
    (escpos.text("No.取件码 1"), "4E 6F 2E 1C 26 C8 A1 BC FE C2 EB 1C 2E 20 31"),
    (escpos.text("A\x1b@B\n"), "41 20 40 42 20"),  # no command smuggled in through text
    (escpos.text("😀"), "1C 26 3F 1C 2E"),  # outside GBK: '?'
])
def test_golden_commands(encoded, wire):
    assert encoded == h(wire)


def test_raster_golden_bytes():
    image = image_from_rows(["#...............", "................", "...............#"])
    assert escpos.raster(image) == h("1D 76 30 00 02 00 03 00 80 00 00 00 00 01")


def test_raster_pads_a_width_that_is_not_a_multiple_of_8_with_white():
    image = image_from_rows(["..........", ".........#"])
    assert escpos.raster(image) == h("1D 76 30 00 02 00 02 00 00 00 00 40")


def test_raster_is_cut_into_bands():
    image = image_from_rows(["#" * 8] * 5)
    wire = escpos.raster(image, band_rows=2)
    assert wire == (h("1D 76 30 00 01 00 02 00 FF FF") + h("1D 76 30 00 01 00 02 00 FF FF")
                    + h("1D 76 30 00 01 00 01 00 FF"))


def test_a_raster_needs_a_1_bit_image():
    with pytest.raises(ValueError, match="1-bit"):
        escpos.raster(Image.new("L", (8, 8)))


@pytest.mark.parametrize("width", [8, 13, 64])
def test_raster_matches_python_escpos(dummy, width):
    rng = np.random.default_rng(width)
    image = Image.fromarray(rng.random((20, width)) > 0.5)
    dummy.clear()
    dummy.image(image)
    assert escpos.raster(image) == dummy.output


def test_feed_and_cut_match_python_escpos(dummy):
    dummy.clear()
    dummy.cut()
    assert escpos.feed(6) + escpos.cut() == dummy.output
    dummy.clear()
    dummy.cut(mode="PART")
    assert escpos.feed(6) + escpos.cut(partial=True) == dummy.output


# -- status bytes (§4.3) -----------------------------------------------------------------------


@pytest.mark.parametrize("n, value, flags", [
    (1, 0x12, PrinterState()),
    (1, 0x1A, PrinterState(offline=True)),
    (1, 0x16, PrinterState(drawer_pin_high=True)),
    (2, 0x12, OfflineCause()),
    (2, 0x16, OfflineCause(cover_open=True)),
    (2, 0x1A, OfflineCause(feeding_by_button=True)),
    (2, 0x32, OfflineCause(paper_end_stop=True)),
    (2, 0x52, OfflineCause(error=True)),
    (3, 0x1A, ErrorCause(cutter_error=True)),
    (3, 0x32, ErrorCause(unrecoverable_error=True)),
    (3, 0x52, ErrorCause(auto_recoverable_error=True)),
    (4, 0x12, PaperSensor()),
    (4, 0x1E, PaperSensor(near_end=True)),
    (4, 0x72, PaperSensor(paper_end=True)),
    (4, 0x7E, PaperSensor(near_end=True, paper_end=True)),
])
def test_golden_status_bytes(n, value, flags):
    assert decode_status(n, value) == flags


def test_python_escpos_masks_agree():
    # RT_MASK_ONLINE = 8, RT_MASK_PAPER = 18, RT_MASK_LOWPAPER = 30, RT_MASK_NOPAPER = 114
    assert decode_status(1, 0x12 | 8).offline
    assert decode_status(4, 18) == PaperSensor()
    assert decode_status(4, 30).near_end and not decode_status(4, 30).paper_end
    assert decode_status(4, 114).paper_end


@pytest.mark.parametrize("value", [0x00, 0xFF, 0x13, 0x92, 0x10, 0x02])
def test_a_byte_with_wrong_fixed_bits_is_not_a_status(value):
    with pytest.raises(StatusByteError):
        decode_status(1, value)


@given(st.integers(1, 4), st.integers(0, 255))
def test_status_decode_raises_only_the_declared_error_and_round_trips(n, value):
    try:
        flags = decode_status(n, value)
    except StatusByteError:
        assert not escpos.is_status_byte(value)
        return
    if n == 4:  # either bit of a sensor pair counts; the encoder sets both
        assert decode_status(4, encode_status(flags)) == flags
    else:
        assert encode_status(flags) == value
    assert escpos.status_number(flags) == n


# -- decoder -----------------------------------------------------------------------------------


def test_a_whole_job_decodes_in_order():
    image = image_from_rows(["#......#", ".#....#."])
    job = (escpos.init() + escpos.align(Align.CENTER) + escpos.text_line("取件码 PK1") + escpos.raster(image)
           + escpos.feed(4) + escpos.cut(partial=True))
    commands = decode_all(job)
    assert [c.op for c in commands] == [Op.INIT, Op.ALIGN, Op.CHINESE_ON, Op.TEXT, Op.CHINESE_OFF, Op.TEXT,
                                        Op.LINE_FEED, Op.RASTER, Op.FEED, Op.CUT]
    assert commands[3].data.decode("gb18030") == "取件码"
    assert commands[5].data == b" PK1"
    assert np.array_equal(np.asarray(commands[7].image()), np.asarray(image))
    assert commands[8].args == (4,) and commands[9].partial_cut
    assert b"".join(c.raw for c in commands) == job


def test_python_escpos_output_decodes(dummy):
    dummy.clear()
    dummy.set(align="center", bold=True)
    dummy.textln("取件码")
    dummy.qr("PKG123", native=True, size=6)
    dummy.barcode("{BSF1234567890", "CODE128", function_type="B")
    dummy.cut()
    commands = decode_all(dummy.output)
    ops = [c.op for c in commands]
    assert Op.OTHER not in ops[ops.index(Op.TEXT):]  # everything after the style commands is understood
    text = [c for c in commands if c.op is Op.TEXT]
    assert text[0].data.decode("gb18030") == "取件码"  # python-escpos sends bare GB18030, no FS &
    qr_store = [c for c in commands if c.op is Op.BLOCK and c.data[:3] == b"\x31\x50\x30"]
    assert qr_store[0].data[3:] == b"PKG123"
    barcode = [c for c in commands if c.op is Op.BARCODE]
    assert barcode[0].args == (0x49,) and barcode[0].data == b"{BSF1234567890"
    assert commands[-1].op is Op.CUT and commands[-2].op is Op.FEED


def test_partial_commands_wait_for_more_bytes():
    raster = escpos.raster(image_from_rows(["#" * 16] * 4))
    for cut in range(1, len(raster)):
        assert decode(raster[:cut]) == (0, None)
    assert decode(b"\x1b") == (0, None)
    assert decode(b"\x1d\x56\x41") == (0, None)  # GS V 65 takes a feed byte


def test_text_keeps_back_half_a_character_at_the_end_of_the_buffer():
    wire = escpos.MAX_TEXT * b"A" + "取".encode("gbk")
    consumed, command = decode(wire[: escpos.MAX_TEXT + 1])
    assert consumed == escpos.MAX_TEXT and command.data == b"A" * escpos.MAX_TEXT
    consumed, command = decode(b"A" * (escpos.MAX_TEXT - 1) + "取".encode("gbk"))
    assert consumed == escpos.MAX_TEXT - 1  # the two-byte character is not split
    assert decode(b"short text") == (0, None)  # no control byte yet: wait for the line feed
    assert decode(b"short text\n") == (10, Command(Op.TEXT, b"short text", data=b"short text"))


def test_an_oversized_raster_header_is_skipped_not_waited_for():
    consumed, command = decode(h("1D 76 30 00 FF FF FF FF") + b"\n")
    assert consumed == 8 and command.op is Op.OTHER


def test_unknown_bytes_are_consumed_as_other():
    assert decode(b"\x00") == (1, Command(Op.OTHER, b"\x00"))
    assert decode(b"\x1b\x01") == (2, Command(Op.OTHER, b"\x1b\x01"))


def test_command_repr_does_not_show_text():
    assert "PK1" not in repr(decode(b"PK1-SECRET\n")[1])


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decode_never_raises_and_always_makes_progress(data):
    buf = bytearray(data + b"\n" * 8)
    for _ in range(len(buf) + 1):
        consumed, command = decode(buf)
        assert 0 <= consumed <= len(buf)
        if consumed == 0:
            break
        assert command is None or b"".join([command.raw]) == bytes(buf[:consumed])
        del buf[:consumed]
    # whatever is left is a command still waiting for its declared length
    assert len(buf) == 0 or decode(buf) == (0, None)


@given(st.text(max_size=40))
def test_any_text_line_decodes_back_to_what_gbk_can_say(s):
    commands = decode_all(escpos.text_line(s))
    chinese = False
    out = ""
    for command in commands:
        if command.op is Op.CHINESE_ON:
            chinese = True
        elif command.op is Op.CHINESE_OFF:
            chinese = False
        elif command.op is Op.TEXT:
            out += command.data.decode("gb18030" if chinese else "ascii")
    expected = "".join(" " if ord(c) < 0x20 or c == "\x7f" else c for c in s)
    expected = expected.encode("gbk", errors="replace").decode("gbk")
    assert out == expected
    assert commands[-1].op is Op.LINE_FEED
