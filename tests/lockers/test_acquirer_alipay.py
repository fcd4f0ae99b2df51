import asyncio
import base64
import datetime as dt
import logging
import time
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, strategies as st

from lockers.acquirers import AcquirerAnswer, ReverseAnswer
from lockers.acquirers.alipay import (
    AlipayAcquirer,
    alipay_timestamp,
    fen,
    load_private_key,
    load_public_key,
    response_spans,
    rsa2_sign,
    rsa2_verify,
    sign_string,
    yuan,
)
from lockers.db import Database
from lockers.payments import PaymentDesk
from simulators.pay_gateway import Scenario, run_pay_gateway
from tests.payment_fixtures import fast_settings

# TEST ONLY: a throw-away 2048-bit key, made with `openssl genpkey -algorithm RSA`; the golden
# signatures below were computed with `openssl dgst -sha256 -sign`, not with our code.
GOLDEN_KEY = """-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCkvBWPt6Mzwa8l
lU9Ej0yh9/mNz9fBZ/Z849i3eFkW/VaZWMxsgDL25Taoig2VuOKo/Cvuuxy9srIq
PNULrTnDCxts7kBFwpsczMD/8AWuqNg8ZiGL5NcEYUUjOVIdhX9dehWwtaGtM6+q
QBdXktVSK17/MMHrv74nrxtIUO0jTQldCvNMCT2xPezXBHJwiRCpV4yKDBA/Cx2O
r4tTM28gxC5ebmYEY2sYPna5FgiZ9u04wN9JY0fn4ltFV0Q5lQ97BTQX2GG1qkhQ
SXPel0vlriV0tUaOl5DhCKVIBqKOQYuAQrAYlPFKjpsOc/mma2Kpw5nb8j/yYNIG
2Pheyi9NAgMBAAECggEAS9IVynQnNacrygyS02dxSgssXU0QbQBAvvLPyIIn3yDz
PtlUHYxT6LdPFPuVjRfvmv+V6OdOLzGUN0SQejNcppzyHoz6ICGV6weCvUnoE5+7
BvGq9wx4updajv/O/692E7whR5gRtfpYG/Arzi7S6GL18laqqqsyBmneEMbOnrQU
2/WX8Y6a0hwLDzkgCnjH5gLM4L3l2BhZYv9ioNtmWlAxy5KLnDJDUPNXjB6bQHik
58Izyx/RZ142RSMbD+f3nLKfx4L5tH9VgYQp6S03IaZ3VoeUqvpbWYTZO4UONVHJ
piFw7O6bX3XdTa2+Venz/0vQs2cGlFS9BBt4onm6MQKBgQDcaxYpbLzp9XZsThi+
ee0kbkxHKmMYH3hvcMP5Oc2UsSYz5ZbLJp7JXZb9QF+URJFE5N+gTJLKXbCtqLrk
GPil5krqAL6NLP4T0j93C3G9DnNWVydAnRAcwaW7Pfn+FlX72B0t6sFD1ocAzagm
QN7Cwjmj8axeGuTxyVaW/UcYgwKBgQC/U9c4jJRtzKCFKHCL+e3RjtaPP3Q59w3/
776k3sltwTS0nAsK8EDz2vvdSFGii1dJM9/tBsOwBuveIO1w5+0tn6PP3DZNUw9z
hq54JUYTyi4jXYWCVxvr2307/Gq7IBjskpA/japTnCU7gkFrsG+D4w80n45pZoum
dDqbydjv7wKBgHUsPDjDRF3/DfgfQAop2MXQGJ6QSuNs/2IGiTd44e+UiKF4AER4
gFq9dOGmEelI1gzQuoyFiFcpnR2EH+3X1H6kwNhKkwGLlHnG/9Px8oG1J90TMZuo
owMWclrqZHYNO6JIzaI2NI0ygswLh8LmI0VXaLrdY2sXUvOxu2VCuUOvAoGAasd/
9i9/J0hszeQj6/swnyP42zmuxCr9xTkoTRuJj5eksqfkAdbUaURuDLGv3eemb1Rk
RQThcfxq5y25VqoZ1Lyjz/420DDrDq678JHc6m6MEXDAcl3rV1bILhJR/t2LC31A
xDdsN/2NSgkIOfHeSt0OP3BNKsXwapWzn/6m9EECgYAZpr/9H4EUbNlBGV8UnNUl
jDU+F99KyqsxXXD8jUxd6kKPpdplqieHhDBJILFYm2KP2FLli9+Z2YGHsGM6NMab
G7kehzmLE6OxTJXL6P9WkGt+vWWgCy4hJm3r8morZ6oQomNIj0/VT1Ld2nI9Tf2w
SEMTa6rrWuVZdBo9Bkb0eA==
-----END PRIVATE KEY-----
"""
GOLDEN_TEXT = (
    'app_id=2014072300007148&biz_content={"out_trade_no":"PK01_20261130_00000001",'
    '"scene":"bar_code","auth_code":"28763443825664394","total_amount":"12.50","subject":"邮费"}'
    "&charset=utf-8&format=JSON&method=alipay.trade.pay&sign_type=RSA2"
    "&timestamp=2026-11-30 14:05:09&version=1.0")
