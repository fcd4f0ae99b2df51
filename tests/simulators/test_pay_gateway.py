import asyncio
import base64
import hashlib
import hmac
import json
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from simulators.pay_gateway import Scenario, run_pay_gateway

APPID, MCH, KEY = "wxtest", "1900000109", "k" * 32
CODE = "120061098828009406"


def sign(params, sign_type="MD5", key=KEY):
    text = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v and k != "sign")
    data = f"{text}&key={key}".encode()
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), data, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(data).hexdigest().upper()


def body(params, sign_type="MD5", key=KEY):
    p = {"appid": APPID, "mch_id": MCH, "nonce_str": "n0nce", **params}
    if sign_type != "MD5":
        p["sign_type"] = sign_type
    p["sign"] = sign(p, sign_type, key)
    return "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in p.items()) + "</xml>"


def parse(resp):
    return {c.tag: c.text or "" for c in ET.fromstring(resp.content)}


@pytest.fixture
async def gw():
    running = await run_pay_gateway(appid=APPID, mch_id=MCH, api_key=KEY)
    yield running
    await running.close()


@pytest.fixture
async def http(gw):
    async with httpx.AsyncClient(base_url=gw.url, timeout=3) as client:
        yield client


def pay(no, code=CODE, fee=100):
    return {"body": "邮费", "out_trade_no": no, "total_fee": str(fee),
            "spbill_create_ip": "127.0.0.1", "auth_code": code}


async def test_success_is_signed_and_charges_once(gw, http):
    r = parse(await http.post("/pay/micropay", content=body(pay("A1"))))
    assert r["return_code"] == r["result_code"] == "SUCCESS"
    assert r["sign"] == sign(r)
    assert r["out_trade_no"] == "A1" and r["total_fee"] == "100"
    assert gw.charges("A1") == 1
    assert gw.orders["A1"].code_tail == "9406"


async def test_hmac_request_gets_hmac_answer(http):
    r = parse(await http.post("/pay/micropay", content=body(pay("A2"), "HMAC-SHA256")))
    assert r["result_code"] == "SUCCESS" and r["sign"] == sign(r, "HMAC-SHA256")


async def test_bad_request_signature_is_refused_without_an_order(gw, http):
    r = parse(await http.post("/pay/micropay", content=body(pay("B1"), key="wrong")))
    assert r["return_code"] == "FAIL" and "sign" not in r
    assert gw.orders == {}


async def test_code_reuse_is_auth_code_invalid(gw, http):
    await http.post("/pay/micropay", content=body(pay("C1")))
    r = parse(await http.post("/pay/micropay", content=body(pay("C2"))))
    assert r["err_code"] == "AUTH_CODE_INVALID" and r["sign"] == sign(r)
    assert "C2" not in gw.orders


async def test_repeat_of_paid_order_is_orderpaid(gw, http):
    await http.post("/pay/micropay", content=body(pay("E1")))
    r = parse(await http.post("/pay/micropay", content=body(pay("E1", "130000000000000001"))))
    assert r["err_code"] == "ORDERPAID" and gw.charges("E1") == 1


async def test_duplicate_answer_is_byte_identical(gw, http):
    gw.script(Scenario("duplicate"))
    a = await http.post("/pay/micropay", content=body(pay("D1")))
    b = await http.post("/pay/micropay", content=body(pay("D1")))
    assert a.content == b.content and gw.charges("D1") == 1


async def test_script_per_code_wins_over_next_order_queue(gw, http):
    gw.script(Scenario("notenough"))
    gw.script(Scenario("userpaying", then="never"), auth_code=CODE)
    r = parse(await http.post("/pay/micropay", content=body(pay("S1"))))
    assert r["err_code"] == "USERPAYING"
    r = parse(await http.post("/pay/micropay", content=body(pay("S2", "140000000000000002"))))
    assert r["err_code"] == "NOTENOUGH"
    r = parse(await http.post("/pay/micropay", content=body(pay("S3", "140000000000000003"))))
    assert r["result_code"] == "SUCCESS"


