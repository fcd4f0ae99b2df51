"""A generic aggregator / acquiring-bank barcode API, as used for e-CNY (数字人民币) payment codes.

**There is no official e-CNY merchant-side barcode-payment specification** (rules-and-identifiers.md
§4.3, open question 4): a station takes e-CNY through an acquiring bank or an aggregator (LianLian
``pay_type=DC_MICROPAY``, Huifu...), each with its own SDK. This backend is therefore not any one
vendor's protocol but the common shape of those APIs, kept configurable (``channel``, ``pay_type``,
base URL) so that a real contract needs a thin adapter or none. Confirm field names, states and the
signing rule against the chosen acquirer's documentation before taking money with it.

Wire format: ``POST`` a JSON object (UTF-8) to ``<base>/pay``, ``<base>/query``, ``<base>/reverse``::

    pay:     {merchant_id, out_trade_no, amount_fen, auth_code, pay_type, nonce, timestamp, sign}
    query:   {merchant_id, out_trade_no, nonce, timestamp, sign}
    reverse: {merchant_id, out_trade_no, nonce, timestamp, sign}
    reply:   {merchant_id, out_trade_no, state, reason?, transaction_id?, amount_fen?, nonce,
              timestamp, sign}

The signature travels **in the body, as the ``sign`` field** (not a header), as most Chinese
aggregators do: the signed fields and their signature stay together in any capture or replay::

    string = "&".join(f"{k}={v}" for k, v in sorted(fields) if v not in ("", None) and k != "sign")
    sign   = HMAC_SHA256(key=shared_key, msg=string.utf8).hex()          # lower-case hex

Values are flat: strings, or integers written in decimal (``amount_fen=1250``); floats, booleans
and nested values are refused, so the canonical string is never ambiguous. ``timestamp`` is Unix
seconds, ``nonce`` 32 random hex characters. Replies are signed the same way and verified.

``state`` mapping (pay and query): ``SUCCESS`` -> ``"paid"`` (same order and amount);
``USERPAYING`` / ``NOTPAY`` -> ``"user_paying"``; ``FAIL`` (``reason`` says why), ``CLOSED``,
``REVERSED``, ``REFUND`` -> ``"failed"``; ``ERROR`` (the aggregator could not tell: system error,
order already paid, order not found) and anything unlisted -> ``"unknown"``. Reverse: ``REVERSED``
/ ``CLOSED`` -> ``"reversed"``, ``REFUND`` -> ``"refunded"``, ``ERROR`` -> ``"retry"``, anything
else (``NOTEXIST``...) -> ``"unknown"``: staff must look. An unsigned or badly signed reply, a
network error or timeout is ``"unknown"`` (``"retry"`` for reverse, except a bad signature).

The payment code is a one-minute bearer token: it is sent on the wire and nowhere else; logs show
only its last 4 digits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from lockers.acquirers import AcquirerAnswer, HttpAcquirer, ReverseAnswer, mask_code

log = logging.getLogger(__name__)

ORDER_NO = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
AUTH_CODE = re.compile(r"^[0-9A-Za-z]{10,64}$")  # a generic auth_code: the acquirer decides (§3.3)
PAY_TYPE = re.compile(r"^[A-Z0-9_]{1,32}$")

#: pay / query ``state`` -> outcome; anything not listed is "unknown"
STATE_OUTCOME: dict[str, str] = {
    "SUCCESS": "paid",
    "USERPAYING": "user_paying",
    "NOTPAY": "user_paying",  # exists, not paid yet: keep polling, then reverse
    "FAIL": "failed",
    "CLOSED": "failed",
    "REVERSED": "failed",
    "REFUND": "failed",  # paid and refunded since: no money held for a service
}

#: reverse ``state`` -> outcome; anything not listed is "unknown"
REVERSE_STATE_OUTCOME: dict[str, str] = {
    "REVERSED": "reversed",
    "CLOSED": "reversed",
    "REFUND": "refunded",
    "ERROR": "retry",
}


# ---------------------------------------------------------------------------------------------
# Codec: pure functions, golden-testable


def canonical(fields: Mapping[str, Any]) -> str:
    """The string that gets signed: sorted ``k=v`` of non-empty fields except ``sign``.

    Raises ValueError for a value that has no single canonical text (float, bool, list, dict)."""
    parts = []
    for key in sorted(fields):
        value = fields[key]
        if key == "sign" or value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"field {key!r}: only strings and integers can be signed")
        parts.append(f"{key}={value}")
    return "&".join(parts)


def make_sign(fields: Mapping[str, Any], key: str) -> str:
    """HMAC-SHA256 of :func:`canonical` with the shared key, lower-case hex."""
    return hmac.new(key.encode("utf-8"), canonical(fields).encode("utf-8"),
                    hashlib.sha256).hexdigest()


def verify_sign(fields: Mapping[str, Any], key: str) -> bool:
    """True when ``fields["sign"]`` is present and matches (constant-time compare)."""
    got = fields.get("sign")
    if not isinstance(got, str) or not got:
        return False
    try:
        return hmac.compare_digest(got.lower(), make_sign(fields, key))
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Client


class AggregatorAcquirer(HttpAcquirer):
    """HTTP client of an aggregator's barcode API (see the module docstring: a generic shape, no
    official e-CNY spec exists).

    ``base_url``: the API root; ``/pay``, ``/query``, ``/reverse`` are appended. ``key``: the
    shared HMAC key. ``pay_type``: the aggregator's product code for the wallet
    (``DC_MICROPAY`` for e-CNY at LianLian). ``channel``: which payment codes this backend takes in
    :class:`lockers.payments.PaymentDesk` (``"ecny"`` by default). ``timeout``: seconds for each
    HTTP exchange; a pay that times out is ``"unknown"``, never retried here. ``client``: an
    injected ``httpx.AsyncClient`` (not closed by :meth:`aclose`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        merchant_id: str,
        key: str,
        pay_type: str = "DC_MICROPAY",
        channel: str = "ecny",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not base_url or not merchant_id or not key:
            raise ValueError("base_url, merchant_id and key are required")
        if not PAY_TYPE.match(pay_type):
            raise ValueError("pay_type must be 1-32 characters of [A-Z0-9_]")
        if not channel:
            raise ValueError("channel must not be empty")
        if not timeout > 0:
            raise ValueError("timeout must be positive seconds")
        self.base_url = base_url.rstrip("/")
        self._endpoint = self.base_url
        self.merchant_id = merchant_id
        self._key = key
        self.pay_type = pay_type
        self.channel = channel
        self.timeout = timeout
        self.clock = clock
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    def __repr__(self) -> str:
        return (f"AggregatorAcquirer({self.base_url!r}, channel={self.channel!r}, "
                f"merchant_id={self.merchant_id!r}, key=***)")

    # -- public API ---------------------------------------------------------------------------

    async def pay(
        self, order_no: str, amount_fen: int, auth_code: str, subject: str
    ) -> AcquirerAnswer:
        """Submit a barcode payment. Sent once; doubt is ``"unknown"`` / ``"user_paying"``.
        ``subject`` is not sent: the generic shape has no description field."""
        _check_order_no(order_no)
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise ValueError("amount_fen must be a positive integer (fen)")
        if not isinstance(auth_code, str) or not AUTH_CODE.match(auth_code):
            raise ValueError("not a payment code (10-64 letters or digits)")
        fields = {"out_trade_no": order_no, "amount_fen": amount_fen, "auth_code": auth_code,
                  "pay_type": self.pay_type}
        log.info("%s pay %s amount=%d code=%s", self.channel, order_no, amount_fen,
                 mask_code(auth_code))
        reply = await self._call("/pay", fields, order_no)
        answer = reply if isinstance(reply, AcquirerAnswer) else self._answer(reply, order_no,
                                                                              amount_fen)
        log.info("%s pay %s -> %s (%s)", self.channel, order_no, answer.outcome, answer.reason)
        return answer

    async def query(self, order_no: str) -> AcquirerAnswer:
        """The order's state; never charges."""
        _check_order_no(order_no)
        reply = await self._call("/query", {"out_trade_no": order_no}, order_no)
        answer = reply if isinstance(reply, AcquirerAnswer) else self._answer(reply, order_no, None)
        log.info("%s query %s -> %s (%s)", self.channel, order_no, answer.outcome, answer.reason)
        return answer

    async def reverse(self, order_no: str) -> ReverseAnswer:
        """Reverse: close an unpaid order (``REVERSED``) or refund a paid one (``REFUND``)."""
        _check_order_no(order_no)
        reply = await self._call("/reverse", {"out_trade_no": order_no}, order_no)
        if isinstance(reply, AcquirerAnswer):
            answer = ReverseAnswer("unknown" if reply.reason == "bad_signature" else "retry",
                                   reason=reply.reason)
        else:
            state = str(reply.get("state") or "")
            outcome = REVERSE_STATE_OUTCOME.get(state, "unknown")
            reason = None if outcome in ("reversed", "refunded") else _reason(reply)
            answer = ReverseAnswer(outcome, reason=reason)
        log.info("%s reverse %s -> %s (%s)", self.channel, order_no, answer.outcome, answer.reason)
        return answer

    # -- internals ----------------------------------------------------------------------------

    def _answer(self, reply: Mapping[str, Any], order_no: str,
                amount_fen: int | None) -> AcquirerAnswer:
        state = str(reply.get("state") or "")
        outcome = STATE_OUTCOME.get(state, "unknown")
        if outcome != "paid":
            return AcquirerAnswer(outcome, reason=_reason(reply))
        if amount_fen is not None and reply.get("amount_fen") not in (None, amount_fen):
            return AcquirerAnswer("unknown", reason="amount_mismatch")
        tid = reply.get("transaction_id")
        return AcquirerAnswer("paid", transaction_id=str(tid) if tid else None)

    async def _call(
        self, path: str, fields: dict[str, Any], order_no: str
    ) -> dict[str, Any] | AcquirerAnswer:
        """POST a signed request; the verified reply for this merchant and order, or ``"unknown"``."""
        body = {"merchant_id": self.merchant_id, **fields, "nonce": secrets.token_hex(16),
                "timestamp": int(self.clock())}
        body["sign"] = make_sign(body, self._key)
        what = f"{self.channel} {path.lstrip('/')} {order_no}"
        try:
            resp = await self._client.post(
                self.base_url + path, content=json.dumps(body).encode("utf-8"),
                timeout=self.timeout, headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except httpx.TimeoutException:
            log.warning("%s: timed out after %.1f s", what, self.timeout)
            return AcquirerAnswer("unknown", reason="timeout")
        except httpx.HTTPError as err:
            log.warning("%s: network error %s", what, type(err).__name__)
            return AcquirerAnswer("unknown", reason="network")
        if resp.status_code != 200:
            log.warning("%s: HTTP %d", what, resp.status_code)
            return AcquirerAnswer("unknown", reason=f"http_{resp.status_code}")
        try:
            reply = json.loads(resp.content.decode("utf-8"))
        except ValueError:
            log.warning("%s: unreadable answer", what)
            return AcquirerAnswer("unknown", reason="bad_json")
        if not isinstance(reply, dict):
            return AcquirerAnswer("unknown", reason="bad_json")
        if "sign" not in reply:
            log.warning("%s: unsigned answer", what)
            return AcquirerAnswer("unknown", reason="unsigned")
        if not verify_sign(reply, self._key):
            log.error("%s: reply signature does not verify", what)
            return AcquirerAnswer("unknown", reason="bad_signature")
        if reply.get("merchant_id") != self.merchant_id:
            log.error("%s: answer for another merchant", what)
            return AcquirerAnswer("unknown", reason="merchant_mismatch")
        if reply.get("out_trade_no") != order_no:
            log.error("%s: answer for another order", what)
            return AcquirerAnswer("unknown", reason="order_mismatch")
        return reply


def _reason(reply: Mapping[str, Any]) -> str:
    return str(reply.get("reason") or reply.get("state") or "NO_STATE")[:64]


def _check_order_no(order_no: str) -> None:
    if not isinstance(order_no, str) or not ORDER_NO.match(order_no):
        raise ValueError("order_no must be 1-64 characters of [A-Za-z0-9_-]")


__all__ = ["AggregatorAcquirer", "canonical", "make_sign", "verify_sign", "STATE_OUTCOME",
           "REVERSE_STATE_OUTCOME"]
