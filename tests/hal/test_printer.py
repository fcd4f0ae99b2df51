import asyncio
from datetime import datetime

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from firmware_bridge import escpos
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout, DeviceUnavailable, HalError
from hal.printer import (
    PROFILES, EscPosProtocol, Printer, PrinterNotReady, PrinterProfile, PrinterStatus, TsplProtocol, printer,
)
from simulators.escpos_printer import run_escpos_printer_sim
from simulators.tspl_printer import run_tspl_printer_sim

RECEIPT = ["取件码 628 415", "收件人：张*  138****5678", "Locker A-07, 2026-11-23 10:15",
           "混合 mixed 文本！"]


@pytest.fixture(params=["pty", "tcp"])
async def escpos_sim(request):
    running = await run_escpos_printer_sim(request.param)
    yield running
    await running.close()


@pytest.fixture(params=["pty", "tcp"])
async def tspl_sim(request):
    running = await run_tspl_printer_sim(request.param)
    yield running
    await running.close()


def barcodes_image(width: int, height: int, code128: str, qr: str, *, top: int = 10) -> Image.Image:
    """A 1-bit test image with a Code 128 and a QR code drawn by zxing-cpp, and a border."""
    white = np.ones((height, width), dtype=bool)
    bar = np.asarray(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(code128, zxingcpp.BarcodeFormat.Code128),
                                                     scale=2)) > 127
    square = np.asarray(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(qr, zxingcpp.BarcodeFormat.QRCode),
                                                        scale=4)) > 127
    white[top:top + bar.shape[0], 0:bar.shape[1]] = bar
    y = top + bar.shape[0] + 20
    white[y:y + square.shape[0], 0:square.shape[1]] = square
    white[0, :] = white[-1, :] = white[:, 0] = white[:, -1] = False
    return Image.fromarray(white)


def decoded(image: Image.Image) -> set[str]:
    return {r.text for r in zxingcpp.read_barcodes(image)}


def same_pixels(got: Image.Image, sent: Image.Image) -> bool:
    return np.array_equal(np.asarray(got.crop((0, 0, sent.width, sent.height)), dtype=bool),
                          np.asarray(sent, dtype=bool))