async def test_query_states_and_unknown_order(gw, http):
    gw.script(Scenario("userpaying", then="success", after_queries=2))
    await http.post("/pay/micropay", content=body(pay("Q1")))
    states = [parse(await http.post("/pay/orderquery", content=body({"out_trade_no": "Q1"})))
              ["trade_state"] for _ in range(3)]
    assert states == ["USERPAYING", "SUCCESS", "SUCCESS"] and gw.charges("Q1") == 1
    r = parse(await http.post("/pay/orderquery", content=body({"out_trade_no": "nope"})))
    assert r["result_code"] == "FAIL" and r["err_code"] == "ORDERNOTEXIST"


async def test_reverse_paid_refunds_unpaid_closes(gw, http):
    await http.post("/pay/micropay", content=body(pay("R1")))
    gw.script(Scenario("userpaying", then="never"))
    await http.post("/pay/micropay", content=body(pay("R2", "150000000000000001")))
    for no in ("R1", "R2"):
        r = parse(await http.post("/secapi/pay/reverse", content=body({"out_trade_no": no})))
        assert r["result_code"] == "SUCCESS" and r["recall"] == "N"
        assert gw.orders[no].trade_state == "REVOKED"
    assert gw.orders["R1"].refunds == 1 and gw.orders["R2"].refunds == 0
    assert gw.charges("R2") == 0
    r = parse(await http.post("/pay/micropay", content=body(pay("R2", "150000000000000002"))))
    assert r["err_code"] == "ORDERREVERSED"


async def test_reverse_errors_ask_for_recall(gw, http):
    gw.script(Scenario("success", reverse_errors=2))
    await http.post("/pay/micropay", content=body(pay("Y1")))
    recalls = [parse(await http.post("/secapi/pay/reverse", content=body({"out_trade_no": "Y1"})))
               ["recall"] for _ in range(3)]
    assert recalls == ["Y", "Y", "N"] and gw.orders["Y1"].refunds == 1


async def test_timeout_holds_answer_then_lands(gw, http):
    gw.script(Scenario("timeout", then="success", delay=0.6))
    with pytest.raises(httpx.ReadTimeout):
        await http.post("/pay/micropay", content=body(pay("T1")), timeout=0.2)
    assert gw.orders["T1"].trade_state == "USERPAYING" and gw.charges("T1") == 0
    await asyncio.sleep(0.6)
    assert gw.orders["T1"].trade_state == "SUCCESS" and gw.charges("T1") == 1


async def test_close_releases_a_held_answer_quickly():
    running = await run_pay_gateway(appid=APPID, mch_id=MCH, api_key=KEY)
    running.script(Scenario("timeout", delay=60))
    async with httpx.AsyncClient(base_url=running.url, timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/pay/micropay", content=body(pay("T2")))
    start = time.monotonic()
    await running.close()
    await running.close()
    assert time.monotonic() - start < 3


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        Scenario("explode")
    with pytest.raises(ValueError, match="then"):
        Scenario("userpaying", then="maybe")


# -- Alipay and aggregator, the ledger and scripting over HTTP ------------------------------------

ALI_CODE, ECNY_CODE = "28763443825664394", "0112345678901234567"


def ali_form(gw, method, biz, key_pem=None):
    key = serialization.load_pem_private_key((key_pem or gw.app_private_key_pem).encode(), None)
    p = {"app_id": gw.alipay_app_id, "method": method, "format": "JSON", "charset": "utf-8",
         "sign_type": "RSA2", "timestamp": "2026-11-30 14:05:09", "version": "1.0",
         "biz_content": json.dumps(biz, ensure_ascii=False)}
    text = "&".join(f"{k}={p[k]}" for k in sorted(p))
    p["sign"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(),
                                          hashes.SHA256())).decode()
    return urlencode(p)