GOLDEN_SIGNATURE = (
    "fmVH3cY439NHXmXQziLSMm6yXLMH1R6Zzob89dfjV4PVgSDRIQd8LPoBC/D3/H0twmCYLgy58uxTflYhNHT2fOWN1Buy"
    "wxBZxptFPzFCYU2XwMlzZRjV4XZpPVW3BoRQ21Kwf8pp1EkT1Izcuu78EzGa7NPZgPtmmIC6oG/DyKY1xadw54sEdz8w"
    "0pVSJh3sdhsRf3xstovZ6Q8n/CatwXBtnkEly5PsYw4VuurkLugrDqCwpaEtSGz6kPZMOUQVoaD0V43OTEhX3rkontnP"
    "I2WH3ecrDnAilkPCFEZQDvaUoPbbOJKOPRme6+u5uIYi6ePocAcHAEp2vFWCFvIPUA==")
GOLDEN_NODE = '{"code":"10000","msg":"Success","out_trade_no":"PK01_1"}'
GOLDEN_NODE_SIGNATURE = (
    "nrTBjTVMkjX6DZNqTqY9/ybCwaUJZoXndOjjeb2zLonmx5mB8VI1sAIQKUgnF2pHSGRIHVtNb0gdO/rAOzRIwg2utbeq"
    "msYC6oB9866SPiewm/Yw1V8bCg+Z9fWiJAUiiU2KXuDqqtpLlU31OU2wdmrc5hXoeiE1r8hZV8zS5hFRLUSa5+cZLgtC"
    "9xRt2VYznpesBvZAkI7dIiKUtO6cPtYN9yFxfjzlVpJja+MSuRxbRY1FoYI4UoQxJlebniC0P4YdupNjGzxqIpOToJy5"
    "raGMZ07P/KsTZa03uRd6xbRCAbjyNjp2OxJxNxSQ2mJIQTipegzBZeJOHzFuiw1VvQ==")
