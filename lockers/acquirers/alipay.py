"""Alipay open API barcode payment (当面付 ``alipay.trade.pay``, ``scene=bar_code``): pay, query, cancel.

Wire format (spec rules-and-identifiers.md §4.2): one gateway URL
(``https://openapi.alipay.com/gateway.do``); every call is a form ``POST``
(``application/x-www-form-urlencoded; charset=utf-8``) of the common parameters plus
``biz_content`` (the method's own fields as a JSON object)::

    app_id, method, format=JSON, charset=utf-8, sign_type=RSA2,
    timestamp="yyyy-MM-dd HH:mm:ss" (Asia/Shanghai), version=1.0, biz_content, sign

    string = "&".join(f"{k}={v}" for k, v in sorted(params) if v != "" and k != "sign")
    sign   = base64(SHA256withRSA_PKCS1v15(app_private_key, string.utf8))          # "RSA2"

Values are signed as they are, not URL-encoded. The answer is JSON::

    {"alipay_trade_pay_response":{"code":"10000","msg":"Success",...},"sign":"<base64>"}

and ``sign`` is verified with Alipay's public key over the **exact raw text** of the
``*_response`` value as it came over the wire (Alipay signs its own serialisation; re-serialising
would change spacing or escapes and break a genuine signature, or worse, let a different text
pass). :func:`response_spans` finds that raw text without re-encoding anything. Public-key mode
only; certificate mode (``alipay_cert_sn``) is not implemented.

Mapping rules (§4.2, §4.5):

* ``"paid"`` only on a signed ``code=10000`` answer for this order (and, for pay, this amount)
  whose ``trade_status``, when present, is ``TRADE_SUCCESS`` / ``TRADE_FINISHED``.
* ``10003`` (``WAIT_BUYER_PAY``, the payer must confirm on the phone) is ``"user_paying"``.
* ``20000``, ``ACQ.SYSTEM_ERROR``, ``ACQ.TRADE_HAS_SUCCESS`` (already paid: query confirms, never a
  second charge), any unlisted sub_code, an unsigned or badly signed answer, a network error or
  timeout: ``"unknown"``; the state machine queries and then cancels.
* ``40004`` with a definite business refusal (:data:`PAY_FAILED_SUB_CODES`) and ``40001`` /
  ``40002`` / ``40006`` (the request itself was refused): ``"failed"``, ``sub_code`` as reason.
* Query: ``TRADE_CLOSED`` is ``"failed"``; ``ACQ.TRADE_NOT_EXIST`` is ``"unknown"``, never
  ``"failed"``: a pay call that timed out may still land after the query, and only a cancel
  (which Alipay also applies to a trade it has not seen yet) makes that impossible.
* Cancel (``alipay.trade.cancel``): ``retry_flag=Y`` means call again; ``action=close`` the
  trade was unpaid and is closed; ``action=refund`` it was paid and is refunded. A transient
  ``20000`` / ``ACQ.SYSTEM_ERROR`` is ``"retry"`` too (§4.2: retry with identical parameters until
  a definite answer); anything else, including a ``10000`` without ``action``, is ``"unknown"``.
  (``10003``, ``retry_flag`` and ``action`` are [U] in the spec: from memory, confirm in sandbox.)

The payment code is a one-minute bearer token: it is sent on the wire and nowhere else; logs show
only its last 4 digits.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lockers.acquirers import AcquirerAnswer, HttpAcquirer, ReverseAnswer, mask_code

log = logging.getLogger(__name__)

ALIPAY_AUTH_CODE = re.compile(r"^(2[5-9]|30)\d{14,22}$")
ORDER_NO = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
MAX_SUBJECT_CHARS = 256
MIN_KEY_BITS = 2048
ALIPAY_TZ = ZoneInfo("Asia/Shanghai")

PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})

#: query trade_status -> outcome; anything not listed is "unknown"
TRADE_STATUS_OUTCOME: dict[str, str] = {
    "TRADE_SUCCESS": "paid",
    "TRADE_FINISHED": "paid",
    "WAIT_BUYER_PAY": "user_paying",
    "TRADE_CLOSED": "failed",  # unpaid and closed, or paid and fully refunded: no money held
}

#: 40004 sub_codes of alipay.trade.pay that say for sure nothing was charged
PAY_FAILED_SUB_CODES = frozenset({
    "ACQ.PAYMENT_AUTH_CODE_INVALID",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH",
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
    "ACQ.ERROR_BALANCE_PAYMENT_DISABLE",
    "ACQ.TRADE_HAS_CLOSE",
    "ACQ.BUYER_SELLER_EQUAL",
    "ACQ.TRADE_BUYER_NOT_MATCH",
    "ACQ.BUYER_ENABLE_STATUS_FORBID",
    "ACQ.PULL_MOBILE_CASHIER_FAIL",
    "ACQ.MOBILE_PAYMENT_SWITCH_OFF",
    "ACQ.PAYMENT_FAIL",
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
    "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
    "ACQ.BEYOND_PAY_RESTRICTION",
    "ACQ.BEYOND_PER_RECEIPT_RESTRICTION",
    "ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT",
    "ACQ.PAYMENT_REQUEST_HAS_RISK",
    "ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE",
    "ACQ.USER_FACE_PAYMENT_SWITCH_OFF",
    "ACQ.SELLER_BEEN_BLOCKED",
    "ACQ.INVALID_PARAMETER",
    "ACQ.ACCESS_FORBIDDEN",
    "ACQ.EXIST_FORBIDDEN_WORD",
    "ACQ.PARTNER_ERROR",
    "ACQ.TOTAL_FEE_EXCEED",
    "ACQ.INVALID_STORE_ID",
})

#: public codes that refuse the request itself (missing / invalid parameter, no permission)
REQUEST_REFUSED_CODES = frozenset({"40001", "40002", "40006"})

KeyMaterial = Union[str, bytes, Path, rsa.RSAPrivateKey, rsa.RSAPublicKey]


# ---------------------------------------------------------------------------------------------
# Codec: pure functions, golden-testable


def sign_string(params: Mapping[str, str]) -> str:
    """The string that gets signed: sorted ``k=v`` of non-empty parameters except ``sign``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def rsa2_sign(text: str, private_key: rsa.RSAPrivateKey) -> str:
    """RSA2: base64 of SHA256withRSA (PKCS#1 v1.5) over the UTF-8 text (deterministic)."""
    raw = private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode("ascii")


