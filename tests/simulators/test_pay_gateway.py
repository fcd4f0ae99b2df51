import asyncio
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET

import httpx
import pytest

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