AT = dt.datetime(2026, 11, 30, 14, 5, 9, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
CODE = "289431869362714645"
KEY = load_private_key(GOLDEN_KEY)
PUB_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def codes():
    n = 0
    while True:
        n += 1
        yield f"28{n:016d}"


@pytest.fixture
async def gw():
    running = await run_pay_gateway()
    yield running
    await running.close()


def client_for(gw, **kw):
    kw.setdefault("timeout", 0.5)
    return AlipayAcquirer(gw.alipay_url, app_id=gw.alipay_app_id,
                          private_key=gw.app_private_key_pem,
                          alipay_public_key=gw.alipay_public_key_pem, **kw)


@pytest.fixture
async def acq(gw):
    a = client_for(gw)
    yield a
    await a.aclose()


def signed(method, node_text, key=KEY, sign=None):
    sig = sign if sign is not None else rsa2_sign(node_text, key)
    name = method.replace(".", "_") + "_response"
    return f'{{"{name}":{node_text},"sign":"{sig}"}}'.encode()


def mock_acquirer(handler, **kw):
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return client, AlipayAcquirer("https://gw.test/gateway.do", app_id="2014072300007148",
                                  private_key=KEY, alipay_public_key=PUB_PEM, client=client, **kw)


def answering(nodes):
    """A fake gateway answering each method with the given node text, signed with KEY."""
    def handler(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        text = nodes[form["method"]]
        return httpx.Response(200, content=signed(form["method"], text))
    return handler


# -- codec ----------------------------------------------------------------------------------------


def test_sign_string_golden():
    params = {
        "app_id": "2014072300007148", "method": "alipay.trade.pay", "format": "JSON",
        "charset": "utf-8", "sign_type": "RSA2", "timestamp": "2026-11-30 14:05:09",
        "version": "1.0", "notify_url": "", "sign": "ignored",
        "biz_content": '{"out_trade_no":"PK01_20261130_00000001","scene":"bar_code",'
                       '"auth_code":"28763443825664394","total_amount":"12.50","subject":"邮费"}',
    }
    assert sign_string(params) == GOLDEN_TEXT


def test_rsa2_signature_matches_openssl_and_round_trips():
    assert rsa2_sign(GOLDEN_TEXT, KEY) == GOLDEN_SIGNATURE
    assert rsa2_verify(GOLDEN_TEXT, GOLDEN_SIGNATURE, KEY.public_key())
    assert rsa2_verify(GOLDEN_NODE, GOLDEN_NODE_SIGNATURE, KEY.public_key())
    assert not rsa2_verify(GOLDEN_TEXT.replace("12.50", "12.51"), GOLDEN_SIGNATURE,
                           KEY.public_key())
    assert not rsa2_verify(GOLDEN_TEXT, "not base64!", KEY.public_key())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not rsa2_verify(GOLDEN_TEXT, GOLDEN_SIGNATURE, other.public_key())


async def test_request_on_the_wire_is_the_golden_request():
    seen = {}

    def handler(request):
        seen.update(httpx.QueryParams(request.content.decode()))
        seen["content-type"] = request.headers["content-type"]
        return httpx.Response(200, content=signed("alipay.trade.pay", GOLDEN_NODE))

    client, acq = mock_acquirer(handler, clock=lambda: AT)
    async with client:
        await acq.pay("PK01_20261130_00000001", 1250, "28763443825664394", "邮费")
    assert seen.pop("sign") == GOLDEN_SIGNATURE
    assert seen.pop("content-type").startswith("application/x-www-form-urlencoded")
    assert sign_string(seen) == GOLDEN_TEXT


def test_timestamp_is_shanghai_time():
    assert alipay_timestamp(AT) == "2026-11-30 14:05:09"
    assert alipay_timestamp(0) == "1970-01-01 08:00:00"


@given(st.integers(min_value=1, max_value=10**12))
def test_yuan_and_fen_are_exact_inverses(amount):
    text = yuan(amount)
    assert fen(text) == amount and text.count(".") == 1 and len(text.split(".")[1]) == 2


def test_amount_examples():
    assert yuan(1) == "0.01" and yuan(1250) == "12.50" and yuan(100000) == "1000.00"
    assert fen("0.1") == 10 and fen("12.5") == 1250 and fen("3") == 300
    for bad in ("1.001", "-1.00", "1e3", " 1.00", "", "NaN", "0x10"):
        assert fen(bad) is None


def test_response_spans_give_the_raw_text():
    text = '{ "alipay_trade_pay_response" : {"code": "10000", "a": "x\\/y", "b": [1, {"c": 2}]} , "sign":"s" }'
    spans = response_spans(text)
    start, end = spans["alipay_trade_pay_response"]
    assert text[start:end] == '{"code": "10000", "a": "x\\/y", "b": [1, {"c": 2}]}'
    assert text[slice(*spans["sign"])] == '"s"'
    for bad in ('{"a":1', '{"a":1}x', '[1]', '{"a":1,"a":2}', '{"a" 1}', ""):
        with pytest.raises(ValueError):
            response_spans(bad)


# -- keys -----------------------------------------------------------------------------------------


def test_keys_load_from_pem_file_and_base64_der(tmp_path):
    path = tmp_path / "app.pem"
    path.write_text(GOLDEN_KEY)
    der = base64.b64encode(KEY.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())).decode()
    for material in (GOLDEN_KEY, str(path), path, der):
        assert load_private_key(material).private_numbers() == KEY.private_numbers()
    pub_der = "".join(PUB_PEM.splitlines()[1:-1])  # the one-line form Alipay's console shows
    assert load_public_key(pub_der).public_numbers() == KEY.public_key().public_numbers()


def test_bad_keys_are_refused_clearly_without_echoing_them(tmp_path):
    with pytest.raises(ValueError, match="public key was given"):
        load_private_key(KEY.public_key())
    with pytest.raises(ValueError, match="neither a PEM key"):
        load_private_key("no such key file.pem")
    with pytest.raises(ValueError, match="cannot read key file"):
        load_private_key(tmp_path / "missing.pem")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="at least 2048"):
        load_private_key(small)
    garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
    with pytest.raises(ValueError) as err:
        load_private_key(garbage)
    assert "AAAA" not in str(err.value)


