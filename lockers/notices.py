"""The words of the notices sent to residents. Sent in the station's language (Simplified Chinese)."""

from __future__ import annotations

import time
from typing import Any


def format_deadline(epoch: float) -> str:
    """``11月24日 15:30`` in the station's local time."""
    t = time.localtime(epoch)
    return f"{t.tm_mon}月{t.tm_mday}日 {t.tm_hour:02d}:{t.tm_min:02d}"


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}元"


def _fee_terms(fee_per_day_fen: int, fee_cap_fen: int) -> str:
    if fee_per_day_fen <= 0:
        return "逾期不收费"
    return f"逾期每天{yuan(fee_per_day_fen)}，最多{yuan(fee_cap_fen)}，取件前在屏幕上确认"


def pickup_notice(*, station: str, address: str, compartment: str, code: str, free_until: float,
                  tracking: str, link: str, fee_per_day_fen: int = 0,
                  fee_cap_fen: int = 0) -> tuple[str, dict[str, Any]]:
    """The pickup notice (rule R2): station, compartment, pickup code, the QR link, until when storage
    is free and what happens after (R8). Anyone holding the code may collect, so the notice says so."""
    where = f"{station}（{address}）" if address else station
    deadline = format_deadline(free_until)
    terms = _fee_terms(fee_per_day_fen, fee_cap_fen)
    text = (f"【{station}】您的快递（单号尾号{tracking[-4:]}）已存入{where}{compartment}号柜，"
            f"取件码 {code}，或在柜机扫码：{link} 。{deadline}前免费保管，{terms}。"
            f"凭取件码即可取件，可转告他人代取；开门后可验视，如需拒收请放回并关门。")
    params = {"station": station, "address": address, "compartment": compartment, "code": code,
              "link": link, "free_until": deadline, "fee_per_day_fen": fee_per_day_fen,
              "tracking_tail": tracking[-4:]}
    return text, params


def reminder_notice(*, station: str, compartment: str, free_until: float, tracking: str,
                    fee_per_day_fen: int = 0) -> tuple[str, dict[str, Any]]:
    """Sent before the free period ends. It holds no code: the code is known only to the resident."""
    deadline = format_deadline(free_until)
    after = "之后将收取保管费" if fee_per_day_fen > 0 else "请尽快取件"
    text = (f"【{station}】提醒：您的快递（单号尾号{tracking[-4:]}）在{compartment}号柜，"
            f"免费保管到{deadline}，{after}。取件码见之前的短信。")
    return text, {"station": station, "compartment": compartment, "free_until": deadline,
                  "tracking_tail": tracking[-4:]}
