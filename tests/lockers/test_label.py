import asyncio
import dataclasses
import io
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from hal.printer import printer
from lockers import label as label_module
from lockers.errors import InvalidInput
from lockers.label import (
    LabelData, LabelDoesNotFit, LabelFontMissing, label_png, label_size, label_texts, mask_any_phone, receipt_texts,
    render_label, render_receipt,
)
from simulators.escpos_printer import run_escpos_printer_sim
from simulators.tspl_printer import run_tspl_printer_sim

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
ID_SHAPED = re.compile(r"\d{17}[\dXx]")
VALID_ID = "11010519491231002X"  # the standard's published example number


def data(**changes) -> LabelData:
    base = dict(
        waybill="CP123456785CN", service="标准快递", sort_code="浙江 杭州 西湖",
        recipient_name="张三丰", recipient_phone="13812345678",
        recipient_address="浙江省杭州市西湖区文三路 398 号东方通信大厦 7 楼 701 室",
        sender_name="李四", sender_phone="0571-87654321",
        sender_address="北京市海淀区中关村南大街 5 号 2 号楼 3 单元 502",
        contents="衣物", quantity=2, weight_g=1250, price_fen=1200,
        posted_at=datetime(2026, 11, 23, 10, 15, tzinfo=timezone(timedelta(hours=8))),
        tracking_url="https://track.example.cn/CP123456785CN", real_name_checked=True, station="翠苑一区邮政服务站",
        dispatch_text="今日 17:00 前揽收，明日发出",
    )
    return LabelData(**{**base, **changes})


def decoded(image: Image.Image) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for r in zxingcpp.read_barcodes(image):
        found.setdefault(r.format.name, set()).add(r.text)
    return found


def check_golden(name: str, image: Image.Image) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(label_png(image))
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 once, look at it, and commit it"
    want = np.asarray(Image.open(path).convert("1"), dtype=bool)
    got = np.asarray(image, dtype=bool)
    assert got.shape == want.shape
    differ = int((got != want).sum())
    assert differ == 0, f"{differ} pixels differ from {path} (font or Pillow changed? regenerate with UPDATE_GOLDEN=1)"


# -- the image ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dpi, size", [(203, (607, 1039)), (300, (898, 1535))])
def test_label_is_a_1_bit_76_by_130_mm_image(dpi, size):
    image = render_label(data(), dpi=dpi)
    assert image.mode == "1" and image.size == size == label_size(dpi)


def test_label_matches_golden():
    check_golden("label_203dpi.png", render_label(data()))


def test_receipt_matches_golden():
    check_golden("receipt_576.png", render_receipt(data()))


@pytest.mark.parametrize("dpi", [203, 300])
def test_label_codes_decode_to_the_waybill_and_tracking_link(dpi):
    assert decoded(render_label(data(), dpi=dpi)) == {"Code128": {"CP123456785CN"},
                                                      "QRCode": {"https://track.example.cn/CP123456785CN"}}


@pytest.mark.parametrize("dpi", [203, 300])
def test_code128_bars_and_quiet_zone_are_wide_enough(dpi):
    image = render_label(data(), dpi=dpi)
    per_mm = dpi / 25.4
    row = ~np.asarray(image, dtype=bool)[round(25 * per_mm)]  # through the bars; True = black
    first, last = np.flatnonzero(row)[[0, -1]]
    bars = row[first:last + 1].astype(int)
    bounds = np.flatnonzero(np.diff(bars)) + 1
    runs = np.diff(np.concatenate([[0], bounds, [len(bars)]]))  # bars and spaces, in dots
    narrowest = runs.min()
    assert len(runs) > 50 and narrowest >= 0.25 * per_mm - 0.1  # 2 dots at 203 dpi, 3 at 300
    assert first >= 10 * narrowest and image.width - 1 - last >= 10 * narrowest


def test_receipt_codes_decode_and_width():
    image = render_receipt(data())
    assert image.mode == "1" and image.width == 576 and 600 < image.height < 1400
    assert decoded(image) == {"Code128": {"CP123456785CN"}, "QRCode": {"https://track.example.cn/CP123456785CN"}}
    assert render_receipt(data(), width_dots=384).width == 384  # 58 mm paper


def test_the_image_is_pure_black_and_white():
    image = render_label(data())
    assert set(np.unique(np.asarray(image.convert("L")))) == {0, 255}


def test_png_is_the_same_image():
    image = render_label(data())
    png = label_png(image)
    assert png.startswith(b"\x89PNG") and len(png) < 30_000
    back = Image.open(io.BytesIO(png))
    assert back.mode == "1" and np.array_equal(np.asarray(back), np.asarray(image))
    with pytest.raises(ValueError):
        label_png(image.convert("L"))


# -- personal data (R10, R14) ------------------------------------------------------------------


def test_names_and_phones_are_masked_and_addresses_complete():
    texts = label_texts(data())
    assert "张*  138****5678" in texts and "李*  057****4321" in texts
    joined = "".join(texts)
    for secret in ("13812345678", "87654321", "张三丰", "李四"):
        assert secret not in joined
    assert not ID_SHAPED.search(joined)
    assert "浙江省杭州市西湖区文三路 398 号东方通信大厦 7 楼 701 室" in joined  # the courier needs it whole