def test_constructor_checks_and_repr_hides_key():
    with pytest.raises(ValueError, match="app_id"):
        AlipayAcquirer("https://x/gateway.do", app_id="", private_key=KEY, alipay_public_key=PUB_PEM)
    with pytest.raises(ValueError, match="timeout"):
        AlipayAcquirer("https://x/gateway.do", app_id="1", private_key=KEY,
                       alipay_public_key=PUB_PEM, timeout=0)
    acq = AlipayAcquirer("https://x/gateway.do", app_id="1", private_key=KEY,
                         alipay_public_key=PUB_PEM, client=httpx.AsyncClient())
    assert "PRIVATE" not in repr(acq) and acq.channel == "alipay"


async def test_bad_input_is_refused_before_the_wire(acq, gw):
    with pytest.raises(ValueError, match="Alipay payment code"):
        await acq.pay("P1", 100, "134567890123456789", "邮费")  # a WeChat code
    with pytest.raises(ValueError, match="amount_fen"):
        await acq.pay("P1", 12.5, CODE, "邮费")
    with pytest.raises(ValueError, match="order_no"):
        await acq.pay("P 1", 100, CODE, "邮费")
    with pytest.raises(ValueError, match="subject"):
        await acq.pay("P1", 100, CODE, "")
    assert gw.gateway.requests["alipay.trade.pay"] == 0


# -- answers from a fake gateway (MockTransport) -----------------------------------------------------


async def test_signature_is_checked_over_the_raw_text_not_a_reserialisation():
    # Alipay's own spacing and escapes: re-serialising this would not give the signed bytes.
    node = ('{"code": "10000", "msg": "Success", "trade_no": "2026113022001", '
            '"out_trade_no": "O1", "total_amount": "12.50", "memo": "a\\/b \\u90ae"}')
    client, acq = mock_acquirer(answering({"alipay.trade.pay": node}))
    async with client:
        assert await acq.pay("O1", 1250, CODE, "邮费") == AcquirerAnswer(
            "paid", transaction_id="2026113022001")


