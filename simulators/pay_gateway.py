"""Loopback payment gateway: WeChat Pay v2, Alipay open API and an e-CNY aggregator in one server.

* WeChat Pay v2: ``/pay/micropay``, ``/pay/orderquery``, ``/secapi/pay/reverse``; flat ``<xml>``
  bodies, MD5 or HMAC-SHA256 ``sign`` over the sorted non-empty parameters plus ``&key=``.
* Alipay: ``POST /gateway.do``, form parameters (the body, and the query string as the official
  SDK sends the common parameters there), methods ``alipay.trade.pay`` (``scene=bar_code``),
  ``alipay.trade.query``, ``alipay.trade.cancel``. The request's RSA2 signature is checked with the
  application's public key; answers ``{"<method>_response":{...},"sign":"..."}`` are signed with the
  simulator's own "Alipay" private key over the raw response text. Both key pairs are generated
  (once per process) unless given; :class:`RunningGateway` exposes the PEMs to configure a client.
* Aggregator (generic e-CNY shape): ``/agg/pay``, ``/agg/query``, ``/agg/reverse``; JSON bodies with
  an HMAC-SHA256 ``sign`` field over the sorted non-empty ``k=v`` fields.

Orders are kept in memory (one table, keyed by ``out_trade_no``; an order belongs to the protocol
that created it) and scripted scenarios are played, so the acquirer clients and the payment state
machine can be tested over real HTTP. The codecs are written again here on purpose (simulators do
not import ``lockers/``): two implementations that agree are a better test than one that agrees
with itself.

Scenarios (:class:`Scenario`), chosen per payment code or for the next new order (any protocol),
default success; the same kinds for every protocol, in its own codes:

==============  ===========================  ===================================  ==================
kind            WeChat                       Alipay                               aggregator
==============  ===========================  ===================================  ==================
success         ``SUCCESS``                  ``10000``                            ``SUCCESS``
userpaying      ``USERPAYING``               ``10003`` / ``WAIT_BUYER_PAY``       ``USERPAYING``
systemerror     ``SYSTEMERROR``              ``20000`` ``aop.ACQ.SYSTEM_ERROR``   ``ERROR``
bankerror       ``BANKERROR``                ``20000`` ``isp.unknow-error``       ``ERROR``
http500         HTTP 500                     HTTP 500                             HTTP 500
notenough       ``NOTENOUGH``                ``ACQ.BUYER_BALANCE_NOT_ENOUGH``     ``FAIL NOTENOUGH``
code reused     ``AUTH_CODE_INVALID``        ``ACQ.PAYMENT_AUTH_CODE_INVALID``    ``FAIL AUTH_CODE_I…``
reverse error   ``SYSTEMERROR`` recall=Y     ``ACQ.SYSTEM_ERROR`` retry_flag=Y    ``ERROR SYSTEMERROR``
==============  ===========================  ===================================  ==================

* ``userpaying`` / ``systemerror`` / ``bankerror`` / ``http500``: the order resolves to ``then``
  after ``after_queries`` queries or ``after_seconds`` seconds, whichever comes first (neither
  given: at the first query); ``then="success"`` means the money did move.
* ``timeout`` - no answer for ``delay`` seconds (longer than the client's timeout), then the order
  resolves to ``then`` unless it was reversed meanwhile: ``then="success"`` is a late success.
* ``duplicate`` - charged once; a repeat of the same request gets the very same answer again.
* ``tampered`` - charged, but the answer's signature is corrupted.

``reverse_errors=N`` makes the first N reverses (cancels) of that order fail with a "call again"
answer. Every order counts ``charges`` and ``refunds`` to prove there is no double charge.

For other processes (the demo's device panel, crash tests): ``GET /sim/ledger`` returns every
order as JSON; ``POST /sim/script`` with ``{kind, then, after_queries, after_seconds, delay,
reverse_errors, auth_code?}`` scripts a scenario (for that code, or the next new order).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import logging
import secrets
import socket
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)

KINDS = frozenset({"success", "userpaying", "systemerror", "bankerror", "http500", "timeout",
                   "duplicate", "notenough", "tampered"})
THENS = frozenset({"success", "fail", "never"})
PROTOCOLS = ("wechat", "alipay", "aggregator")
#: seconds an aggregator request's timestamp may be off the simulator's clock
AGG_MAX_SKEW = 300


@dataclass(frozen=True)
class Scenario:
    """How the gateway treats one pay request; see the module docstring."""

    kind: str = "success"
    then: str = "success"
    after_queries: int | None = None
    after_seconds: float | None = None
    delay: float = 0.0
    reverse_errors: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown scenario kind {self.kind!r}; known: {sorted(KINDS)}")
        if self.then not in THENS:
            raise ValueError(f"then must be one of {sorted(THENS)}")
        if self.after_queries is not None and (not isinstance(self.after_queries, int)
                                               or self.after_queries < 0):
            raise ValueError("after_queries must be a whole number >= 0")
        for name in ("after_seconds", "delay"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name} must be a number of seconds >= 0")
        if not isinstance(self.reverse_errors, int) or self.reverse_errors < 0:
            raise ValueError("reverse_errors must be a whole number >= 0")


@dataclass
class SimOrder:
    """One order as the gateway sees it. ``code_tail``: last 4 digits of the payment code only.

    ``trade_state`` is kept in WeChat's words (NOTPAY, USERPAYING, SUCCESS, PAYERROR, REVOKED) for
    every protocol and translated on the way out; ``total_fee`` is the amount in fen."""

    out_trade_no: str
    total_fee: int
    code_tail: str
    scenario: Scenario
    protocol: str = "wechat"
    trade_state: str = "NOTPAY"
    fail_reason: str = ""
    transaction_id: str = ""
    created: float = field(default_factory=time.monotonic)
    queries: int = 0
    charges: int = 0
    refunds: int = 0
    reverses: int = 0
    pay_requests: int = 0
    last_pay_answer: bytes = b""

    def ledger(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "out_trade_no": self.out_trade_no,
                "amount_fen": self.total_fee, "trade_state": self.trade_state,
                "protocol_state": _protocol_state(self), "fail_reason": self.fail_reason or None,
                "transaction_id": self.transaction_id, "code_tail": self.code_tail,
                "scenario": self.scenario.kind, "charges": self.charges, "refunds": self.refunds,
                "reverses": self.reverses, "queries": self.queries,
                "pay_requests": self.pay_requests}


# -- codecs (independent of lockers/acquirers/ on purpose) ---------------------------------------


def _sign(params: dict[str, str], key: str, sign_type: str) -> str:
    text = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != "")
    data = f"{text}&key={key}".encode()
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), data, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(data).hexdigest().upper()


def _parse(body: bytes) -> dict[str, str] | None:
    if b"<!DOCTYPE" in body.upper():
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    return {child.tag: (child.text or "") for child in root}


def _xml(params: dict[str, str]) -> bytes:
    parts = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in params.items())
    return f"<xml>{parts}</xml>".encode()


def _rsa2_text(params: dict[str, str]) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k])


def _rsa2_sign(text: str, key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def _rsa2_ok(text: str, signature: str, key: rsa.RSAPublicKey) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), text.encode(), padding.PKCS1v15(),
                   hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def _agg_sign(fields: dict[str, Any], key: str) -> str:
    text = "&".join(f"{k}={fields[k]}" for k in sorted(fields)
                    if k != "sign" and fields[k] is not None and fields[k] != "")
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def _flip(signature: str) -> str:
    """The same signature with one bit changed (still valid base64 / hex)."""
    if all(c in "0123456789abcdefABCDEF" for c in signature):
        return ("0" if signature[0] != "0" else "1") + signature[1:]
    raw = bytearray(base64.b64decode(signature))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@functools.lru_cache(maxsize=4)
def _generated_key(role: str) -> str:
    """A 2048-bit RSA private key as PKCS#8 PEM, made once per process and role (keygen is slow)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _protocol_state(order: SimOrder) -> str:
    """The order's state in its own protocol's words."""
    state = order.trade_state
    if order.protocol == "alipay":
        return {"NOTPAY": "WAIT_BUYER_PAY", "USERPAYING": "WAIT_BUYER_PAY",
                "SUCCESS": "TRADE_SUCCESS"}.get(state, "TRADE_CLOSED")
    if order.protocol == "aggregator":
        if state == "PAYERROR":
            return "FAIL"
        if state == "REVOKED":
            return "REFUND" if order.refunds else "REVERSED"
        return state
    return state


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _fen(text: Any) -> int | None:
    if not isinstance(text, str) or not text or len(text) > 16:
        return None
    try:
        value = Decimal(text) * 100
    except InvalidOperation:
        return None
    if value != value.to_integral_value() or value <= 0 or text.strip() != text:
        return None
    if "." in text and len(text.split(".")[1]) > 2:
        return None
    return int(value)


