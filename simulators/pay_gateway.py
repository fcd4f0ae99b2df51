"""Loopback WeChat Pay v2 gateway: ``/pay/micropay``, ``/pay/orderquery``, ``/secapi/pay/reverse``.

Speaks the real wire format (flat ``<xml>`` bodies, MD5 or HMAC-SHA256 ``sign`` over the sorted
non-empty parameters plus ``&key=``), keeps orders in memory and plays scripted scenarios, so the
acquirer client and the payment state machine can be tested over real HTTP. The signing code is
written again here on purpose (simulators do not import ``lockers/``): two implementations that
agree are a better test than one that agrees with itself.

Scenarios (:class:`Scenario`), chosen per payment code or for the next new order, default success:

* ``success`` - charged at once.
* ``userpaying`` - ``USERPAYING``; the order resolves to ``then`` after ``after_queries`` queries
  or ``after_seconds`` seconds, whichever comes first (neither given: at the first query).
* ``systemerror`` / ``bankerror`` / ``http500`` - an error answer; the order resolves like
  ``userpaying`` (``then="success"`` means the money did move).
* ``timeout`` - no answer for ``delay`` seconds (longer than the client's timeout), then the order
  resolves to ``then`` unless it was reversed meanwhile: ``then="success"`` is a late success.
* ``duplicate`` - charged once; a repeat of the same request gets the very same answer again.
* ``notenough`` - ``NOTENOUGH``, nothing charged.
* ``tampered`` - charged, but the answer's signature is corrupted.
* A payment code used twice gets ``AUTH_CODE_INVALID`` ("101 付款码已过期").

``reverse_errors=N`` makes the first N reverses of that order answer ``SYSTEMERROR`` with
``recall=Y``. Every order counts ``charges`` and ``refunds`` to prove there is no double charge.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import socket
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

log = logging.getLogger(__name__)

KINDS = frozenset({"success", "userpaying", "systemerror", "bankerror", "http500", "timeout",
                   "duplicate", "notenough", "tampered"})
THENS = frozenset({"success", "fail", "never"})


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


@dataclass
class SimOrder:
    """One order as the gateway sees it. ``code_tail``: last 4 digits of the payment code only."""

    out_trade_no: str
    total_fee: int
    code_tail: str
    scenario: Scenario
    trade_state: str = "NOTPAY"
    transaction_id: str = ""
    created: float = field(default_factory=time.monotonic)
    queries: int = 0
    charges: int = 0
    refunds: int = 0
    reverses: int = 0
    pay_requests: int = 0
    last_pay_answer: bytes = b""


# -- codec (independent of lockers/acquirers/wechat_v2.py on purpose) --------------------------


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


# -- the gateway ---------------------------------------------------------------------------------


class PayGateway:
    """State and behaviour, no sockets: :func:`run_pay_gateway` puts it on loopback."""

    def __init__(self, *, appid: str, mch_id: str, api_key: str) -> None:
        self.appid, self.mch_id, self.api_key = appid, mch_id, api_key
        self.orders: dict[str, SimOrder] = {}
        self._by_code: dict[str, Scenario] = {}
        self._next: deque[Scenario] = deque()
        self._used_codes: set[str] = set()
        self._closing = asyncio.Event()
        self.requests: dict[str, int] = {"micropay": 0, "orderquery": 0, "reverse": 0}

    def script(self, scenario: Scenario, *, auth_code: str | None = None) -> None:
        """Play ``scenario`` for that payment code, or (no code) for the next new order."""
        if auth_code is None:
            self._next.append(scenario)
        else:
            self._by_code[auth_code] = scenario

    def charges(self, out_trade_no: str) -> int:
        order = self.orders.get(out_trade_no)
        return order.charges if order else 0

    # -- answers

    def _answer(self, params: dict[str, str], sign_type: str, *, tamper: bool = False) -> bytes:
        out = {"return_code": "SUCCESS", "return_msg": "OK", "appid": self.appid,
               "mch_id": self.mch_id, "nonce_str": secrets.token_hex(8), **params}
        out["sign"] = _sign(out, self.api_key, sign_type)
        if tamper:
            out["sign"] = ("0" if out["sign"][0] != "0" else "1") + out["sign"][1:]
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
            order.trade_state = "PAYERROR"

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
        existing = self.orders.get(no)
        if existing is not None:
            existing.pay_requests += 1
            if existing.scenario.kind == "duplicate" and existing.last_pay_answer:
                return 200, existing.last_pay_answer
            if existing.trade_state == "SUCCESS":
                return 200, self._fail("ORDERPAID", "订单已支付", st)
            if existing.trade_state == "REVOKED":
                return 200, self._fail("ORDERREVERSED", "订单已撤销", st)
            return 200, self._fail("OUT_TRADE_NO_USED", "商户订单号重复", st)
        if code in self._used_codes:
            return 200, self._fail("AUTH_CODE_INVALID", "101 付款码已过期,请退出重试", st)
        self._used_codes.add(code)
        sc = self._by_code.pop(code, None) or (self._next.popleft() if self._next else Scenario())
        order = SimOrder(no, int(req["total_fee"]), code[-4:], sc, pay_requests=1,
                         transaction_id="42" + secrets.token_hex(13))  # 28 chars
        self.orders[no] = order
        return await self._play(order, st)

    async def _play(self, order: SimOrder, st: str) -> tuple[int, bytes]:
        sc = order.scenario
        if sc.kind in ("success", "duplicate", "tampered"):
            self._finish(order, "success")
            answer = self._answer({"result_code": "SUCCESS", **self._paid_fields(order)}, st,
                                  tamper=sc.kind == "tampered")
            order.last_pay_answer = answer
            return 200, answer
        if sc.kind == "notenough":
            order.trade_state = "PAYERROR"
            return 200, self._fail("NOTENOUGH", "余额不足", st)
        order.trade_state = "USERPAYING"
        if sc.kind == "userpaying":
            return 200, self._fail("USERPAYING", "需要用户输入支付密码", st)
        if sc.kind == "systemerror":
            return 200, self._fail("SYSTEMERROR", "系统超时", st)
        if sc.kind == "bankerror":
            return 200, self._fail("BANKERROR", "银行系统异常", st)
        if sc.kind == "http500":
            return 500, b"internal error"
        # timeout: hold the answer; the client gives up; then the trade lands (or not)
        try:
            await asyncio.wait_for(self._closing.wait(), sc.delay)
        except TimeoutError:
            pass
        if order.trade_state == "USERPAYING":
            self._finish(order, sc.then)
        if order.trade_state == "SUCCESS":
            return 200, self._answer({"result_code": "SUCCESS", **self._paid_fields(order)}, st)
        return 200, self._fail("SYSTEMERROR", "系统超时", st)

    def _order_request(self, endpoint: str, body: bytes) -> tuple[Any, bytes | None, Any]:
        """Count the request, check its signature and find its order: (order, None, sign type), or
        (None, the error answer, sign type)."""
        self.requests[endpoint] += 1
        req, err, st = self._check(body)
        if req is None:
            return None, err or b"", st
        order = self.orders.get(req.get("out_trade_no", ""))
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
        self._resolve(order)
        if order.trade_state == "SUCCESS":
            order.refunds += 1
        order.trade_state = "REVOKED"
        return 200, self._answer({"result_code": "SUCCESS", "recall": "N"}, st)


@dataclass
class RunningGateway:
    """A gateway serving on loopback; ``url`` is its base URL."""

    gateway: PayGateway
    url: str
    _server: uvicorn.Server
    _serving: asyncio.Task[None]
    _sock: socket.socket

    @property
    def orders(self) -> dict[str, SimOrder]:
        return self.gateway.orders

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


def build_app(gateway: PayGateway) -> FastAPI:
    app = FastAPI(title="WeChat Pay v2 simulator")

    async def _serve(handler, request: Request) -> Response:  # type: ignore[no-untyped-def]
        status, body = await handler(await request.body())
        return Response(body, status_code=status, media_type="text/xml")

    @app.post("/pay/micropay")
    async def micropay(request: Request) -> Response:
        return await _serve(gateway.micropay, request)

    @app.post("/pay/orderquery")
    async def orderquery(request: Request) -> Response:
        return await _serve(gateway.orderquery, request)

    @app.post("/secapi/pay/reverse")
    async def reverse(request: Request) -> Response:
        return await _serve(gateway.reverse, request)

    return app


async def run_pay_gateway(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    appid: str = "wx2421b1c4370ec43b",
    mch_id: str = "10000100",
    api_key: str = "sim-key-0123456789abcdef01234567",
) -> RunningGateway:
    """Start the simulator on ``host:port`` (0 picks a free port); close it with ``close()``."""
    gateway = PayGateway(appid=appid, mch_id=mch_id, api_key=api_key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
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