async def test_tampered_body_or_foreign_signature_is_unknown():
    node = '{"code":"10000","msg":"Success","out_trade_no":"O2","total_amount":"12.50"}'
    good = rsa2_sign(node, KEY)

    def tampered(request):
        body = signed("alipay.trade.pay", node, sign=good).replace(b"12.50", b"00.01")
        return httpx.Response(200, content=body)

    client, acq = mock_acquirer(tampered)
    async with client:
        assert await acq.pay("O2", 1250, CODE, "邮费") == AcquirerAnswer(
            "unknown", reason="bad_signature")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client, acq = mock_acquirer(lambda r: httpx.Response(
        200, content=signed("alipay.trade.pay", node, key=other)))
    async with client:
        assert (await acq.pay("O2", 1250, CODE, "邮费")).reason == "bad_signature"


@pytest.mark.parametrize("node, expected", [
    ('{"code":"10000","msg":"Success","out_trade_no":"O3","total_amount":"0.01"}',
     AcquirerAnswer("unknown", reason="amount_mismatch")),
    ('{"code":"10000","msg":"Success","out_trade_no":"OTHER","total_amount":"12.50"}',
     AcquirerAnswer("unknown", reason="order_mismatch")),
    ('{"code":"10000","msg":"Success","out_trade_no":"O3","async_payment_mode":"ASYNC_DELAY_PAY"}',
     AcquirerAnswer("user_paying", reason="ASYNC_DELAY_PAY")),
    ('{"code":"10003","msg":"等待用户付款","out_trade_no":"O3"}',
     AcquirerAnswer("user_paying", reason="WAIT_BUYER_PAY")),
    ('{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}',
     AcquirerAnswer("unknown", reason="isp.unknow-error")),
    ('{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR"}',
     AcquirerAnswer("unknown", reason="ACQ.SYSTEM_ERROR")),
    ('{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_SUCCESS"}',
     AcquirerAnswer("unknown", reason="ACQ.TRADE_HAS_SUCCESS")),
    ('{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SOMETHING_NEW"}',
     AcquirerAnswer("unknown", reason="ACQ.SOMETHING_NEW")),
    ('{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_CLOSE"}',
     AcquirerAnswer("failed", reason="ACQ.TRADE_HAS_CLOSE")),
    ('{"code":"40004","msg":"Business Failed","sub_code":"ACQ.PAYMENT_AUTH_CODE_INVALID"}',
     AcquirerAnswer("failed", reason="ACQ.PAYMENT_AUTH_CODE_INVALID")),
    ('{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature"}',
     AcquirerAnswer("failed", reason="isv.invalid-signature")),
    ('"just a string"', AcquirerAnswer("unknown", reason="bad_json")),
])
async def test_pay_answer_mapping(node, expected):
    client, acq = mock_acquirer(answering({"alipay.trade.pay": node}))
    async with client:
        assert await acq.pay("O3", 1250, CODE, "邮费") == expected


@pytest.mark.parametrize("node, expected", [
    ('{"code":"10000","msg":"Success","trade_status":"TRADE_SUCCESS","trade_no":"T9","out_trade_no":"Q1"}',
     AcquirerAnswer("paid", transaction_id="T9")),
    ('{"code":"10000","msg":"Success","trade_status":"TRADE_FINISHED","out_trade_no":"Q1"}',
     AcquirerAnswer("paid")),
    ('{"code":"10000","msg":"Success","trade_status":"WAIT_BUYER_PAY","out_trade_no":"Q1"}',
     AcquirerAnswer("user_paying", reason="WAIT_BUYER_PAY")),
    ('{"code":"10000","msg":"Success","trade_status":"TRADE_CLOSED","out_trade_no":"Q1"}',
     AcquirerAnswer("failed", reason="TRADE_CLOSED")),
    ('{"code":"10000","msg":"Success","trade_status":"WHATEVER","out_trade_no":"Q1"}',
     AcquirerAnswer("unknown", reason="WHATEVER")),
    ('{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}',
     AcquirerAnswer("unknown", reason="ACQ.TRADE_NOT_EXIST")),
])
async def test_query_answer_mapping(node, expected):
    client, acq = mock_acquirer(answering({"alipay.trade.query": node}))
    async with client:
        assert await acq.query("Q1") == expected