def rsa2_verify(text: str, signature: str, public_key: rsa.RSAPublicKey) -> bool:
    """True when ``signature`` (base64) is a valid RSA2 signature of ``text`` by that key."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def yuan(amount_fen: int) -> str:
    """Fen to Alipay's ``total_amount``: yuan with exactly two decimals, no float on the way."""
    return f"{amount_fen // 100}.{amount_fen % 100:02d}"


_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def fen(total_amount: str) -> int | None:
    """Alipay's yuan text back to fen, exactly; None when it is not a plain amount."""
    if not isinstance(total_amount, str) or not _AMOUNT.match(total_amount):
        return None
    return int(Decimal(total_amount) * 100)


def alipay_timestamp(now: float) -> str:
    """The ``timestamp`` parameter: ``yyyy-MM-dd HH:mm:ss`` in Asia/Shanghai."""
    return dt.datetime.fromtimestamp(now, ALIPAY_TZ).strftime("%Y-%m-%d %H:%M:%S")


def response_key(method: str) -> str:
    """``alipay.trade.pay`` -> ``alipay_trade_pay_response``."""
    return method.replace(".", "_") + "_response"


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def response_spans(text: str) -> dict[str, tuple[int, int]]:
    """Where each top-level value of a JSON object sits in ``text``: key -> (start, end).

    ``text[start:end]`` is the value's raw text exactly as received, which is what Alipay signs.
    Raises ValueError for anything but one well-formed JSON object, or a repeated key (two
    ``*_response`` values would make "which one was signed" ambiguous).
    """
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    try:
        i = _skip_ws(text, 0)
        if text[i] != "{":
            raise ValueError("not a JSON object")
        i = _skip_ws(text, i + 1)
        if text[i] == "}":
            i += 1
        else:
            while True:
                if text[i] != '"':
                    raise ValueError("expected a key")
                key, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
                i = _skip_ws(text, i)
                if text[i] != ":":
                    raise ValueError("expected ':'")
                i = _skip_ws(text, i + 1)
                _, end = decoder.raw_decode(text, i)
                if key in spans:
                    raise ValueError(f"repeated key {key!r}")
                spans[key] = (i, end)
                i = _skip_ws(text, end)
                if text[i] == ",":
                    i = _skip_ws(text, i + 1)
                    continue
                if text[i] == "}":
                    i += 1
                    break
                raise ValueError("expected ',' or '}'")
    except IndexError as err:
        raise ValueError("truncated JSON") from err
    if _skip_ws(text, i) != len(text):
        raise ValueError("trailing data after the JSON object")
    return spans


# -- keys