def ali_answer(gw, resp, method):
    """The response node, after checking its signature over the raw text."""
    text = resp.content.decode()
    name = method.replace(".", "_") + "_response"
    start = text.index("{", text.index(f'"{name}"') + len(name) + 2)
    end = text.rindex(',"sign":"')
    raw, sig = text[start:end], json.loads(text)["sign"]
    pub = serialization.load_pem_public_key(gw.alipay_public_key_pem.encode())
    pub.verify(base64.b64decode(sig), raw.encode(), padding.PKCS1v15(), hashes.SHA256())
    return json.loads(raw)


def ali_pay(no, code=ALI_CODE, amount="12.50"):
    return {"out_trade_no": no, "scene": "bar_code", "auth_code": code, "total_amount": amount,
            "subject": "邮费"}


async def alipost(http, gw, method, biz, **kw):
    return await http.post("/gateway.do", content=ali_form(gw, method, biz, **kw),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})


def agg_body(gw, fields, key=None):
    b = {"merchant_id": gw.agg_merchant_id, "nonce": "n" * 32, "timestamp": int(time.time()),
         **fields}
    text = "&".join(f"{k}={b[k]}" for k in sorted(b))
    b["sign"] = hmac.new((key or gw.agg_key).encode(), text.encode(), hashlib.sha256).hexdigest()
    return json.dumps(b)


def agg_ok(gw, resp):
    r = resp.json()
    text = "&".join(f"{k}={r[k]}" for k in sorted(r) if k != "sign" and r[k] not in ("", None))
    assert r["sign"] == hmac.new(gw.agg_key.encode(), text.encode(), hashlib.sha256).hexdigest()
    return r


async def test_alipay_pay_is_signed_over_raw_text_and_charges_once(gw, http):
    r = ali_answer(gw, await alipost(http, gw, "alipay.trade.pay", ali_pay("A1")),
                   "alipay.trade.pay")
    assert r["code"] == "10000" and r["total_amount"] == "12.50" and r["out_trade_no"] == "A1"
    assert gw.charges("A1") == 1 and gw.orders["A1"].total_fee == 1250
    assert gw.orders["A1"].protocol == "alipay" and gw.orders["A1"].code_tail == "4394"
    q = ali_answer(gw, await alipost(http, gw, "alipay.trade.query", {"out_trade_no": "A1"}),
                   "alipay.trade.query")
    assert q["trade_status"] == "TRADE_SUCCESS"


async def test_alipay_bad_request_signature_is_refused_unsigned(gw, http):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    resp = await alipost(http, gw, "alipay.trade.pay", ali_pay("B1"), key_pem=other)
    body = resp.json()
    assert "sign" not in body
    assert body["alipay_trade_pay_response"]["sub_code"] == "isv.invalid-signature"
    assert gw.orders == {}


@pytest.mark.parametrize("kind, code, sub_code", [
    ("userpaying", "10003", None),
    ("systemerror", "20000", "aop.ACQ.SYSTEM_ERROR"),
    ("bankerror", "20000", "isp.unknow-error"),
    ("notenough", "40004", "ACQ.BUYER_BALANCE_NOT_ENOUGH"),
])
async def test_alipay_scenarios_in_alipay_codes(gw, http, kind, code, sub_code):
    gw.script(Scenario(kind, then="never"))
    r = ali_answer(gw, await alipost(http, gw, "alipay.trade.pay", ali_pay("S1")),
                   "alipay.trade.pay")
    assert r["code"] == code and r.get("sub_code") == sub_code and gw.charges("S1") == 0


async def test_alipay_code_reuse_cancel_and_retry_flag(gw, http):
    gw.script(Scenario("success", reverse_errors=1))
    await alipost(http, gw, "alipay.trade.pay", ali_pay("R1"))
    r = ali_answer(gw, await alipost(http, gw, "alipay.trade.pay", ali_pay("R2")),
                   "alipay.trade.pay")
    assert r["sub_code"] == "ACQ.PAYMENT_AUTH_CODE_INVALID" and "R2" not in gw.orders
    cancels = [ali_answer(gw, await alipost(http, gw, "alipay.trade.cancel", {"out_trade_no": "R1"}),
                          "alipay.trade.cancel") for _ in range(2)]
    assert [c["retry_flag"] for c in cancels] == ["Y", "N"] and cancels[1]["action"] == "refund"
    assert gw.orders["R1"].refunds == 1


