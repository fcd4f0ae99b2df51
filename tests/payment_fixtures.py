"""What the payment tests share: the WeChat Pay v2 credentials the gateway simulator starts with,
and the payment timings of rules-and-identifiers.md §4.4 scaled down (5 s / 30 s / 15 s become
50 ms / 300 ms / 150 ms) so a scenario runs in well under a second with the ratios kept."""

from __future__ import annotations

from typing import Any

from lockers.payments import PaymentSettings

#: ``simulators.pay_gateway.run_pay_gateway``'s default WeChat merchant
APPID, MCH, KEY = "wx2421b1c4370ec43b", "10000100", "sim-key-0123456789abcdef01234567"


def fast_settings(**overrides: Any) -> PaymentSettings:
    options: dict[str, Any] = dict(station_id="T01", query_interval=0.05, give_up_after=0.3,
                                   reverse_not_before=0.15, reverse_retry_interval=0.05, call_timeout=0.5)
    options.update(overrides)
    return PaymentSettings(**options)
