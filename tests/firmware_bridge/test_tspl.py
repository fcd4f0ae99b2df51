import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from firmware_bridge import tspl
from firmware_bridge.tspl import Bitmap, Command, Immediate, LabelPrinterStatus, Unknown, decode


def image_from_rows(rows: list[str]) -> Image.Image:
    return Image.fromarray(np.array([[c == "." for c in row] for row in rows], dtype=bool))


def decode_all(data: bytes, chunk: int | None = None) -> list:
    """Decode ``data`` as it would arrive, ``chunk`` bytes at a time (None: all at once)."""
    buf = bytearray()
    out = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        buf += piece
        while buf:
            consumed, frame = decode(buf)
            if not consumed:
                break
            del buf[:consumed]
            if frame is not None:
                out.append(frame)
    assert not buf
    return out


# -- golden bytes (hardware-protocols.md §4.4, kiosk-ux-and-stack.md §10.5) ---------------------


@pytest.mark.parametrize("encoded, wire", [
    (tspl.size_mm(76, 130), b"SIZE 76 mm,130 mm\r\n"),
    (tspl.size_mm(50, 30), b"SIZE 50 mm,30 mm\r\n"),
    (tspl.gap_mm(2, 0), b"GAP 2 mm,0 mm\r\n"),
    (tspl.gap_mm(2.5), b"GAP 2.5 mm,0 mm\r\n"),
    (tspl.direction(1), b"DIRECTION 1\r\n"),
    (tspl.density(8), b"DENSITY 8\r\n"),
    (tspl.cls(), b"CLS\r\n"),
    (tspl.print_(1, 1), b"PRINT 1,1\r\n"),
    (tspl.status_query(), b"\x1b!?"),
    (tspl.text(16, 16, "PKG123", font="3"), b'TEXT 16,16,"3",0,1,1,"PKG123"\r\n'),
    (tspl.text(16, 200, "取件码"), b'TEXT 16,200,"TSS24.BF2",0,1,1,"' + bytes.fromhex("C8A1BCFEC2EB") + b'"\r\n'),
    (tspl.text(0, 0, 'say "hi"', font="3"), b'TEXT 0,0,"3",0,1,1,"say \\["]hi\\["]"\r\n'),
])
def test_golden_commands(encoded, wire):
    assert encoded == wire


def test_bitmap_golden_bytes_zero_is_black():
    image = image_from_rows(["#...............", "..............##"])
    assert tspl.bitmap(8, 16, image) == b"BITMAP 8,16,2,2,0," + bytes.fromhex("7FFF FFFC") + b"\r\n"


def test_bitmap_pads_with_white():
    image = image_from_rows(["..........", ".........#"])
    assert tspl.bitmap(0, 0, image, tspl.BitmapMode.OR) == b"BITMAP 0,0,2,2,1," + bytes.fromhex("FFFF FFBF") + b"\r\n"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        tspl.density(16)
    with pytest.raises(ValueError):
        tspl.print_(0)
    with pytest.raises(ValueError, match="1-bit"):
        tspl.bitmap(0, 0, Image.new("L", (8, 8)))


# -- status ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, flag", [
    (0x01, "head_open"), (0x02, "paper_jam"), (0x04, "paper_out"), (0x08, "ribbon_out"),
    (0x10, "paused"), (0x20, "printing"), (0x40, "cover_open"), (0x80, "head_overheat"),
])
def test_each_status_bit(value, flag):
    status = tspl.decode_status(value)
    assert status == LabelPrinterStatus(**{flag: True})
    assert tspl.encode_status(status) == value
    assert status.ready is (flag == "printing")


def test_zero_is_ready():
    assert tspl.decode_status(0) == LabelPrinterStatus() and LabelPrinterStatus().ready


@given(st.integers(0, 255))
def test_every_status_byte_round_trips(value):
    assert tspl.encode_status(tspl.decode_status(value)) == value


# -- decoder -----------------------------------------------------------------------------------


def job_with_awkward_bitmap() -> tuple[bytes, Image.Image]:
    # rows whose bytes hold CR, LF, ESC ! ? and "PRINT": framing must go by length, not by content
    data = b"\r\n\x1b!?" + b"PRINT" + bytes(6)
    image = tspl.Bitmap(0, 0, 4, 4, 0, data).image()
    job = (tspl.size_mm(76, 130) + tspl.gap_mm(2) + tspl.direction(1) + tspl.cls()
           + tspl.text(16, 8, "取件码 PK1") + tspl.bitmap(0, 40, image) + tspl.print_(1, 1))
    return job, image


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_a_job_decodes_whatever_the_chunking(chunk):
    job, image = job_with_awkward_bitmap()
    frames = decode_all(job, chunk)
    assert frames[:4] == [Command("SIZE", ("76 mm", "130 mm")), Command("GAP", ("2 mm", "0 mm")),
                          Command("DIRECTION", ("1",)), Command("CLS")]
    assert frames[4] == Command("TEXT", ("16", "8", "TSS24.BF2", "0", "1", "1", "取件码 PK1"))
    bitmap = frames[5]
    assert isinstance(bitmap, Bitmap) and (bitmap.x, bitmap.y, bitmap.width_bytes, bitmap.height) == (0, 40, 4, 4)
    assert np.array_equal(np.asarray(bitmap.image()), np.asarray(image))
    assert frames[6] == Command("PRINT", ("1", "1"))
    assert len(frames) == 7


def test_immediate_status_query_between_commands():
    assert decode_all(b"CLS\r\n\x1b!?PRINT 1\r\n") == [Command("CLS"), Immediate("?"), Command("PRINT", ("1",))]


def test_commas_and_escaped_quotes_inside_strings():
    frames = decode_all(b'TEXT 1,2,"3",0,1,1,"a, b \\["]c\\["]"\r\n')
    assert frames == [Command("TEXT", ("1", "2", "3", "0", "1", "1", 'a, b "c"'))]


def test_resynchronisation():
    assert decode(b"\r\n") == (2, None)  # empty line
    assert decode(b"CLS") == (0, None)  # no line end yet
    assert decode(b"BITMAP 0,0,2") == (0, None)  # header still arriving
    assert decode(b"BITMAP x,0,2,2,0,\r\nCLS\r\n") == (19, Unknown(b"BITMAP x,0,2,2,0,"))
    assert decode(b"x" * (tspl.MAX_LINE + 5)) == (tspl.MAX_LINE + 5, None)
    assert decode(b"\x1bA") == (0, None)
    assert decode(b"\x1bAB") == (1, Unknown(b"\x1b"))
    assert decode(b"cls\n") == (4, Command("CLS"))


def test_sizes_in_mm_inches_and_dots():
    assert tspl.mm_or_inches("76 mm", 203) == 607
    assert tspl.mm_or_inches("130 mm", 203) == 1039
    assert tspl.mm_or_inches("2", 203) == 406
    assert tspl.mm_or_inches("100 dot", 203) == 100


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_decode_never_raises(data):
    buf = bytearray(data + b"\r\n")
    while buf:
        consumed, _ = decode(buf)
        assert 0 <= consumed <= len(buf)
        if not consumed:
            break
        del buf[:consumed]


@given(st.text(max_size=30))
def test_any_text_survives_the_round_trip_as_far_as_gbk_allows(s):
    frames = decode_all(tspl.text(5, 6, s))
    expected = "".join(" " if ord(c) < 0x20 or c == "\x7f" else c for c in s)
    expected = expected.encode("gbk", errors="replace").decode("gbk")
    assert frames == [Command("TEXT", ("5", "6", "TSS24.BF2", "0", "1", "1", expected))]