async def settle(predicate, timeout: float = 2.0) -> None:
    """Wait until the simulator has read what the driver wrote (the driver returns once the OS has it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "the simulator never got it"
        await asyncio.sleep(0.005)


# -- ESC/POS status ----------------------------------------------------------------------------


@pytest.mark.parametrize("act, expected", [
    (lambda s: None, PrinterStatus(online=True)),
    (lambda s: s.set_paper("near_end"), PrinterStatus(online=True, paper_low=True)),
    (lambda s: s.set_paper("out"), PrinterStatus(online=False, paper_out=True)),
    (lambda s: s.open_cover(), PrinterStatus(online=False, cover_open=True)),
    (lambda s: s.set_offline(), PrinterStatus(online=False)),
    (lambda s: s.set_error(cutter=True), PrinterStatus(online=False, errors=("cutter",))),
    (lambda s: s.set_error(unrecoverable=True), PrinterStatus(online=False, errors=("unrecoverable",))),
    (lambda s: s.set_error(head_overheat=True), PrinterStatus(online=False, errors=("auto_recoverable",))),
], ids=["ready", "near-end", "paper-out", "cover-open", "offline", "cutter", "unrecoverable", "overheat"])
async def test_escpos_status_flags(escpos_sim, act, expected):
    act(escpos_sim.sim)
    async with printer("escpos", escpos_sim.url) as p:
        status = await p.status()
    assert status == PrinterStatus(expected.online, expected.paper_out, expected.paper_low, expected.cover_open,
                                   expected.errors, raw=status.raw)
    assert status.raw == {f"dle_eot_{n}": escpos_sim.sim.status_byte(n) for n in (1, 2, 3, 4)}
    assert status.ready is (expected.online and not expected.errors)


def test_problems_name_the_cause_before_offline():
    assert PrinterStatus(online=False, paper_out=True).problems == ("paper_out",)
    assert PrinterStatus(online=False, cover_open=True, errors=("cutter",)).reasons == ("cover open", "cutter error")
    assert PrinterStatus(online=False).reasons == ("offline",)
    assert PrinterStatus(online=True, paper_low=True).problems == ()


# -- TSPL status -------------------------------------------------------------------------------


@pytest.mark.parametrize("flag, expected", [
    ("head_open", {"cover_open": True}),
    ("cover_open", {"cover_open": True}),
    ("paper_out", {"paper_out": True}),
    ("paper_jam", {"errors": ("paper_jam",)}),
    ("ribbon_out", {"errors": ("ribbon_out",)}),
    ("head_overheat", {"errors": ("head_overheat",)}),
    ("paused", {"online": False, "errors": ("paused",)}),
    ("printing", {"busy": True}),
])
async def test_tspl_status_flags(tspl_sim, flag, expected):
    tspl_sim.sim.set(**{flag: True})
    async with printer("tspl", tspl_sim.url) as p:
        status = await p.status()
    want = {"online": True, "paper_out": False, "cover_open": False, "errors": (), "busy": False, **expected}
    assert {k: getattr(status, k) for k in want} == want
    assert status.ready is (flag == "printing")
    assert status.raw == {"status": 1 << ["head_open", "paper_jam", "paper_out", "ribbon_out", "paused", "printing",
                                          "cover_open", "head_overheat"].index(flag)}


# -- refusing to print -------------------------------------------------------------------------


@pytest.mark.parametrize("act, reason", [
    (lambda s: s.set_paper("out"), "out of paper"),
    (lambda s: s.open_cover(), "cover open"),
    (lambda s: s.set_offline(), "offline"),
    (lambda s: s.set_error(cutter=True), "cutter error"),
])
async def test_escpos_refuses_to_print_when_not_ready_and_sends_nothing(escpos_sim, act, reason):
    act(escpos_sim.sim)
    async with printer("escpos", escpos_sim.url) as p:
        with pytest.raises(PrinterNotReady, match=reason) as caught:
            await p.print_image(barcodes_image(200, 300, "PK1", "PK1"))
        with pytest.raises(PrinterNotReady):
            await p.print_text_lines(RECEIPT)
    assert isinstance(caught.value, HalError) and not caught.value.status.ready
    received = bytes(escpos_sim.sim.received)
    assert received.replace(b"\x10\x04\x01", b"").replace(b"\x10\x04\x02", b"").replace(
        b"\x10\x04\x03", b"").replace(b"\x10\x04\x04", b"") == b""  # only status requests went out
    assert escpos_sim.sim.jobs == [] and escpos_sim.sim.state.lost_items == 0


@pytest.mark.parametrize("flag, reason", [("paper_out", "out of paper"), ("head_open", "cover open"),
                                          ("paper_jam", "paper jam"), ("paused", "paused")])
async def test_tspl_refuses_to_print_when_not_ready_and_sends_nothing(tspl_sim, flag, reason):
    tspl_sim.sim.set(**{flag: True})
    async with printer("tspl", tspl_sim.url) as p:
        with pytest.raises(PrinterNotReady, match=reason):
            await p.print_image(barcodes_image(200, 300, "PK1", "PK1"))
    assert bytes(tspl_sim.sim.received).replace(b"\x1b!?", b"") == b""
    assert tspl_sim.sim.labels == []


async def test_paper_low_still_prints(escpos_sim):
    escpos_sim.sim.set_paper("near_end")
    async with printer("escpos", escpos_sim.url) as p:
        await p.print_text_lines(["still printing"])
    await settle(lambda: escpos_sim.sim.jobs)
    assert escpos_sim.sim.jobs[0].lines == ["still printing"]


# -- raster round trip -------------------------------------------------------------------------


async def test_escpos_raster_round_trip_is_pixel_exact_and_scannable(escpos_sim):
    code128, qr = "SF1234567890", "PKG:ABC123 取件码"
    image = barcodes_image(301, 700, code128, qr)  # odd width: padding; 700 rows: several bands
    profile = PrinterProfile(width_dots=576, band_rows=256)
    async with Printer(_link(escpos_sim.url), profile, EscPosProtocol()) as p:
        await p.print_image(image)
    await settle(lambda: escpos_sim.sim.jobs)
    job = escpos_sim.sim.jobs[0]
    assert job.cut == "full" and job.feed_lines == profile.feed_lines and len(job.images) == 1
    printed = job.images[0]
    assert printed.size == (304, 700)
    assert same_pixels(printed, image)
    assert np.asarray(printed, dtype=bool)[:, 301:].all()  # the padding is white
    assert decoded(printed) == {code128, qr}
    assert bytes(escpos_sim.sim.received).count(b"\x1d\x76\x30\x00") == 3


async def test_tspl_label_round_trip_is_pixel_exact_and_scannable(tspl_sim):
    code128, qr = "PK-A07-628415", "https://example.org/p/628415 取件"
    profile = PROFILES["label-76x130"]
    width, height = profile.label_dots
    assert (width, height) == (607, 1039)  # kiosk-ux-and-stack.md §10.4
    label = barcodes_image(width, height, code128, qr, top=40)
    async with printer("tspl", tspl_sim.url, "label-76x130") as p:
        await p.print_image(label)
    await settle(lambda: tspl_sim.sim.labels)
    printed = tspl_sim.sim.labels[0]
    assert printed.image.size == (width, height) and printed.copies == 1
    assert printed.size_mm == (76, 130)
    assert same_pixels(printed.image, label)
    assert decoded(printed.image) == {code128, qr}
    assert tspl_sim.sim.settings["GAP"] == ("2 mm", "0 mm")


async def test_real_time_requests_inside_raster_data_do_not_fool_the_next_status():
    # raster rows whose bytes read 10 04 01 / 10 04 03: the printer answers them as they arrive
    rows = bytes([0x10, 0x04, 0x01, 0x10, 0x04, 0x03, 0x00, 0x00]) * 50
    image = escpos.unpack_rows(8, 50, rows, one_is_black=True)
    running = await run_escpos_printer_sim("pty")
    try:
        async with printer("escpos", running.url) as p:
            await p.print_image(image)
            await settle(lambda: running.sim.jobs)
            await asyncio.sleep(0.05)
            assert running.sim.state.status_requests >= 4 + 100  # the stray answers were sent
            running.sim.open_cover()
            status = await p.status()
        assert status.cover_open and not status.ready
        assert same_pixels(running.sim.jobs[0].images[0], image)
    finally:
        await running.close()


# -- Chinese text ------------------------------------------------------------------------------


async def test_escpos_chinese_receipt_text_round_trip(escpos_sim):
    async with printer("escpos", escpos_sim.url) as p:
        await p.print_text_lines(RECEIPT)
    await settle(lambda: escpos_sim.sim.jobs)
    assert escpos_sim.sim.jobs[0].lines == RECEIPT
    assert b"\x1c\x26" + "取件码".encode("gbk") + b"\x1c\x2e" in escpos_sim.sim.received


@pytest.mark.parametrize("boot_chinese", [True, False])
async def test_chinese_mode_is_switched_on_whatever_mode_the_printer_boots_in(boot_chinese):
    running = await run_escpos_printer_sim("pty", boot_chinese=boot_chinese)
    try:
        async with printer("escpos", running.url) as p:
            await p.print_text_lines(RECEIPT)
        # what python-escpos 3.1 sends for textln("取件码"): bare GB18030, no FS & (§4.2)
        async with _link(running.url) as link:
            await link.write(b"\x1b\x40" + "取件码".encode("gb18030") + b"\n" + escpos.cut())
        await settle(lambda: len(running.sim.jobs) == 2)
        assert running.sim.jobs[0].lines == RECEIPT
        bare = running.sim.jobs[1].lines
        assert bare == (["取件码"] if boot_chinese else ["╚í╝■┬δ"])  # garbled through code page 437
    finally:
        await running.close()


async def test_tspl_chinese_text_round_trip(tspl_sim):
    async with printer("tspl", tspl_sim.url) as p:
        await p.print_text_lines(RECEIPT)
    await settle(lambda: tspl_sim.sim.labels)
    label = tspl_sim.sim.labels[0]
    assert [t.content for t in label.texts] == RECEIPT
    assert {t.font for t in label.texts} == {"TSS24.BF2"}
    assert [t.y for t in label.texts] == [4, 36, 68, 100]


# -- the link ----------------------------------------------------------------------------------


async def test_unplugged_printer_is_an_io_error(escpos_sim):
    async with printer("escpos", escpos_sim.url) as p:
        assert (await p.status()).ready
        escpos_sim.sim.unplug()
        with pytest.raises(DeviceIOError):
            await p.status()
        with pytest.raises(DeviceIOError):
            await p.print_text_lines(["x"])


async def test_unplugged_label_printer_is_an_io_error(tspl_sim):
    async with printer("tspl", tspl_sim.url) as p:
        tspl_sim.sim.unplug()
        with pytest.raises(DeviceIOError):
            await p.print_image(barcodes_image(200, 300, "A", "A"))


async def test_a_silent_printer_times_out_and_one_lost_reply_is_retried(escpos_sim):
    async with printer("escpos", escpos_sim.url, PrinterProfile(status_timeout=0.1)) as p:
        escpos_sim.sim.drop_status_replies(1)
        assert (await p.status()).ready
        escpos_sim.sim.drop_status_replies(2)
        with pytest.raises(DeviceTimeout, match="DLE EOT 1"):
            await p.status()


async def test_a_silent_label_printer_times_out(tspl_sim):
    tspl_sim.sim.drop_status_replies(2)
    async with printer("tspl", tspl_sim.url, PrinterProfile.label(76, 130, status_timeout=0.1)) as p:
        with pytest.raises(DeviceTimeout):
            await p.status()


async def test_garbage_before_a_status_byte_is_not_taken_for_it(escpos_sim):
    escpos_sim.sim.open_cover()
    escpos_sim.sim.garbage_before_status(b"\x00", n=1)
    async with printer("escpos", escpos_sim.url) as p:
        status = await p.status()
    assert status.cover_open and not status.online


async def test_garbage_only_is_an_io_error(escpos_sim):
    escpos_sim.sim.garbage_before_status(b"\xff", n=2)
    async with printer("escpos", escpos_sim.url) as p:
        with pytest.raises(DeviceIOError, match="not an ESC/POS status byte"):
            await p.status()


async def test_a_printer_without_near_end_sensor_is_remembered():
    running = await run_escpos_printer_sim("pty", unsupported_status={4}, paper="near_end")
    try:
        async with printer("escpos", running.url, PrinterProfile(status_timeout=0.1)) as p:
            first = await p.status()
            before = running.sim.state.status_requests
            second = await p.status()
            assert p.protocol.unsupported == {4}
        assert first.ready and not first.paper_low and "dle_eot_4" not in first.raw
        assert second == first
        assert running.sim.state.status_requests - before == 3  # DLE EOT 4 is no longer asked
    finally:
        await running.close()


async def test_a_late_reply_from_a_slow_printer_is_not_taken_for_the_next_answer(escpos_sim):
    escpos_sim.sim.delay_status_replies(0.15, n=1)
    escpos_sim.sim.set_paper("out")
    async with printer("escpos", escpos_sim.url, PrinterProfile(status_timeout=0.1)) as p:
        first = await p.status()  # the first DLE EOT 1 times out, the retry is answered at once
        await asyncio.sleep(0.1)  # the late answer (offline) arrives now, after the retry's
        escpos_sim.sim.set_paper("ok")
        second = await p.status()
    assert first.paper_out and not first.online
    assert second.ready and second.raw == {f"dle_eot_{n}": 0x12 for n in (1, 2, 3, 4)}


async def test_open_errors():
    with pytest.raises(DeviceOpenError):
        async with printer("escpos", "/dev/does-not-exist-printer"):
            pass
    with pytest.raises(DeviceUnavailable):
        printer("zpl", "socket://127.0.0.1:9")
    with pytest.raises(ValueError, match="unknown printer profile"):
        printer("escpos", "socket://127.0.0.1:9", "receipt-99mm")


# -- jobs and profiles -------------------------------------------------------------------------


def test_golden_escpos_job():
    job = EscPosProtocol().job(["A", "取"], PrinterProfile())
    assert job == bytes.fromhex("1B40 410A 1C26 C8A1 1C2E 0A 1B6404 1D5600")
    assert EscPosProtocol().job([], PrinterProfile(cutter=False, feed_lines=2)) == bytes.fromhex("1B40 1B6402")


def test_golden_tspl_job():
    image = Image.new("1", (8, 1), 0)  # one row, all black
    job = TsplProtocol().job(["A", image], PrinterProfile.label(50, 30, density=8))
    assert job == (b"SIZE 50 mm,30 mm\r\nGAP 2 mm,0 mm\r\nDIRECTION 1\r\nDENSITY 8\r\nCLS\r\n"
                   b'TEXT 16,4,"TSS24.BF2",0,1,1,"A"\r\nBITMAP 0,32,1,1,0,\x00\r\nPRINT 1,1\r\n')


async def test_images_are_checked_before_anything_is_sent(escpos_sim):
    async with printer("escpos", escpos_sim.url, "receipt-58mm") as p:
        with pytest.raises(ValueError, match="1-bit"):
            await p.print_image(Image.new("L", (100, 100)))
        with pytest.raises(ValueError, match="does not fit"):
            await p.print_image(Image.new("1", (385, 10)))
    assert escpos_sim.sim.received == b""
    with pytest.raises(ValueError, match="does not fit"):
        TsplProtocol().job([Image.new("1", (100, 1040))], PROFILES["label-76x130"])


def test_profiles():
    label = PrinterProfile.label(76, 130)
    assert (label.width_dots, label.label_dots, label.dots_per_mm) == (607, (607, 1039), 203 / 25.4)
    assert PROFILES["receipt-80mm"].width_dots == 576 and PROFILES["receipt-58mm"].width_dots == 384
    with pytest.raises(LookupError):
        PrinterProfile(code_page="no-such-codec")
    with pytest.raises(ValueError, match="label_size_mm"):
        Printer(_link("socket://127.0.0.1:9"), PrinterProfile(), TsplProtocol())
    with pytest.raises(ValueError):
        PrinterProfile(density=20)


# -- test page ---------------------------------------------------------------------------------


async def test_escpos_test_page(escpos_sim):
    when = datetime(2026, 11, 23, 10, 15, 0)
    async with printer("escpos", escpos_sim.url, "receipt-58mm") as p:
        page = await p.test_page("Station 7 东门", when)
    await settle(lambda: escpos_sim.sim.jobs)
    job = escpos_sim.sim.jobs[0]
    assert job.lines == list(page.lines)
    assert job.lines[:3] == ["Station 7 东门", "2026-11-23 10:15:00", "中文测试：取件码 快递柜 收件人"]
    printed = job.images[0]
    assert printed.width == 384 and same_pixels(printed, page.image)
    assert decoded(printed) == {page.code128, page.qr} == {
        "PK-TEST-20261123101500", "postkiosk test page Station 7 东门 2026-11-23 10:15:00 测试"}
    ruler = ~np.asarray(printed, dtype=bool)[:40]
    assert ruler[0].all()  # the ruler spans the printable width
    assert ruler[2:24, 0].all() and ruler[2:24, 80].all() and ruler[2:8, 8].all() and not ruler[10, 8]
    assert ruler[:, 383].all()  # the last printable dot


async def test_tspl_test_page(tspl_sim):
    async with printer("tspl", tspl_sim.url) as p:
        page = await p.test_page("站点 A")
    await settle(lambda: tspl_sim.sim.labels)
    label = tspl_sim.sim.labels[0]
    assert [t.content for t in label.texts] == list(page.lines)
    assert decoded(label.image) == {page.code128, page.qr}
    assert same_pixels(label.image.crop((0, 128, 607, 128 + page.image.height)), page.image)


def _link(url: str):
    from firmware_bridge.link import SerialLink

    return SerialLink(url, 9600)