def _key_bytes(material: str | bytes | Path, what: str) -> tuple[str, bytes]:
    """("pem" | "der", bytes) from a PEM text, a file path, or bare base64 DER (Alipay's console
    hands keys out as one base64 line without PEM armour)."""
    if isinstance(material, Path):
        try:
            return _key_bytes(material.read_bytes(), what)
        except OSError as err:
            raise ValueError(f"{what}: cannot read key file {material}: {err.strerror}") from err
    if isinstance(material, bytes):
        if b"-----BEGIN" in material:
            return "pem", material
        material = material.decode("ascii", errors="replace")
    text = material.strip()
    if not text:
        raise ValueError(f"{what}: empty key")
    if text.startswith("-----BEGIN"):
        return "pem", text.encode("ascii", errors="replace")
    if os.path.isfile(text):
        return _key_bytes(Path(text), what)
    try:
        return "der", base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"{what}: neither a PEM key, an existing key file, nor base64 DER") from err


def load_private_key(material: KeyMaterial, what: str = "private key") -> rsa.RSAPrivateKey:
    """An RSA private key (PKCS#8 or PKCS#1, unencrypted) of at least 2048 bits."""
    if isinstance(material, rsa.RSAPrivateKey):
        key: Any = material
    else:
        if isinstance(material, rsa.RSAPublicKey):
            raise ValueError(f"{what}: a public key was given where the private key is needed")
        kind, data = _key_bytes(material, what)
        try:
            if kind == "pem":
                key = serialization.load_pem_private_key(data, password=None)
            else:
                key = serialization.load_der_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise ValueError(f"{what}: not a readable unencrypted private key") from err
    return _check_rsa(key, rsa.RSAPrivateKey, what)


def load_public_key(material: KeyMaterial, what: str = "public key") -> rsa.RSAPublicKey:
    """An RSA public key (SubjectPublicKeyInfo or PKCS#1) of at least 2048 bits."""
    if isinstance(material, rsa.RSAPublicKey):
        key: Any = material
    elif isinstance(material, rsa.RSAPrivateKey):
        raise ValueError(f"{what}: a private key was given where the public key is needed")
    else:
        kind, data = _key_bytes(material, what)
        try:
            if kind == "pem":
                key = serialization.load_pem_public_key(data)
            else:
                key = serialization.load_der_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise ValueError(f"{what}: not a readable public key") from err
    return _check_rsa(key, rsa.RSAPublicKey, what)


def _check_rsa(key: Any, kind: type, what: str) -> Any:
    if not isinstance(key, kind):
        raise ValueError(f"{what}: RSA2 needs an RSA key, got {type(key).__name__}")
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"{what}: {key.key_size}-bit RSA key; RSA2 needs at least {MIN_KEY_BITS}")
    return key


# ---------------------------------------------------------------------------------------------
# Client


