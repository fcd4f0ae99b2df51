"""The ESC/POS printer simulator draws native Code 128 and QR codes into its paper."""

import asyncio
import os

import numpy as np
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import escpos
from firmware_bridge.escpos import Align, Hri
from firmware_bridge.link import SerialLink
from simulators.escpos_printer import EscPosPrinterSimulator, run_escpos_printer_sim

WAYBILL = "CP100000003CN"
TRACK = "https://track.example.cn/CP100000003CN"


def feed(sim: EscPosPrinterSimulator, data: bytes) -> list[bytes]:
    """Hand ``data`` to ``sim`` as one host connection would; returns what it answered."""
    replies: list[bytes] = []
    session = sim.SESSION(sim, lambda reply: replies.append(reply) or True, "test")
    session.feed(data)
    return replies


def scanned(image) -> list[tuple[str, str]]:
    kinds = {zxingcpp.BarcodeFormat.Code128: "code128", zxingcpp.BarcodeFormat.QRCode: "qr"}
    return [(kinds[r.format], r.text) for r in zxingcpp.read_barcodes(image)]


def black_columns(image) -> np.ndarray:
    return np.flatnonzero((~np.asarray(image, dtype=bool)).any(axis=0))


def extent(image) -> int:
    """Dots from the first black column to the last."""
    columns = black_columns(image)
    return int(columns[-1] - columns[0] + 1)


def test_code128_and_qr_are_drawn_where_esc_a_puts_them_and_scan_back():
    sim = EscPosPrinterSimulator(width_dots=576)
    feed(sim, escpos.init() + escpos.align(Align.CENTER) + escpos.code128(WAYBILL, height=60, module=2)
         + escpos.align(Align.RIGHT) + escpos.qr_code(TRACK, module=4, ec="Q") + escpos.align(Align.LEFT)
         + escpos.text_line("取件码 628415") + escpos.feed(3) + escpos.cut())
    [job] = sim.jobs
    assert job.barcodes == sim.barcodes == [("code128", WAYBILL), ("qr", TRACK)]
    bar, square = job.images
    assert job.lines == ["取件码 628415"] and job.items[2] == "取件码 628415"
    assert bar.width == square.width == 576
    columns = black_columns(bar)
    assert abs((columns[0] + columns[-1]) / 2 - 288) <= 2  # centred
    assert black_columns(square)[-1] == 575  # right-aligned, no quiet zone of its own
    assert extent(square) == 33 * 4  # version 4 at level Q, 4 dots a module
    assert bar.height > 60  # bars plus the human-readable line below
    assert sorted(scanned(job.paper())) == sorted(job.barcodes)


def test_settings_come_from_gs_h_gs_w_gs_h_and_reset_with_esc_at():
    sim = EscPosPrinterSimulator()
    feed(sim, escpos.code128("A1", height=30, module=3, hri=Hri.NONE) + escpos.cut())
    assert sim.jobs[0].images[0].height == 30
    assert extent(sim.jobs[0].images[0]) == (11 * 2 + 35) * 3  # {B "A" "1": 2 symbols, module 3
    # after ESC @: Epson defaults, 162 dots high, module 3, no HRI; GS k without settings
    feed(sim, escpos.init() + b"\x1d\x6b\x49\x04{BA1" + escpos.cut())
    assert sim.jobs[1].images[0].height == 162
    assert sim.jobs[1].barcodes == [("code128", "A1")]


def test_python_escpos_native_output_prints(tmp_path):
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(tmp_path))
    printer = pytest.importorskip("escpos.printer")
    dummy = printer.Dummy()
    dummy.barcode("{B" + WAYBILL, "CODE128", function_type="B", height=80, width=2)
    dummy.qr("取件码 A1", native=True, size=5, ec=2)
    dummy.cut()
    sim = EscPosPrinterSimulator()
    feed(sim, dummy.output)
    assert sim.jobs[0].barcodes == [("code128", WAYBILL), ("qr", "取件码 A1")]
    assert sorted(scanned(sim.jobs[0].paper())) == sorted(sim.jobs[0].barcodes)