@pytest.mark.parametrize("node, expected", [
    ('{"code":"10000","msg":"Success","retry_flag":"N","action":"close"}', ReverseAnswer("reversed")),
    ('{"code":"10000","msg":"Success","retry_flag":"N","action":"refund"}', ReverseAnswer("refunded")),
    ('{"code":"10000","msg":"Success","retry_flag":"Y"}', ReverseAnswer("retry", reason="RETRY_FLAG")),
    ('{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","retry_flag":"Y"}',
     ReverseAnswer("retry", reason="ACQ.SYSTEM_ERROR")),
    ('{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}',
     ReverseAnswer("retry", reason="isp.unknow-error")),
    ('{"code":"10000","msg":"Success","retry_flag":"N"}', ReverseAnswer("unknown", reason="action_none")),
    ('{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","retry_flag":"N"}',
     ReverseAnswer("unknown", reason="ACQ.TRADE_NOT_EXIST")),
])
async def test_cancel_answer_mapping(node, expected):
    client, acq = mock_acquirer(answering({"alipay.trade.cancel": node}))
    async with client:
        assert await acq.reverse("C1") == expected


async def test_error_response_unsigned_and_http_errors_are_unknown():
    bodies = iter([
        (200, b'{"error_response":{"code":"40002","sub_code":"isv.invalid-method"}}', "error_response"),
        (200, b'{"alipay_trade_query_response":{"code":"10000","trade_status":"TRADE_SUCCESS"}}',
         "unsigned"),
        (502, b"bad gateway", "http_502"),
        (200, b"\xff\xfe", "bad_json"),
    ])
    expected = []

    def handler(request):
        status, body, reason = next(bodies)
        expected.append(reason)
        return httpx.Response(status, content=body)

    client, acq = mock_acquirer(handler)
    async with client:
        for _ in range(4):
            assert (await acq.query("E1")) == AcquirerAnswer("unknown", reason=expected[-1])


async def test_forged_cancel_is_unknown_not_retried():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    node = '{"code":"10000","msg":"Success","retry_flag":"N","action":"close"}'
    client, acq = mock_acquirer(lambda r: httpx.Response(
        200, content=signed("alipay.trade.cancel", node, key=other)))
    async with client:
        assert await acq.reverse("F1") == ReverseAnswer("unknown", reason="bad_signature")


# -- against the simulator over loopback HTTP --------------------------------------------------------


async def test_success_over_loopback(acq, gw):
    ans = await acq.pay("P1", 1250, CODE, "邮费")
    assert ans == AcquirerAnswer("paid", transaction_id=gw.orders["P1"].transaction_id)
    assert gw.charges("P1") == 1 and gw.orders["P1"].protocol == "alipay"
    assert await acq.query("P1") == AcquirerAnswer("paid", transaction_id=ans.transaction_id)


async def test_wrong_app_key_is_refused_unsigned_and_not_trusted(gw):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with AlipayAcquirer(gw.alipay_url, app_id=gw.alipay_app_id, private_key=other,
                              alipay_public_key=gw.alipay_public_key_pem, timeout=1) as acq:
        assert await acq.pay("K1", 100, CODE, "邮费") == AcquirerAnswer("unknown", reason="unsigned")
    assert "K1" not in gw.orders


async def test_answers_signed_by_another_alipay_key_are_not_trusted(gw):
    async with AlipayAcquirer(gw.alipay_url, app_id=gw.alipay_app_id,
                              private_key=gw.app_private_key_pem, alipay_public_key=PUB_PEM,
                              timeout=1) as acq:
        assert await acq.pay("K2", 100, CODE, "邮费") == AcquirerAnswer(
            "unknown", reason="bad_signature")
    assert gw.charges("K2") == 1  # the money moved: only a query with the right key can tell