async def test_aggregator_wire(gw, http):
    pay = {"out_trade_no": "G1", "amount_fen": 1250, "auth_code": ECNY_CODE,
           "pay_type": "DC_MICROPAY"}
    r = agg_ok(gw, await http.post("/agg/pay", content=agg_body(gw, pay)))
    assert r["state"] == "SUCCESS" and r["amount_fen"] == 1250 and gw.charges("G1") == 1
    bad = await http.post("/agg/pay", content=agg_body(gw, {**pay, "out_trade_no": "G2"}, "x"))
    assert bad.status_code == 401 and "G2" not in gw.orders
    r = agg_ok(gw, await http.post("/agg/pay", content=agg_body(gw, {**pay, "out_trade_no": "G3"})))
    assert (r["state"], r["reason"]) == ("FAIL", "AUTH_CODE_INVALID")
    r = agg_ok(gw, await http.post("/agg/reverse", content=agg_body(gw, {"out_trade_no": "G1"})))
    assert r["state"] == "REFUND" and gw.orders["G1"].refunds == 1
    r = agg_ok(gw, await http.post("/agg/query", content=agg_body(gw, {"out_trade_no": "nope"})))
    assert (r["state"], r["reason"]) == ("ERROR", "NOTEXIST")


async def test_an_order_number_belongs_to_its_protocol(gw, http):
    await http.post("/pay/micropay", content=body(pay("W1")))
    q = ali_answer(gw, await alipost(http, gw, "alipay.trade.query", {"out_trade_no": "W1"}),
                   "alipay.trade.query")
    assert q["sub_code"] == "ACQ.TRADE_NOT_EXIST"


async def test_script_over_http_and_ledger(gw, http):
    r = await http.post("/sim/script", json={"kind": "userpaying", "then": "success",
                                             "after_queries": 1, "auth_code": ALI_CODE})
    assert r.status_code == 200 and r.json()["for"] == "code …4394"
    assert (await http.post("/sim/script", json={"kind": "notenough"})).status_code == 200
    bad = await http.post("/sim/script", json={"kind": "explode"})
    assert bad.status_code == 400 and "unknown scenario" in bad.json()["error"]
    assert (await http.post("/sim/script", json={"kind": "success", "colour": 1})).status_code == 400
    await alipost(http, gw, "alipay.trade.pay", ali_pay("L1"))
    await http.post("/pay/micropay", content=body(pay("L2")))
    await alipost(http, gw, "alipay.trade.query", {"out_trade_no": "L1"})
    ledger = (await http.get("/sim/ledger")).json()
    orders = {o["out_trade_no"]: o for o in ledger["orders"]}
    assert orders["L1"]["protocol"] == "alipay" and orders["L1"]["scenario"] == "userpaying"
    assert orders["L1"]["protocol_state"] == "TRADE_SUCCESS" and orders["L1"]["charges"] == 1
    assert orders["L2"]["protocol"] == "wechat" and orders["L2"]["trade_state"] == "PAYERROR"
    assert orders["L2"]["amount_fen"] == 100 and orders["L2"]["refunds"] == 0
    assert ledger["requests"]["alipay.trade.query"] == 1
    assert ALI_CODE not in json.dumps(ledger) and CODE not in json.dumps(ledger)


async def test_given_keys_are_used():
    app = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app_pub = app.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    running = await run_pay_gateway(app_public_key_pem=app_pub)
    try:
        assert running.app_private_key_pem is None
        assert "PUBLIC KEY" in running.alipay_public_key_pem
    finally:
        await running.close()