@pytest.mark.parametrize("stream", [
    escpos.code128("W" * 40, module=2),  # 950 dots on 576: a printer skips it
    escpos.qr_code("x" * 1000, module=8, ec="H"),  # version 31, far wider than the paper
    b"\x1d\x6b\x49\x03{C\x64",  # 100 is not a set C value
    b"\x1d\x6b\x49\x02AB",  # no code set selection
    b"\x1d\x6b\x43\x0c400638133393",  # EAN-13 (m=67) is not simulated
    b"\x1d\x28\x6b\x04\x00\x31\x41\x31\x00" + escpos.qr_code("x")[9:],  # model 1
], ids=["code128-too-wide", "qr-too-wide", "bad-set-c", "no-code-set", "ean13", "qr-model-1"])
def test_codes_a_printer_would_skip_are_refused_not_drawn(stream):
    sim = EscPosPrinterSimulator()
    feed(sim, stream + escpos.text_line("after") + escpos.cut())
    assert sim.barcodes == [] and sim.jobs[0].images == [] and sim.state.refused_codes == 1
    assert sim.jobs[0].lines == ["after"]  # decoding goes on


def test_qr_print_without_stored_data_is_refused():
    sim = EscPosPrinterSimulator()
    feed(sim, b"\x1d\x28\x6b\x03\x00\x31\x51\x30" + escpos.cut())
    assert sim.state.refused_codes == 1 and sim.barcodes == []


def test_codes_are_lost_while_the_printer_cannot_print():
    sim = EscPosPrinterSimulator(paper="out")
    feed(sim, escpos.code128(WAYBILL) + escpos.qr_code(TRACK))
    assert sim.barcodes == [] and sim.state.lost_items == 2


def test_qr_of_bytes_that_are_not_utf8_is_still_printed():
    sim = EscPosPrinterSimulator()
    body = b"\x31\x50\x30\xff\xfe"
    feed(sim, b"\x1d\x28\x6b\x05\x00" + body + b"\x1d\x28\x6b\x03\x00\x31\x51\x30" + escpos.cut())
    assert sim.barcodes == [("qr", "\xff\xfe")]


def test_paper_stacks_the_images_inside_a_margin():
    sim = EscPosPrinterSimulator(width_dots=384)
    feed(sim, escpos.code128("A1", height=20, hri=Hri.NONE) + escpos.qr_code("x", module=2) + escpos.cut())
    paper = sim.jobs[0].paper(margin=10, gap=5)
    assert paper.size == (384 + 20, 20 + 5 + 21 * 2 + 20)
    assert np.asarray(paper, dtype=bool)[:10].all() and np.asarray(paper, dtype=bool)[:, :10].all()


def test_width_is_checked():
    with pytest.raises(ValueError, match="width_dots"):
        EscPosPrinterSimulator(width_dots=0)


@settings(max_examples=80, deadline=None)
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40), st.booleans())
def test_code128_round_trips_through_the_simulator(data, compact):
    sim = EscPosPrinterSimulator(width_dots=1024)  # 40 set-B characters at module 2 are 950 dots
    feed(sim, escpos.code128(data, height=30, module=2, hri=Hri.NONE, compact=compact) + escpos.cut())
    assert sim.barcodes == [("code128", data)]
    assert scanned(sim.jobs[0].paper()) == [("code128", data)]


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_codes_arrive_over_a_real_transport(transport):
    running = await run_escpos_printer_sim(transport, width_dots=384)
    try:
        async with SerialLink(running.url, 9600) as link:
            await link.write(escpos.code128(WAYBILL) + escpos.qr_code(TRACK) + escpos.cut())
            for _ in range(200):
                if running.sim.jobs:
                    break
                await asyncio.sleep(0.01)
        assert running.sim.barcodes == [("code128", WAYBILL), ("qr", TRACK)]
        assert running.sim.jobs[0].images[0].width == 384
    finally:
        await running.close()