async def test_tampered_reply_is_unknown_then_query_tells(acq, gw):
    gw.script(Scenario("tampered"))
    assert await acq.pay("X1", 100, CODE, "邮费") == AcquirerAnswer("unknown", reason="bad_signature")
    assert (await acq.query("X1")).outcome == "paid"


async def test_userpaying_then_success_after_queries(acq, gw):
    gw.script(Scenario("userpaying", then="success", after_queries=2), auth_code=CODE)
    assert await acq.pay("U1", 100, CODE, "邮费") == AcquirerAnswer("user_paying",
                                                                      reason="WAIT_BUYER_PAY")
    assert (await acq.query("U1")).outcome == "user_paying"
    assert (await acq.query("U1")).outcome == "paid"
    assert gw.charges("U1") == 1


async def test_code_used_twice_and_notenough(acq, gw):
    assert (await acq.pay("C1", 100, CODE, "邮费")).outcome == "paid"
    assert await acq.pay("C2", 100, CODE, "邮费") == AcquirerAnswer(
        "failed", reason="ACQ.PAYMENT_AUTH_CODE_INVALID")
    gw.script(Scenario("notenough"))
    assert await acq.pay("N1", 100, "28763443825664394", "邮费") == AcquirerAnswer(
        "failed", reason="ACQ.BUYER_BALANCE_NOT_ENOUGH")
    assert gw.charges("N1") == 0 and "C2" not in gw.orders


async def test_repeat_pay_of_paid_order_is_unknown_not_second_charge(acq, gw):
    assert (await acq.pay("R1", 100, CODE, "邮费")).outcome == "paid"
    assert await acq.pay("R1", 100, "28763443825664394", "邮费") == AcquirerAnswer(
        "unknown", reason="ACQ.TRADE_HAS_SUCCESS")
    assert gw.charges("R1") == 1


async def test_query_of_unknown_order_is_unknown_never_failed(acq):
    assert await acq.query("NOPE") == AcquirerAnswer("unknown", reason="ACQ.TRADE_NOT_EXIST")


async def test_timeout_then_late_success_is_refunded_by_cancel(acq, gw):
    gw.script(Scenario("timeout", then="success", delay=0.6))
    assert await acq.pay("T1", 100, CODE, "邮费") == AcquirerAnswer("unknown", reason="timeout")
    assert (await acq.query("T1")).outcome == "user_paying"
    await asyncio.sleep(0.3)
    assert (await acq.query("T1")).outcome == "paid" and gw.charges("T1") == 1
    assert await acq.reverse("T1") == ReverseAnswer("refunded")
    assert gw.orders["T1"].refunds == 1
    assert await acq.query("T1") == AcquirerAnswer("failed", reason="TRADE_CLOSED")


async def test_cancel_retry_flag_then_close(acq, gw):
    gw.script(Scenario("userpaying", then="never", reverse_errors=1))
    assert (await acq.pay("V1", 100, CODE, "邮费")).outcome == "user_paying"
    assert await acq.reverse("V1") == ReverseAnswer("retry", reason="ACQ.SYSTEM_ERROR")
    assert await acq.reverse("V1") == ReverseAnswer("reversed")
    assert gw.charges("V1") == 0 and gw.orders["V1"].trade_state == "REVOKED"


async def test_network_down_is_unknown_and_cancel_retries(gw):
    url, pem, pub = gw.alipay_url, gw.app_private_key_pem, gw.alipay_public_key_pem
    await gw.close()
    async with AlipayAcquirer(url, app_id="2021000000000001", private_key=pem,
                              alipay_public_key=pub, timeout=0.5) as a:
        assert await a.pay("Z1", 100, CODE, "邮费") == AcquirerAnswer("unknown", reason="network")
        assert await a.reverse("Z1") == ReverseAnswer("retry", reason="network")