# -- the gateway ---------------------------------------------------------------------------------


class PayGateway:
    """State and behaviour, no sockets: :func:`run_pay_gateway` puts it on loopback.

    WeChat: ``appid``, ``mch_id``, ``api_key``. Alipay: ``alipay_app_id``; the application's
    public key (``app_public_key_pem``; None generates a pair and keeps the private half in
    ``app_private_key_pem`` for the client) and the simulator's own signing key
    (``alipay_private_key_pem``; None generates one, ``alipay_public_key_pem`` is its public half).
    Aggregator: ``agg_merchant_id`` and the shared ``agg_key``.
    """

    def __init__(self, *, appid: str, mch_id: str, api_key: str,
                 alipay_app_id: str = "2021000000000001",
                 app_public_key_pem: str | None = None,
                 alipay_private_key_pem: str | None = None,
                 agg_merchant_id: str = "M100000001",
                 agg_key: str = "sim-agg-key-0123456789abcdef0123") -> None:
        self.appid, self.mch_id, self.api_key = appid, mch_id, api_key
        self.alipay_app_id = alipay_app_id
        self.app_private_key_pem: str | None = None
        if app_public_key_pem is None:
            self.app_private_key_pem = _generated_key("app")
            app_public_key_pem = _public_pem(self.app_private_key_pem)
        self.app_public_key_pem = app_public_key_pem
        self.alipay_private_key_pem = alipay_private_key_pem or _generated_key("alipay")
        self.alipay_public_key_pem = _public_pem(self.alipay_private_key_pem)
        app_key = serialization.load_pem_public_key(app_public_key_pem.encode())
        ali_key = serialization.load_pem_private_key(self.alipay_private_key_pem.encode(), None)
        if not isinstance(app_key, rsa.RSAPublicKey) or not isinstance(ali_key, rsa.RSAPrivateKey):
            raise ValueError("Alipay keys must be RSA keys")
        self._app_key, self._alipay_key = app_key, ali_key
        self.agg_merchant_id, self.agg_key = agg_merchant_id, agg_key
        self.orders: dict[str, SimOrder] = {}
        self._by_code: dict[str, Scenario] = {}
        self._next: deque[Scenario] = deque()
        self._used_codes: set[str] = set()
        self._closing = asyncio.Event()
        self.requests: dict[str, int] = {
            "micropay": 0, "orderquery": 0, "reverse": 0,
            "alipay.trade.pay": 0, "alipay.trade.query": 0, "alipay.trade.cancel": 0,
            "agg.pay": 0, "agg.query": 0, "agg.reverse": 0}

    def script(self, scenario: Scenario, *, auth_code: str | None = None) -> None:
        """Play ``scenario`` for that payment code, or (no code) for the next new order."""
        if auth_code is None:
            self._next.append(scenario)
        else:
            self._by_code[auth_code] = scenario

    def charges(self, out_trade_no: str) -> int:
        order = self.orders.get(out_trade_no)
        return order.charges if order else 0

    def ledger(self) -> dict[str, Any]:
        """Every order and the request counts, as plain JSON-able data (``GET /sim/ledger``)."""
        return {"orders": [o.ledger() for o in self.orders.values()],
                "requests": dict(self.requests),
                "scripted": {"next": len(self._next), "by_code": len(self._by_code)}}

    # -- protocol-neutral behaviour

    def _admit(self, protocol: str, no: str, amount: int,
               code: str) -> tuple[SimOrder | None, str | None]:
        """A pay request: (the new order, None), or (the order it collides with or None, why not):
        ``replay``, ``order_paid``, ``order_reversed``, ``order_used`` or ``code_used``."""
        existing = self.orders.get(no)
        if existing is not None:
            existing.pay_requests += 1
            if existing.protocol != protocol:
                return existing, "order_used"
            if existing.scenario.kind == "duplicate" and existing.last_pay_answer:
                return existing, "replay"
            if existing.trade_state == "SUCCESS":
                return existing, "order_paid"
            if existing.trade_state == "REVOKED":
                return existing, "order_reversed"
            return existing, "order_used"
        if code in self._used_codes:
            return None, "code_used"
        self._used_codes.add(code)
        sc = self._by_code.pop(code, None) or (self._next.popleft() if self._next else Scenario())
        if protocol == "wechat":
            tid = "42" + secrets.token_hex(13)  # 28 chars
        elif protocol == "alipay":
            tid = time.strftime("%Y%m%d") + "22001" + f"{secrets.randbelow(10**15):015d}"
        else:
            tid = "AGG" + secrets.token_hex(12)
        order = SimOrder(no, amount, code[-4:], sc, protocol=protocol, pay_requests=1,
                         transaction_id=tid)
        self.orders[no] = order
        return order, None

    async def _play(self, order: SimOrder) -> str:
        """Run the order's scenario: ``paid``, ``notenough``, ``userpaying``, ``systemerror``,
        ``bankerror`` or ``http500`` (what the pay answer must say)."""
        sc = order.scenario
        if sc.kind in ("success", "duplicate", "tampered"):
            self._finish(order, "success")
            return "paid"
        if sc.kind == "notenough":
            order.trade_state, order.fail_reason = "PAYERROR", "NOTENOUGH"
            return "notenough"
        order.trade_state = "USERPAYING"
        if sc.kind != "timeout":
            return sc.kind
        # timeout: hold the answer; the client gives up; then the trade lands (or not)
        try:
            await asyncio.wait_for(self._closing.wait(), sc.delay)
        except TimeoutError:
            pass
        if order.trade_state == "USERPAYING":
            self._finish(order, sc.then)
        return "paid" if order.trade_state == "SUCCESS" else "systemerror"

    def _resolve(self, order: SimOrder) -> None:
        """Move a pending order to its scripted end once its queries or seconds are used up."""
        if order.trade_state not in ("USERPAYING", "NOTPAY"):
            return
        sc = order.scenario
        if sc.kind == "timeout":
            return  # resolved by the pay handler when its delay ends
        due_q = sc.after_queries is not None and order.queries >= sc.after_queries
        age = time.monotonic() - order.created
        due_t = sc.after_seconds is not None and age >= sc.after_seconds
        if sc.after_queries is None and sc.after_seconds is None:
            due_q = order.queries >= 1
        if due_q or due_t:
            self._finish(order, sc.then)

    def _finish(self, order: SimOrder, then: str) -> None:
        if then == "success":
            order.trade_state = "SUCCESS"
            order.charges += 1
        elif then == "fail":
            order.trade_state, order.fail_reason = "PAYERROR", "PAYERROR"

    def _revoke(self, order: SimOrder) -> str:
        """Reverse / cancel an order: ``"refund"`` if it was paid (now or before), else ``"close"``."""
        self._resolve(order)
        if order.trade_state == "SUCCESS":
            order.refunds += 1
        order.trade_state = "REVOKED"
        return "refund" if order.refunds else "close"

    def _own(self, protocol: str, no: Any) -> SimOrder | None:
        order = self.orders.get(no) if isinstance(no, str) else None
        return order if order is not None and order.protocol == protocol else None

    # -- WeChat Pay v2 --------------------------------------------------------------------------

    def _answer(self, params: dict[str, str], sign_type: str, *, tamper: bool = False) -> bytes:
        out = {"return_code": "SUCCESS", "return_msg": "OK", "appid": self.appid,
               "mch_id": self.mch_id, "nonce_str": secrets.token_hex(8), **params}
        out["sign"] = _sign(out, self.api_key, sign_type)
        if tamper:
            out["sign"] = _flip(out["sign"])
        return _xml(out)

    def _fail(self, err_code: str, des: str, sign_type: str) -> bytes:
        return self._answer({"result_code": "FAIL", "err_code": err_code, "err_code_des": des},
                            sign_type)

    def _check(self, body: bytes) -> tuple[dict[str, str] | None, bytes | None, str]:
        """Parse and authenticate a request: (params, None) or (None, a return_code=FAIL body)."""
        req = _parse(body)
        if req is None:
            return None, _xml({"return_code": "FAIL", "return_msg": "XML格式错误"}), "MD5"
        sign_type = req.get("sign_type", "MD5")
        if req.get("appid") != self.appid or req.get("mch_id") != self.mch_id:
            refusal = _xml({"return_code": "FAIL", "return_msg": "appid/mch_id 不匹配"})
            return None, refusal, sign_type
        if not hmac.compare_digest(req.get("sign", ""), _sign(req, self.api_key, sign_type)):
            return None, _xml({"return_code": "FAIL", "return_msg": "签名错误"}), sign_type
        return req, None, sign_type

    def _paid_fields(self, order: SimOrder) -> dict[str, str]:
        return {"out_trade_no": order.out_trade_no, "transaction_id": order.transaction_id,
                "total_fee": str(order.total_fee), "trade_type": "MICROPAY",
                "time_end": time.strftime("%Y%m%d%H%M%S")}

    async def micropay(self, body: bytes) -> tuple[int, bytes]:
        self.requests["micropay"] += 1
        req, err, st = self._check(body)
        if req is None:
            return 200, err or b""
        no, code = req.get("out_trade_no", ""), req.get("auth_code", "")
        if not no or not code or not req.get("total_fee", "").isdigit():
            return 200, self._fail("PARAM_ERROR", "参数错误", st)
        order, refusal = self._admit("wechat", no, int(req["total_fee"]), code)
        if refusal == "replay" and order is not None:
            return 200, order.last_pay_answer
        if refusal is not None or order is None:
            code_, des = {"order_paid": ("ORDERPAID", "订单已支付"),
                          "order_reversed": ("ORDERREVERSED", "订单已撤销"),
                          "code_used": ("AUTH_CODE_INVALID", "101 付款码已过期,请退出重试"),
                          }.get(refusal or "", ("OUT_TRADE_NO_USED", "商户订单号重复"))
            return 200, self._fail(code_, des, st)
        outcome = await self._play(order)
        if outcome == "paid":
            answer = self._answer({"result_code": "SUCCESS", **self._paid_fields(order)}, st,
                                  tamper=order.scenario.kind == "tampered")
            order.last_pay_answer = answer
            return 200, answer
        if outcome == "http500":
            return 500, b"internal error"
        code_, des = {"notenough": ("NOTENOUGH", "余额不足"),
                      "userpaying": ("USERPAYING", "需要用户输入支付密码"),
                      "bankerror": ("BANKERROR", "银行系统异常")}.get(outcome,
                                                                  ("SYSTEMERROR", "系统超时"))
        return 200, self._fail(code_, des, st)

    def _order_request(self, endpoint: str, body: bytes) -> tuple[Any, bytes | None, Any]:
        """Count the request, check its signature and find its order: (order, None, sign type), or
        (None, the error answer, sign type)."""
        self.requests[endpoint] += 1
        req, err, st = self._check(body)
        if req is None:
            return None, err or b"", st
        order = self._own("wechat", req.get("out_trade_no", ""))
        if order is None:
            return None, self._fail("ORDERNOTEXIST", "此交易订单号不存在", st), st
        return order, None, st

    async def orderquery(self, body: bytes) -> tuple[int, bytes]:
        order, error, st = self._order_request("orderquery", body)
        if order is None:
            return 200, error or b""
        order.queries += 1
        self._resolve(order)
        fields = {"result_code": "SUCCESS", "trade_state": order.trade_state,
                  "out_trade_no": order.out_trade_no}
        if order.trade_state == "SUCCESS":
            fields.update(self._paid_fields(order))
        return 200, self._answer(fields, st)

    async def reverse(self, body: bytes) -> tuple[int, bytes]:
        order, error, st = self._order_request("reverse", body)
        if order is None:
            return 200, error or b""
        order.reverses += 1
        if order.reverses <= order.scenario.reverse_errors:
            return 200, self._answer({"result_code": "FAIL", "err_code": "SYSTEMERROR",
                                      "err_code_des": "系统超时", "recall": "Y"}, st)
        self._revoke(order)
        return 200, self._answer({"result_code": "SUCCESS", "recall": "N"}, st)

    # -- Alipay open API --------------------------------------------------------------------------

    def _alipay_reply(self, method: str, node: dict[str, Any], *, signed: bool = True,
                      tamper: bool = False) -> bytes:
        """``{"<method>_response":<node>,"sign":"..."}``, signed over the node's exact text."""
        key = method.replace(".", "_") + "_response" if method else "error_response"
        raw = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        text = f'{{"{key}":{raw}'
        if signed:
            sig = _rsa2_sign(raw, self._alipay_key)
            text += f',"sign":"{_flip(sig) if tamper else sig}"'
        return (text + "}").encode("utf-8")

    @staticmethod
    def _ali_ok(**fields: Any) -> dict[str, Any]:
        return {"code": "10000", "msg": "Success", **fields}

    @staticmethod
    def _ali_err(sub_code: str, sub_msg: str, code: str = "40004", **fields: Any) -> dict[str, Any]:
        msg = {"40004": "Business Failed", "20000": "Service Currently Unavailable",
               "40002": "Invalid Arguments"}.get(code, "Failed")
        return {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg, **fields}

    async def alipay(self, params: dict[str, str]) -> tuple[int, bytes]:
        """``POST /gateway.do`` with its form (and query-string) parameters."""
        method = params.get("method", "")
        handlers = {"alipay.trade.pay": self._alipay_pay, "alipay.trade.query": self._alipay_query,
                    "alipay.trade.cancel": self._alipay_cancel}
        if method not in handlers:
            return 200, self._alipay_reply("", self._ali_err(
                "isv.invalid-method", "不存在的方法名", "40002"), signed=False)
        self.requests[method] += 1
        refusal = self._alipay_refusal(params)
        if refusal is not None:
            return 200, self._alipay_reply(method, refusal, signed=False)
        try:
            biz = json.loads(params.get("biz_content", ""))
        except ValueError:
            biz = None
        if not isinstance(biz, dict) or not isinstance(biz.get("out_trade_no"), str):
            return 200, self._alipay_reply(method, self._ali_err(
                "isv.invalid-parameter", "参数无效", "40002"))
        return await handlers[method](method, biz)

    def _alipay_refusal(self, params: dict[str, str]) -> dict[str, Any] | None:
        """Why the common parameters or the signature are refused (answered unsigned), or None."""
        if params.get("app_id") != self.alipay_app_id:
            return self._ali_err("isv.invalid-app-id", "无效的AppID参数", "40002")
        if params.get("sign_type") != "RSA2":
            return self._ali_err("isv.invalid-signature-type", "无效的签名类型", "40002")
        for name, want in (("format", "JSON"), ("charset", "utf-8"), ("version", "1.0")):
            if params.get(name, want).lower() != want.lower():
                return self._ali_err(f"isv.invalid-{name}", f"{name} 无效", "40002")
        try:
            time.strptime(params.get("timestamp", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return self._ali_err("isv.invalid-timestamp", "非法的时间戳参数", "40002")
        if not _rsa2_ok(_rsa2_text(params), params.get("sign", ""), self._app_key):
            return self._ali_err("isv.invalid-signature", "验签出错", "40002")
        return None

    def _ali_trade(self, order: SimOrder, **extra: Any) -> dict[str, Any]:
        return {"trade_no": order.transaction_id, "out_trade_no": order.out_trade_no,
                "buyer_logon_id": "159****5620", "total_amount": _yuan(order.total_fee), **extra}

    async def _alipay_pay(self, method: str, biz: dict[str, Any]) -> tuple[int, bytes]:
        no, code, amount = biz["out_trade_no"], biz.get("auth_code"), _fen(biz.get("total_amount"))
        if biz.get("scene") != "bar_code" or not isinstance(code, str) or not code \
                or amount is None or not biz.get("subject"):
            return 200, self._alipay_reply(method, self._ali_err("ACQ.INVALID_PARAMETER", "参数无效"))
        order, refusal = self._admit("alipay", no, amount, code)
        if refusal == "replay" and order is not None:
            return 200, order.last_pay_answer
        if refusal is not None or order is None:
            sub, msg = {"order_paid": ("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"),
                        "order_reversed": ("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"),
                        "code_used": ("ACQ.PAYMENT_AUTH_CODE_INVALID",
                                      "支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款"),
                        }.get(refusal or "", ("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"))
            return 200, self._alipay_reply(method, self._ali_err(sub, msg))
        outcome = await self._play(order)
        if outcome == "http500":
            return 500, b"internal error"
        if outcome == "paid":
            node = self._ali_ok(**self._ali_trade(
                order, receipt_amount=_yuan(order.total_fee),
                gmt_payment=time.strftime("%Y-%m-%d %H:%M:%S"),
                fund_bill_list=[{"fund_channel": "ALIPAYACCOUNT",
                                 "amount": _yuan(order.total_fee)}],
                buyer_user_id="2088102146225135"))
            answer = self._alipay_reply(method, node, tamper=order.scenario.kind == "tampered")
            order.last_pay_answer = answer
            return 200, answer
        if outcome == "userpaying":
            node = {"code": "10003", "msg": "等待用户付款", **self._ali_trade(order)}
        elif outcome == "notenough":
            node = self._ali_err("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")
        elif outcome == "bankerror":
            node = self._ali_err("isp.unknow-error", "系统繁忙", "20000")
        else:
            node = self._ali_err("aop.ACQ.SYSTEM_ERROR", "系统异常", "20000")
        return 200, self._alipay_reply(method, node)

    async def _alipay_query(self, method: str, biz: dict[str, Any]) -> tuple[int, bytes]:
        order = self._own("alipay", biz["out_trade_no"])
        if order is None:
            return 200, self._alipay_reply(method, self._ali_err("ACQ.TRADE_NOT_EXIST", "交易不存在"))
        order.queries += 1
        self._resolve(order)
        extra: dict[str, Any] = {"trade_status": _protocol_state(order)}
        if order.trade_state == "SUCCESS":
            extra["send_pay_date"] = time.strftime("%Y-%m-%d %H:%M:%S")
        return 200, self._alipay_reply(method, self._ali_ok(**self._ali_trade(order, **extra)))

    async def _alipay_cancel(self, method: str, biz: dict[str, Any]) -> tuple[int, bytes]:
        order = self._own("alipay", biz["out_trade_no"])
        if order is None:
            return 200, self._alipay_reply(method, self._ali_err(
                "ACQ.TRADE_NOT_EXIST", "交易不存在", retry_flag="N"))
        order.reverses += 1
        if order.reverses <= order.scenario.reverse_errors:
            return 200, self._alipay_reply(method, self._ali_err(
                "ACQ.SYSTEM_ERROR", "系统异常", retry_flag="Y"))
        action = self._revoke(order)
        return 200, self._alipay_reply(method, self._ali_ok(
            trade_no=order.transaction_id, out_trade_no=order.out_trade_no, retry_flag="N",
            action=action))

    # -- aggregator (generic e-CNY shape) -----------------------------------------------------------

    def _agg_reply(self, no: Any, state: str, *, reason: str | None = None,
                   order: SimOrder | None = None, tamper: bool = False) -> bytes:
        out: dict[str, Any] = {"merchant_id": self.agg_merchant_id, "out_trade_no": no,
                               "state": state}
        if reason:
            out["reason"] = reason
        if order is not None and state == "SUCCESS":
            out["transaction_id"] = order.transaction_id
            out["amount_fen"] = order.total_fee
        out["nonce"] = secrets.token_hex(16)
        out["timestamp"] = int(time.time())
        out["sign"] = _agg_sign(out, self.agg_key)
        if tamper:
            out["sign"] = _flip(out["sign"])
        return json.dumps(out, ensure_ascii=False).encode("utf-8")

    def _agg_check(self, endpoint: str, body: bytes) -> tuple[dict[str, Any] | None,
                                                                tuple[int, bytes] | None]:
        """Count, parse and authenticate an aggregator request: (fields, None) or (None, answer)."""
        self.requests[f"agg.{endpoint}"] += 1
        try:
            req = json.loads(body.decode("utf-8"))
        except ValueError:
            req = None
        if not isinstance(req, dict):
            return None, (400, b'{"error":"bad_json"}')
        try:
            good = hmac.compare_digest(str(req.get("sign", "")), _agg_sign(req, self.agg_key))
        except TypeError:
            good = False
        if not good or req.get("merchant_id") != self.agg_merchant_id:
            return None, (401, b'{"error":"bad_signature_or_merchant"}')
        stamp = req.get("timestamp")
        if not isinstance(stamp, int) or abs(stamp - time.time()) > AGG_MAX_SKEW:
            return None, (200, self._agg_reply(req.get("out_trade_no"), "FAIL",
                                               reason="TIMESTAMP_EXPIRED"))
        if not isinstance(req.get("out_trade_no"), str) or not req["out_trade_no"]:
            return None, (200, self._agg_reply(None, "FAIL", reason="PARAM_ERROR"))
        return req, None

    async def agg_pay(self, body: bytes) -> tuple[int, bytes]:
        req, early = self._agg_check("pay", body)
        if req is None:
            return early or (400, b"")
        no, amount, code = req["out_trade_no"], req.get("amount_fen"), req.get("auth_code")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 \
                or not isinstance(code, str) or not code or not req.get("pay_type"):
            return 200, self._agg_reply(no, "FAIL", reason="PARAM_ERROR")
        order, refusal = self._admit("aggregator", no, amount, code)
        if refusal == "replay" and order is not None:
            return 200, order.last_pay_answer
        if refusal is not None or order is None:
            state, reason = {"order_paid": ("ERROR", "ORDERPAID"),
                             "order_reversed": ("FAIL", "ORDERREVERSED"),
                             "code_used": ("FAIL", "AUTH_CODE_INVALID"),
                             }.get(refusal or "", ("FAIL", "OUT_TRADE_NO_USED"))
            return 200, self._agg_reply(no, state, reason=reason)
        outcome = await self._play(order)
        if outcome == "http500":
            return 500, b"internal error"
        if outcome == "paid":
            answer = self._agg_reply(no, "SUCCESS", order=order,
                                     tamper=order.scenario.kind == "tampered")
            order.last_pay_answer = answer
            return 200, answer
        state, reason = {"notenough": ("FAIL", "NOTENOUGH"),
                         "userpaying": ("USERPAYING", None),
                         "bankerror": ("ERROR", "BANKERROR")}.get(outcome,
                                                                  ("ERROR", "SYSTEMERROR"))
        return 200, self._agg_reply(no, state, reason=reason)

    async def agg_query(self, body: bytes) -> tuple[int, bytes]:
        req, early = self._agg_check("query", body)
        if req is None:
            return early or (400, b"")
        order = self._own("aggregator", req["out_trade_no"])
        if order is None:
            return 200, self._agg_reply(req["out_trade_no"], "ERROR", reason="NOTEXIST")
        order.queries += 1
        self._resolve(order)
        state = _protocol_state(order)
        return 200, self._agg_reply(order.out_trade_no, state, order=order,
                                    reason=order.fail_reason if state == "FAIL" else None)

    async def agg_reverse(self, body: bytes) -> tuple[int, bytes]:
        req, early = self._agg_check("reverse", body)
        if req is None:
            return early or (400, b"")
        order = self._own("aggregator", req["out_trade_no"])
        if order is None:
            return 200, self._agg_reply(req["out_trade_no"], "NOTEXIST")
        order.reverses += 1
        if order.reverses <= order.scenario.reverse_errors:
            return 200, self._agg_reply(order.out_trade_no, "ERROR", reason="SYSTEMERROR")
        action = self._revoke(order)
        return 200, self._agg_reply(order.out_trade_no, "REFUND" if action == "refund"
                                    else "REVERSED")


@dataclass
class RunningGateway:
    """A gateway serving on loopback; ``url`` is its base URL (WeChat paths hang off it),
    ``alipay_url`` the Alipay gateway URL, ``agg_url`` the aggregator API root."""

    gateway: PayGateway
    url: str
    _server: uvicorn.Server
    _serving: asyncio.Task[None]
    _sock: socket.socket

    @property
    def orders(self) -> dict[str, SimOrder]:
        return self.gateway.orders

    @property
    def alipay_url(self) -> str:
        return self.url + "/gateway.do"

    @property
    def agg_url(self) -> str:
        return self.url + "/agg"

    @property
    def alipay_app_id(self) -> str:
        return self.gateway.alipay_app_id

    @property
    def app_private_key_pem(self) -> str | None:
        """The application's private key, for the client (None when its public key was given)."""
        return self.gateway.app_private_key_pem

    @property
    def alipay_public_key_pem(self) -> str:
        """The simulator's "Alipay" public key, which the client verifies answers with."""
        return self.gateway.alipay_public_key_pem

    @property
    def agg_merchant_id(self) -> str:
        return self.gateway.agg_merchant_id

    @property
    def agg_key(self) -> str:
        return self.gateway.agg_key

    def script(self, scenario: Scenario, *, auth_code: str | None = None) -> None:
        self.gateway.script(scenario, auth_code=auth_code)

    def charges(self, out_trade_no: str) -> int:
        return self.gateway.charges(out_trade_no)

    async def close(self) -> None:
        """Stop serving; idempotent."""
        self.gateway._closing.set()  # release held "timeout" answers at once
        self._server.should_exit = True
        await self._serving
        self._sock.close()

    async def __aenter__(self) -> RunningGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def scenario_from_json(data: Any) -> tuple[Scenario, str | None]:
    """``POST /sim/script`` body -> (scenario, auth_code or None); ValueError when malformed."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    known = {"kind", "then", "after_queries", "after_seconds", "delay", "reverse_errors",
             "auth_code"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    code = data.get("auth_code")
    if code is not None and (not isinstance(code, str) or not code):
        raise ValueError("auth_code must be a non-empty string")
    fields = {k: v for k, v in data.items() if k != "auth_code" and v is not None}
    for name in ("kind", "then"):
        if name in fields and not isinstance(fields[name], str):
            raise ValueError(f"{name} must be a string")
    return Scenario(**fields), code


def build_app(gateway: PayGateway) -> FastAPI:
    app = FastAPI(title="Payment gateway simulator (WeChat Pay v2, Alipay, aggregator)")

    async def _serve(handler, request: Request,  # type: ignore[no-untyped-def]
                     media_type: str = "text/xml") -> Response:
        try:
            data = await request.body()
        except ClientDisconnect:  # the client went away mid-request (a killed kiosk): nothing arrived
            return Response(status_code=499)
        status, body = await handler(data)
        return Response(body, status_code=status, media_type=media_type)

    @app.post("/pay/micropay")
    async def micropay(request: Request) -> Response:
        return await _serve(gateway.micropay, request)

    @app.post("/pay/orderquery")
    async def orderquery(request: Request) -> Response:
        return await _serve(gateway.orderquery, request)

    @app.post("/secapi/pay/reverse")
    async def reverse(request: Request) -> Response:
        return await _serve(gateway.reverse, request)

    @app.post("/gateway.do")
    async def alipay(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            params.update(parse_qsl((await request.body()).decode("utf-8"),
                                    keep_blank_values=True))
        except UnicodeDecodeError:
            return Response(b'{"error":"charset"}', status_code=400,
                            media_type="application/json")
        status, body = await gateway.alipay(params)
        return Response(body, status_code=status, media_type="application/json;charset=utf-8")

    def _agg_route(handler):  # type: ignore[no-untyped-def]
        # a closure, not a default argument: FastAPI would take (and deep-copy) the default
        async def agg(request: Request) -> Response:
            return await _serve(handler, request, "application/json")
        return agg

    for name in ("pay", "query", "reverse"):
        app.add_api_route(f"/agg/{name}", _agg_route(getattr(gateway, f"agg_{name}")),
                          methods=["POST"])

    @app.get("/sim/ledger")
    async def ledger() -> Response:
        return Response(json.dumps(gateway.ledger(), ensure_ascii=False).encode("utf-8"),
                        media_type="application/json")

    @app.post("/sim/script")
    async def script(request: Request) -> Response:
        try:
            scenario, code = scenario_from_json(json.loads(await request.body()))
        except (ValueError, TypeError) as err:
            return Response(json.dumps({"error": str(err)}).encode(), status_code=400,
                            media_type="application/json")
        gateway.script(scenario, auth_code=code)
        where = "code …" + code[-4:] if code else "next order"
        return Response(json.dumps({"ok": True, "for": where}).encode("utf-8"),
                        media_type="application/json")

    return app


async def run_pay_gateway(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    appid: str = "wx2421b1c4370ec43b",
    mch_id: str = "10000100",
    api_key: str = "sim-key-0123456789abcdef01234567",
    **options: Any,
) -> RunningGateway:
    """Start the simulator on ``host:port`` (0 picks a free port); close it with ``close()``.
    ``options``: the Alipay and aggregator settings of :class:`PayGateway`."""
    gateway = PayGateway(appid=appid, mch_id=mch_id, api_key=api_key, **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # answers are written in two parts (head, body): without TCP_NODELAY each request waits ~40 ms
    # on delayed ACKs; accepted sockets inherit it from the listening one
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    config = uvicorn.Config(build_app(gateway), log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if serving.done():
        sock.close()
        serving.result()
        raise RuntimeError("pay gateway simulator did not start")
    url = f"http://{host}:{sock.getsockname()[1]}"
    return RunningGateway(gateway, url, server, serving, sock)
