"""The words of the notices sent to residents. Sent in the station's language (Simplified Chinese)."""

from __future__ import annotations

import time
from typing import Any


def format_deadline(epoch: float) -> str:
    """``11月24日 15:30`` in the station's local time."""
    t = time.localtime(epoch)
    return f"{t.tm_mon}月{t.tm_mday}日 {t.tm_hour:02d}:{t.tm_min:02d}"


def pickup_notice(*, station: str, address: str, compartment: str, code: str, free_until: float,
                  tracking: str) -> tuple[str, dict[str, Any]]:
    """The pickup notice (rule R2): station, compartment, pickup code and until when storage is free.

    Anyone holding the code may collect, so the notice says so.
    """
    where = f"{station}（{address}）" if address else station
    deadline = format_deadline(free_until)
    text = (f"【{station}】您的快递（单号尾号{tracking[-4:]}）已存入{where}{compartment}号柜，"
            f"取件码 {code}，{deadline}前免费保管。凭取件码即可取件，可转告他人代取。")
    params = {"station": station, "address": address, "compartment": compartment, "code": code,
              "free_until": deadline, "tracking_tail": tracking[-4:]}
    return text, params