async def test_auth_code_never_logged(acq, gw, caplog):
    caplog.set_level(logging.DEBUG)
    gw.script(Scenario("userpaying", then="success"), auth_code=CODE)
    await acq.pay("L1", 100, CODE, "邮费")
    await acq.query("L1")
    await acq.pay("L2", 100, CODE, "邮费")  # reused code: error path logs too
    with pytest.raises(ValueError) as err:
        await acq.pay("L3", 100, CODE + "x", "邮费")
    assert CODE not in str(err.value)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert CODE not in text and CODE[:14] not in text
    assert "4645" in caplog.text
    assert "PRIVATE KEY" not in text


# -- through the payment state machine -----------------------------------------------------------------

FAST = fast_settings(station_id="SZ01", call_timeout=2.0)


@pytest.fixture
async def desk(gw, tmp_path):
    db = Database(tmp_path / "pay.sqlite3", mounts="")
    await db.open()
    acq = client_for(gw, timeout=0.2)
    yield PaymentDesk(db, {"alipay": acq}, settings=FAST)
    await acq.aclose()
    await db.close()


@pytest.mark.parametrize("scenario, state, charges, refunds", [
    (Scenario("success"), "paid", 1, 0),
    (Scenario("duplicate"), "paid", 1, 0),
    (Scenario("userpaying", then="success", after_queries=2), "paid", 1, 0),
    (Scenario("userpaying", then="fail", after_queries=1), "failed", 0, 0),
    (Scenario("userpaying", then="never"), "reversed", 0, 0),
    (Scenario("userpaying", then="never", reverse_errors=2), "reversed", 0, 0),
    (Scenario("systemerror", then="success"), "paid", 1, 0),
    (Scenario("bankerror", then="success"), "paid", 1, 0),
    (Scenario("http500", then="success"), "paid", 1, 0),
    (Scenario("timeout", then="success", delay=0.25), "paid", 1, 0),
    (Scenario("timeout", then="success", delay=0.6), "reversed", 0, 0),
    (Scenario("tampered"), "paid", 1, 0),
    (Scenario("notenough"), "failed", 0, 0),
])
async def test_every_scenario_through_the_payment_desk(desk, gw, scenario, state, charges, refunds):
    gw.script(scenario)
    result = await desk.pay("posting", "P42", 1250, CODE)
    assert result.state == state and result.channel == "alipay" and result.last4 == "4645"
    order = gw.orders[result.order_no]
    assert order.charges == charges and order.refunds == refunds
    assert order.total_fee == 1250
    if state == "paid":
        assert result.transaction_id == order.transaction_id
    if scenario.kind == "timeout":
        await asyncio.sleep(max(0.0, scenario.delay - 0.3))
        assert order.charges == charges  # a late success after the cancel never charges


async def test_desk_code_reuse_fails_and_refund_of_paid_order(desk, gw):
    skipped = 0.0
    desk.clock = lambda: time.time() + skipped
    first = await desk.pay("posting", "P1", 500, CODE)
    assert first.paid
    skipped = 3.0  # past the desk's reverse margin after a pay call, without waiting for it
    second = await desk.pay("posting", "P2", 500, CODE)
    assert second.state == "failed" and second.reason == "ACQ.PAYMENT_AUTH_CODE_INVALID"
    refunded = await desk.refund_paid("posting", "P1", "door_jammed")
    assert refunded.state == "refunded" and gw.orders[first.order_no].refunds == 1


async def test_desk_never_logs_the_code(desk, gw, caplog):
    caplog.set_level(logging.DEBUG)
    gw.script(Scenario("userpaying", then="never", reverse_errors=1))
    await desk.pay("posting", "P9", 500, CODE)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert CODE not in text and CODE[:14] not in text
