"""Code128 and QrCode parts of a print job: native ESC/POS codes, a bitmap on TSPL."""

import asyncio

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from firmware_bridge import escpos
from hal.printer import (
    PROFILES, Code128, EscPosProtocol, Printer, PrinterNotReady, PrinterProfile, QrCode, TsplProtocol,
    code_width_dots, printer, render_code,
)
from simulators.escpos_printer import run_escpos_printer_sim
from simulators.tspl_printer import run_tspl_printer_sim

WAYBILL = "CP100000003CN"
TRACK = "https://track.example.cn/CP100000003CN"
LINES = ["中国邮政 社区服务点", "运单号 CP100000003CN", "收件人：张*  138****5678", "寄递时间 2026-11-23 10:15"]


@pytest.fixture(params=["pty", "tcp"])
async def escpos_sim(request):
    running = await run_escpos_printer_sim(request.param)
    yield running
    await running.close()


@pytest.fixture
async def tspl_sim():
    running = await run_tspl_printer_sim("pty")
    yield running
    await running.close()


async def settle(predicate, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "the simulator never got it"
        await asyncio.sleep(0.005)


def scanned(image: Image.Image) -> set[tuple[str, str]]:
    kinds = {zxingcpp.BarcodeFormat.Code128: "code128", zxingcpp.BarcodeFormat.QRCode: "qr"}
    return {(kinds[r.format], r.text) for r in zxingcpp.read_barcodes(image)}


async def test_receipt_with_chinese_lines_and_native_codes_prints_and_scans_back(escpos_sim):
    async with printer("escpos", escpos_sim.url) as p:
        await p.print_job([*LINES, Code128(WAYBILL), QrCode(TRACK)])
    await settle(lambda: escpos_sim.sim.jobs)
    [job] = escpos_sim.sim.jobs
    assert job.cut == "full"
    assert job.lines == LINES  # FS & text reads back in Chinese
    assert job.barcodes == [("code128", WAYBILL), ("qr", TRACK)]
    assert scanned(job.paper()) == {("code128", WAYBILL), ("qr", TRACK)}
    assert [type(item).__name__ for item in job.items] == ["str"] * 4 + ["Image"] * 2
    received = bytes(escpos_sim.sim.received)
    assert b"\x1c\x26" + "中国邮政".encode("gbk") in received
    assert escpos.code128(WAYBILL) in received and escpos.qr_code(TRACK) in received
    assert b"\x1d\x76\x30" not in received  # no raster: the printer drew the codes


def test_golden_escpos_job_with_codes():
    job = EscPosProtocol().job(["取", Code128("A1", height=40, hri=False), QrCode("PKG123", module=4, ec="L")],
                               PrinterProfile())
    assert job == bytes.fromhex(
        "1B40 1C26 C8A1 1C2E 0A"
        " 1B6101 1D6828 1D7702 1D6600 1D4800 1D6B49 04 7B42 4131 1B6100"
        " 1B6101 1D286B 0400 3141 3200 1D286B 0300 3143 04 1D286B 0300 3145 30"
        " 1D286B 0900 3150 30 504B47313233 1D286B 0300 3151 30 1B6100"
        " 1B6404 1D5600")


async def test_a_code_wider_than_the_paper_is_refused_before_anything_is_sent(escpos_sim):
    async with printer("escpos", escpos_sim.url, "receipt-58mm") as p:
        with pytest.raises(ValueError, match="does not fit 384 dots"):
            await p.print_job(["x", Code128("W" * 30)])  # (30 * 11 + 35) * 2 = 730 dots
        with pytest.raises(ValueError, match="does not fit 384 dots"):
            await p.print_job([QrCode("x" * 500, module=6)])
    assert escpos_sim.sim.received == b""


async def test_codes_are_not_sent_to_a_printer_that_is_not_ready(escpos_sim):
    escpos_sim.sim.set_paper("out")
    async with printer("escpos", escpos_sim.url) as p:
        with pytest.raises(PrinterNotReady, match="out of paper"):
            await p.print_job([Code128(WAYBILL), QrCode(TRACK)])
    assert b"\x1d\x6b" not in escpos_sim.sim.received


async def test_label_printer_gets_the_codes_as_a_bitmap(tspl_sim):
    async with printer("tspl", tspl_sim.url) as p:
        await p.print_job([*LINES, Code128(WAYBILL), QrCode(TRACK, module=5)])
    await settle(lambda: tspl_sim.sim.labels)
    label = tspl_sim.sim.labels[0]
    assert [t.content for t in label.texts] == LINES
    assert scanned(label.image) == {("code128", WAYBILL), ("qr", TRACK)}
    bar = render_code(Code128(WAYBILL), 607)
    top = 4 * TsplProtocol.LINE_PITCH
    assert np.array_equal(np.asarray(label.image.crop((0, top, 607, top + bar.height)), dtype=bool),
                          np.asarray(bar, dtype=bool))


def test_label_too_small_for_a_code_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        TsplProtocol().job([QrCode("x" * 200, module=8)], PrinterProfile.label(40, 30))
    with pytest.raises(ValueError, match="does not fit"):
        TsplProtocol().job(["a"] * 7 + [Code128(WAYBILL)], PrinterProfile.label(76, 30))


def test_render_code_centres_the_symbol():
    strip = render_code(QrCode(TRACK, module=4), 576)
    black = np.flatnonzero((~np.asarray(strip, dtype=bool)).any(axis=0))
    assert strip.size == (576, 29 * 4) and black[0] == (576 - 29 * 4) // 2
    assert render_code(Code128(WAYBILL, hri=False, height=50)).size == (156 * 2, 50)
    assert code_width_dots(Code128(WAYBILL, module=3)) == 156 * 3
    assert code_width_dots(QrCode(TRACK, module=4)) == 29 * 4


@pytest.mark.parametrize("make, match", [
    (lambda: Code128(""), "at least one"),
    (lambda: Code128("取件码"), "printable ASCII"),
    (lambda: Code128(WAYBILL, module=1), "module"),
    (lambda: Code128(WAYBILL, height=300), "height"),
    (lambda: QrCode(TRACK, ec="X"), "error correction"),
    (lambda: QrCode(TRACK, module=20), "1-16"),
    (lambda: QrCode(""), "at least one"),
])
def test_parts_are_checked_when_made(make, match):
    with pytest.raises(ValueError, match=match):
        make()
    with pytest.raises(TypeError):
        Code128(12345)  # type: ignore[arg-type]


def test_part_repr_hides_the_content():
    assert "628415" not in repr(Code128("PK628415")) and "628415" not in repr(QrCode("取件码 628415"))
    assert repr(Code128("PK628415")) == "Code128(<8 chars>, height=80, module=2, hri=True)"
    assert Code128(WAYBILL) == Code128(WAYBILL) and hash(QrCode(TRACK)) == hash(QrCode(TRACK))


async def test_existing_image_and_text_checks_still_apply(escpos_sim):
    async with Printer(_link(escpos_sim.url), PROFILES["receipt-58mm"], EscPosProtocol()) as p:
        with pytest.raises(ValueError, match="1-bit"):
            await p.print_job([Code128(WAYBILL), Image.new("L", (10, 10))])
    assert escpos_sim.sim.received == b""


def _link(url: str):
    from firmware_bridge.link import SerialLink

    return SerialLink(url, 9600)
