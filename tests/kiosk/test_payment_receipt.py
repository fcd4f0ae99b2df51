"""The payment receipt on the ESC/POS receipt printer (its wire-level simulator over a pty): what was
paid, the amount, the wallet and the code's last 4 digits, the order number, and a QR to keep;
never the full payment code."""

from __future__ import annotations

from types import SimpleNamespace

from hal.printer import printer
from kiosk.payment import print_payment_receipt, receipt_lines
from lockers.payments import PaymentResult
from simulators.escpos_printer import run_escpos_printer_sim

PAID = PaymentResult(order_no="PK01_20261206_00000042", state="paid", channel="alipay", last4="4645",
                     amount_fen=150, purpose="storage_fee", reference="p7d1")
KIOSK = SimpleNamespace(station_name="幸福里社区邮政服务点")


def test_the_receipt_lines_name_the_payment_not_the_code():
    lines = receipt_lines(KIOSK, PAID, "保管费", at=1_796_000_000.0)
    assert lines[2:] == ["项目 保管费", "金额 1.50 元", "支付宝 尾号4645", "单号 PK01_20261206_00000042"]


async def test_the_receipt_is_printed_with_a_qr_to_keep():
    sim = await run_escpos_printer_sim("pty")
    try:
        async with printer("escpos", sim.url) as p:
            await print_payment_receipt(p, KIOSK, PAID, "保管费")
        job = sim.sim.jobs[-1]
        assert "支付宝 尾号4645" in job.lines and "单号 PK01_20261206_00000042" in job.lines
        kinds = [kind for kind, _content in job.barcodes]
        assert kinds == ["qr"] and "PK01_20261206_00000042" in job.barcodes[0][1]
        assert "289431869362714645" not in job.text
    finally:
        await sim.close()


async def test_a_code_goes_to_the_flow_that_asked_for_it_last():
    import asyncio
    import time

    from hal.codes import classify
    from kiosk.payment import BillSession, PaymentHub

    took: list[str] = []

    class Posting:
        live = SimpleNamespace(paying="scan")

        async def take_payment_code(self, code: str) -> None:
            took.append("posting")

    class Bills:
        async def pay(self, quote, code):
            took.append("bill")
            return SimpleNamespace(state="not_paid", reason="NOTENOUGH")

    kiosk = SimpleNamespace(posting=Posting(), bills=Bills(), payments=None,
                            terminal=SimpleNamespace(publish=lambda *a: None, busy=False))
    hub = PaymentHub(kiosk)  # type: ignore[arg-type]
    hub.bill = BillSession(SimpleNamespace(service="phone_bill", account_masked="139****5678", amount_fen=3000),
                           time.monotonic())  # type: ignore[arg-type]
    code = classify("134567890123456789")
    hub.asking = "bill"
    await hub.take(code)
    await asyncio.sleep(0)
    hub.asking = "posting"
    await hub.take(code)
    assert took == ["bill", "posting"]
