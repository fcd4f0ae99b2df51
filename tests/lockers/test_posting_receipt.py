"""The posting receipt on an ESC/POS printer: Chinese text through FS & mode and the printer's own
Code 128 and QR, read back from the simulator's paper with zxing-cpp; masked, no ID number."""

from __future__ import annotations

import asyncio
import re

import zxingcpp

from hal.printer import printer
from lockers.posting import receipt_parts
from simulators.escpos_printer import run_escpos_printer_sim
from tests.lockers.test_label import data


async def test_the_receipt_prints_natively_and_scans_back_to_the_waybill():
    label = data()
    sim = await run_escpos_printer_sim("pty")
    try:
        async with printer("escpos", sim.url) as p:
            await p.print_job(receipt_parts(label))
        for _ in range(300):
            if sim.sim.jobs:
                break
            await asyncio.sleep(0.01)
        [job] = sim.sim.jobs
    finally:
        await sim.close()
    found = {(r.format, r.text) for r in zxingcpp.read_barcodes(job.paper())}
    assert (zxingcpp.BarcodeFormat.Code128, label.waybill) in found
    assert (zxingcpp.BarcodeFormat.QRCode, label.tracking_url) in found
    text = "\n".join(job.lines)
    assert f"运单号 {label.waybill}" in text and "邮费 12.00 元" in text and "?" not in text  # every character was in the code page
    assert label.recipient_phone not in text and label.sender_phone not in text
    assert label.recipient_name not in text  # masked to the first character
    assert not re.search(r"\d{17}[\dX]", text)  # no ID number on a receipt (T-E3)