def test_the_receipt_masks_too():
    joined = "".join(receipt_texts(data()))
    assert "李*  057****4321" in joined
    for secret in ("13812345678", "87654321", "张三丰", "李四", "张*"):  # no recipient at all on the receipt
        assert secret not in joined
    assert "今日 17:00 前揽收，明日发出" in joined and "¥12.00" in joined


def test_there_is_no_id_number_field():
    assert not [f.name for f in dataclasses.fields(LabelData) if "id" in f.name.split("_")]


@pytest.mark.parametrize("field, value", [
    ("recipient_address", "杭州市西湖区 13812345678 收"),
    ("recipient_address", "杭州市西湖区 138-1234-5678"),
    ("sender_address", f"身份证 {VALID_ID}"),
    ("contents", "138 1234 5678"),
])
def test_phone_or_id_numbers_in_other_fields_are_refused(field, value):
    with pytest.raises(InvalidInput) as caught:
        data(**{field: value})
    assert caught.value.field == field
    assert "1234" not in str(caught.value) and "X" not in str(caught.value)


def test_real_name_stamp_only_when_checked_and_never_inspected():
    assert "已实名" in label_texts(data(real_name_checked=True))
    assert "已实名" not in label_texts(data(real_name_checked=False))
    assert not any("已验视" in t for t in label_texts(data()))


def test_repr_masks_personal_data():
    text = repr(data())
    assert "张*" in text and "138****5678" in text and "CP123456785CN" in text
    for secret in ("13812345678", "87654321", "张三丰", "文三路", "中关村"):
        assert secret not in text


@pytest.mark.parametrize("phone, masked", [
    ("13812345678", "138****5678"), ("+86 138 1234 5678", "138****5678"), ("0571-87654321", "057****4321"),
    ("010-12345678", "010****5678"), ("87654321", "****4321"), ("1234567", "*******"),
])
def test_phone_masking(phone, masked):
    assert mask_any_phone(phone) == masked


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, field", [
    ({"waybill": "cp123456785cn"}, "waybill"), ({"waybill": "CP 12"}, "waybill"), ({"quantity": 0}, "quantity"),
    ({"weight_g": -5}, "weight_g"), ({"price_fen": 1.5}, "price_fen"), ({"recipient_phone": "call me"}, "recipient_phone"),
    ({"sender_name": " "}, "sender_name"), ({"recipient_address": "line\nbreak"}, "recipient_address"),
    ({"posted_at": "today"}, "posted_at"),
])
def test_bad_fields_are_named(changes, field):
    with pytest.raises(InvalidInput) as caught:
        data(**changes)
    assert caught.value.field == field


def test_long_address_shrinks_then_is_refused():
    longest = "浙江省杭州市西湖区" + "文三路东方通信大厦七楼" * 10  # 119 characters: small type, still whole
    assert "".join(label_texts(data(recipient_address=longest))).count("文三路") == 10
    with pytest.raises(InvalidInput) as caught:
        data(recipient_address=longest + "东方通信")
    assert caught.value.field == "recipient_address" and "文三路" not in str(caught.value)


def test_a_sort_code_too_wide_for_the_header_is_refused():
    with pytest.raises(LabelDoesNotFit) as caught:
        render_label(data(sort_code="黑龙江省哈尔滨市道里区某某街道某某社区"))
    assert caught.value.field == "sort_code"


def test_a_word_longer_than_a_line_is_cut():
    word = "Building-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789-ABCDEFGHIJ"
    texts = label_texts(data(sender_address=f"北京市海淀区 {word}"))
    lines = texts[texts.index("李*  057****4321") + 1:texts.index("品名：衣物  数量：2")]
    assert len(lines) >= 2 and "".join(lines).replace(" ", "") == f"北京市海淀区{word}"


def test_bad_dpi():
    with pytest.raises(ValueError):
        render_label(data(), dpi=72)


def test_missing_font_names_the_package(monkeypatch, tmp_path):
    label_module._font.cache_clear()
    monkeypatch.setattr(label_module, "FONT_PATH", tmp_path / "none.ttc")
    try:
        with pytest.raises(LabelFontMissing, match="fonts-wqy-microhei"):
            render_label(data())
    finally:
        label_module._font.cache_clear()


# -- through the printers ----------------------------------------------------------------------


async def settle(predicate, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "the simulator never got it"
        await asyncio.sleep(0.005)


async def test_label_round_trip_through_the_tspl_printer():
    image = render_label(data())
    running = await run_tspl_printer_sim("pty")
    try:
        async with printer("tspl", running.url, "label-76x130") as p:
            await p.print_image(image)
        await settle(lambda: running.sim.labels)
    finally:
        await running.close()
    printed = running.sim.labels[0].image
    assert printed.size == image.size and np.array_equal(np.asarray(printed), np.asarray(image))
    assert decoded(printed) == {"Code128": {"CP123456785CN"}, "QRCode": {"https://track.example.cn/CP123456785CN"}}


async def test_receipt_round_trip_through_the_escpos_printer():
    image = render_receipt(data())
    running = await run_escpos_printer_sim("pty")
    try:
        async with printer("escpos", running.url, "receipt-80mm") as p:
            await p.print_image(image)
        await settle(lambda: running.sim.jobs)
    finally:
        await running.close()
    job = running.sim.jobs[0]
    assert job.cut == "full" and len(job.images) == 1
    assert decoded(job.images[0]) == {"Code128": {"CP123456785CN"},
                                      "QRCode": {"https://track.example.cn/CP123456785CN"}}