class AlipayAcquirer(HttpAcquirer):
    """HTTP client of the Alipay open API gateway (``openapi.alipay.com/gateway.do``, the sandbox
    or the simulator's ``/gateway.do``).

    ``private_key``: the application's RSA private key; ``alipay_public_key``: Alipay's public key
    that signs the answers (both: a key object, PEM text, a file path or base64 DER).
    ``timeout``: seconds for each HTTP exchange; a pay that times out is ``"unknown"``, never
    retried here (retrying a pay can charge twice; the state machine queries instead).
    ``client``: an injected ``httpx.AsyncClient`` (not closed by :meth:`aclose`). ``clock``:
    seconds since the epoch, for the ``timestamp`` parameter.
    """

    def __init__(
        self,
        gateway_url: str,
        *,
        app_id: str,
        private_key: KeyMaterial,
        alipay_public_key: KeyMaterial,
        channel: str = "alipay",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not app_id or not gateway_url:
            raise ValueError("gateway_url and app_id are required")
        if not channel:
            raise ValueError("channel must not be empty")
        if not timeout > 0:
            raise ValueError("timeout must be positive seconds")
        self.gateway_url = gateway_url
        self._endpoint = self.gateway_url
        self.app_id = app_id
        self.channel = channel
        self._private_key = load_private_key(private_key, "app private key")
        self._alipay_key = load_public_key(alipay_public_key, "Alipay public key")
        self.timeout = timeout
        self.clock = clock
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    def __repr__(self) -> str:
        return f"AlipayAcquirer({self.gateway_url!r}, app_id={self.app_id!r}, private_key=***)"

    # -- public API ---------------------------------------------------------------------------

    async def pay(
        self, order_no: str, amount_fen: int, auth_code: str, subject: str
    ) -> AcquirerAnswer:
        """``alipay.trade.pay`` with ``scene=bar_code``. Sent once; doubt is ``"unknown"``."""
        _check_order_no(order_no)
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise ValueError("amount_fen must be a positive integer (fen)")
        if not isinstance(auth_code, str) or not ALIPAY_AUTH_CODE.match(auth_code):
            raise ValueError("not an Alipay payment code (16-24 digits starting 25-30)")
        if not subject or len(subject) > MAX_SUBJECT_CHARS:
            raise ValueError(f"subject must be 1..{MAX_SUBJECT_CHARS} characters")
        biz = {"out_trade_no": order_no, "scene": "bar_code", "auth_code": auth_code,
               "total_amount": yuan(amount_fen), "subject": subject}
        log.info("alipay pay %s amount=%d code=%s", order_no, amount_fen, mask_code(auth_code))
        node = await self._call("alipay.trade.pay", biz, order_no)
        if isinstance(node, AcquirerAnswer):
            answer = node
        else:
            answer = self._pay_answer(node, order_no, amount_fen)
        log.info("alipay pay %s -> %s (%s)", order_no, answer.outcome, answer.reason)
        return answer

    async def query(self, order_no: str) -> AcquirerAnswer:
        """``alipay.trade.query``: the trade's ``trade_status``; never charges."""
        _check_order_no(order_no)
        node = await self._call("alipay.trade.query", {"out_trade_no": order_no}, order_no)
        if isinstance(node, AcquirerAnswer):
            answer = node
        elif node.get("code") != "10000":
            # ACQ.TRADE_NOT_EXIST included: a timed-out pay may still land; cancel settles it.
            answer = AcquirerAnswer("unknown", reason=_code(node))
        else:
            status = node.get("trade_status", "")
            outcome = TRADE_STATUS_OUTCOME.get(status, "unknown")
            if outcome == "paid":
                answer = self._success(node, order_no, None)
            else:
                answer = AcquirerAnswer(outcome, reason=status or "NO_TRADE_STATUS")
        log.info("alipay query %s -> %s (%s)", order_no, answer.outcome, answer.reason)
        return answer

    async def reverse(self, order_no: str) -> ReverseAnswer:
        """``alipay.trade.cancel``: close an unpaid trade or refund a paid one (the answer's
        ``action`` says which). For timeouts and unknown outcomes only (§4.2)."""
        _check_order_no(order_no)
        node = await self._call("alipay.trade.cancel", {"out_trade_no": order_no}, order_no)
        if isinstance(node, AcquirerAnswer):
            answer = ReverseAnswer("unknown" if node.reason == "bad_signature" else "retry",
                                   reason=node.reason)
        else:
            answer = _cancel_answer(node)
        log.info("alipay cancel %s -> %s (%s)", order_no, answer.outcome, answer.reason)
        return answer

    # -- internals ----------------------------------------------------------------------------

    def _pay_answer(self, node: dict[str, Any], order_no: str, amount_fen: int) -> AcquirerAnswer:
        code = node.get("code")
        if code == "10000":
            status = node.get("trade_status")
            if status and status not in PAID_STATUSES:
                return AcquirerAnswer(TRADE_STATUS_OUTCOME.get(status, "unknown"), reason=status)
            mode = node.get("async_payment_mode")
            if mode and mode != "SYNC_DIRECT_PAY":
                # accepted, money not yet taken for sure: the query decides [U]
                return AcquirerAnswer("user_paying", reason=str(mode)[:32])
            return self._success(node, order_no, amount_fen)
        if code == "10003":
            return AcquirerAnswer("user_paying", reason="WAIT_BUYER_PAY")
        sub = str(node.get("sub_code") or "")
        if code == "40004" and _plain(sub) in PAY_FAILED_SUB_CODES:
            return AcquirerAnswer("failed", reason=sub)
        if code in REQUEST_REFUSED_CODES:
            return AcquirerAnswer("failed", reason=sub or str(code))
        return AcquirerAnswer("unknown", reason=_code(node))

    def _success(
        self, node: dict[str, Any], order_no: str, amount_fen: int | None
    ) -> AcquirerAnswer:
        """A success is believed only if it is for this order and (for pay) this amount."""
        if node.get("out_trade_no") not in (None, order_no):
            return AcquirerAnswer("unknown", reason="order_mismatch")
        if amount_fen is not None and "total_amount" in node:
            if fen(str(node["total_amount"])) != amount_fen:
                return AcquirerAnswer("unknown", reason="amount_mismatch")
        trade_no = node.get("trade_no")
        return AcquirerAnswer("paid", transaction_id=str(trade_no) if trade_no else None)

    def _request(self, method: str, biz: Mapping[str, str]) -> dict[str, str]:
        params = {
            "app_id": self.app_id, "method": method, "format": "JSON", "charset": "utf-8",
            "sign_type": "RSA2", "timestamp": alipay_timestamp(self.clock()), "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = rsa2_sign(sign_string(params), self._private_key)
        return params

    async def _call(
        self, method: str, biz: Mapping[str, str], order_no: str
    ) -> dict[str, Any] | AcquirerAnswer:
        """POST a signed request; the verified ``*_response`` object, or an ``"unknown"`` answer."""
        body = urlencode(self._request(method, biz)).encode("ascii")
        try:
            resp = await self._client.post(
                self.gateway_url, content=body, timeout=self.timeout,
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
            )
        except httpx.TimeoutException:
            log.warning("alipay %s %s: timed out after %.1f s", method, order_no, self.timeout)
            return AcquirerAnswer("unknown", reason="timeout")
        except httpx.HTTPError as err:
            log.warning("alipay %s %s: network error %s", method, order_no, type(err).__name__)
            return AcquirerAnswer("unknown", reason="network")
        if resp.status_code != 200:
            log.warning("alipay %s %s: HTTP %d", method, order_no, resp.status_code)
            return AcquirerAnswer("unknown", reason=f"http_{resp.status_code}")
        return self._verified(resp.content, method, order_no)

    def _verified(self, content: bytes, method: str, order_no: str) -> dict[str, Any] | AcquirerAnswer:
        try:
            text = content.decode("utf-8")
            spans = response_spans(text)
        except ValueError as err:  # UnicodeDecodeError is a ValueError
            log.warning("alipay %s %s: unreadable answer: %s", method, order_no, str(err)[:80])
            return AcquirerAnswer("unknown", reason="bad_json")
        key = response_key(method)
        if key not in spans:
            reason = "error_response" if "error_response" in spans else "bad_json"
            log.warning("alipay %s %s: answer without %s (%s)", method, order_no, key, reason)
            return AcquirerAnswer("unknown", reason=reason)
        start, end = spans[key]
        raw = text[start:end]
        sign = json.loads(text[slice(*spans["sign"])]) if "sign" in spans else None
        if not isinstance(sign, str) or not sign:
            # Alipay leaves some refusals (bad request signature, unknown app_id) unsigned:
            # nothing in them can be trusted either way.
            log.warning("alipay %s %s: unsigned answer", method, order_no)
            return AcquirerAnswer("unknown", reason="unsigned")
        if not rsa2_verify(raw, sign, self._alipay_key):
            log.error("alipay %s %s: response signature does not verify", method, order_no)
            return AcquirerAnswer("unknown", reason="bad_signature")
        node = json.loads(raw)
        if not isinstance(node, dict):
            return AcquirerAnswer("unknown", reason="bad_json")
        return node


def _cancel_answer(node: Mapping[str, Any]) -> ReverseAnswer:
    code = node.get("code")
    if node.get("retry_flag") == "Y":
        return ReverseAnswer("retry", reason=_code(node) if code != "10000" else "RETRY_FLAG")
    if code == "10000":
        action = node.get("action")
        if action == "close":
            return ReverseAnswer("reversed")
        if action == "refund":
            return ReverseAnswer("refunded")
        return ReverseAnswer("unknown", reason=f"action_{action or 'none'}"[:64])
    if code == "20000" or _plain(str(node.get("sub_code") or "")) == "ACQ.SYSTEM_ERROR":
        return ReverseAnswer("retry", reason=_code(node))
    return ReverseAnswer("unknown", reason=_code(node))  # ACQ.TRADE_NOT_EXIST, REASON_TRADE_...


def _plain(sub_code: str) -> str:
    """``aop.ACQ.SYSTEM_ERROR`` (as some 20000 answers spell it) -> ``ACQ.SYSTEM_ERROR``."""
    return sub_code[4:] if sub_code.startswith("aop.") else sub_code


def _code(node: Mapping[str, Any]) -> str:
    return str(node.get("sub_code") or node.get("code") or "UNSPECIFIED")[:64]


def _check_order_no(order_no: str) -> None:
    if not isinstance(order_no, str) or not ORDER_NO.match(order_no):
        raise ValueError("order_no must be 1-64 characters of [A-Za-z0-9_-]")


__all__ = [
    "AlipayAcquirer", "sign_string", "rsa2_sign", "rsa2_verify", "response_spans", "yuan", "fen",
    "alipay_timestamp", "load_private_key", "load_public_key", "PAY_FAILED_SUB_CODES",
    "TRADE_STATUS_OUTCOME",
]
