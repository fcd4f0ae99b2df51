import asyncio
import hashlib
import logging

import httpx
import pytest

from lockers.acquirers import AcquirerAnswer, ReverseAnswer
from lockers.acquirers.wechat_v2 import (
    PAY_ERR_OUTCOME,
    WeChatV2Acquirer,
    from_xml,
    make_sign,
    to_xml,
    verify_sign,
    XmlError,
)
from simulators.pay_gateway import Scenario, run_pay_gateway

APPID, MCH, KEY = "wx2421b1c4370ec43b", "10000100", "sim-key-0123456789abcdef01234567"
CODE = "134567890123456789"


def codes():
    n = 0
    while True:
        n += 1
        yield f"13{n:016d}"


@pytest.fixture
async def gw():
    running = await run_pay_gateway(appid=APPID, mch_id=MCH, api_key=KEY)
    yield running
    await running.close()


@pytest.fixture
async def acq(gw):
    a = WeChatV2Acquirer(gw.url, appid=APPID, mch_id=MCH, api_key=KEY, timeout=0.5)
    yield a
    await a.aclose()


# -- signature ------------------------------------------------------------------------------


def test_md5_sign_golden_vector():
    # WeChat's documented example; the expected value is computed by hand from the algorithm:
    # sorted non-empty k=v joined by "&", then "&key=<api key>", MD5, upper-case hex.
    params = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000",
              "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA", "empty": "", "sign": "ignored"}
    key = "192006250b4c09247ec02edce69f6a2d"
    by_hand = ("appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100"
               "&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d")
    assert make_sign(params, key) == hashlib.md5(by_hand.encode()).hexdigest().upper()
    assert make_sign(params, key) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert make_sign(params, key, "HMAC-SHA256") == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6")


def test_verify_sign_rejects_tampering_and_missing_sign():
    params = {"return_code": "SUCCESS", "total_fee": "100"}
    params["sign"] = make_sign(params, KEY)
    assert verify_sign(params, KEY)
    assert not verify_sign({**params, "total_fee": "1"}, KEY)
    assert not verify_sign({k: v for k, v in params.items() if k != "sign"}, KEY)
    assert not verify_sign(params, "other-key")


def test_xml_round_trip_escapes_and_refuses_dtd():
    params = {"body": "邮费 <&> 1", "out_trade_no": "A1"}
    assert from_xml(to_xml(params)) == params
    with pytest.raises(XmlError):
        from_xml(b'<!DOCTYPE x [<!ENTITY a "b">]><xml><a>&a;</a></xml>')
    with pytest.raises(XmlError):
        from_xml(b"<xml><a><b>1</b></a></xml>")


def test_every_documented_pay_error_has_an_outcome_and_none_is_paid():
    for code in ("USERPAYING", "SYSTEMERROR", "BANKERROR", "AUTHCODEEXPIRE", "NOTENOUGH",
                 "ORDERPAID", "ORDERREVERSED", "ORDERCLOSED", "AUTH_CODE_INVALID", "TRADE_ERROR"):
        assert PAY_ERR_OUTCOME[code] in {"user_paying", "unknown", "failed"}
    assert PAY_ERR_OUTCOME["USERPAYING"] == "user_paying"
    assert PAY_ERR_OUTCOME["SYSTEMERROR"] == "unknown"
    assert PAY_ERR_OUTCOME["NOTENOUGH"] == "failed"


# -- input checks ---------------------------------------------------------------------------


async def test_bad_input_is_refused_before_the_wire(acq, gw):
    with pytest.raises(ValueError, match="WeChat payment code"):
        await acq.pay("P1", 100, "289431869362714645", "邮费")  # an Alipay code
    with pytest.raises(ValueError, match="amount_fen"):
        await acq.pay("P1", 0, CODE, "邮费")
    with pytest.raises(ValueError, match="order_no"):
        await acq.pay("P 1", 100, CODE, "邮费")
    with pytest.raises(ValueError, match="subject"):
        await acq.pay("P1", 100, CODE, "邮" * 50)
    assert gw.gateway.requests["micropay"] == 0


def test_constructor_checks_and_hides_key():
    with pytest.raises(ValueError):
        WeChatV2Acquirer("http://x", appid="", mch_id=MCH, api_key=KEY)
    with pytest.raises(ValueError):
        WeChatV2Acquirer("http://x", appid=APPID, mch_id=MCH, api_key=KEY, sign_type="SHA1")


# -- scenarios over loopback HTTP -------------------------------------------------------------


async def test_success(acq, gw):
    ans = await acq.pay("P1", 1250, CODE, "邮费")
    assert ans.outcome == "paid" and ans.transaction_id == gw.orders["P1"].transaction_id
    assert gw.charges("P1") == 1
    assert (await acq.query("P1")).outcome == "paid"


async def test_hmac_sha256_signing_end_to_end(gw):
    async with WeChatV2Acquirer(gw.url, appid=APPID, mch_id=MCH, api_key=KEY,
                                sign_type="HMAC-SHA256", timeout=1) as acq:
        assert (await acq.pay("H1", 100, CODE, "邮费")).outcome == "paid"


async def test_wrong_key_is_refused_by_gateway_and_not_trusted(gw):
    async with WeChatV2Acquirer(gw.url, appid=APPID, mch_id=MCH, api_key="wrong", timeout=1) as acq:
        ans = await acq.pay("K1", 100, CODE, "邮费")
    assert ans == AcquirerAnswer("unknown", reason="return_fail")
    assert "K1" not in gw.orders


async def test_userpaying_then_success_after_queries(acq, gw):
    gw.script(Scenario("userpaying", then="success", after_queries=2), auth_code=CODE)
    assert (await acq.pay("U1", 100, CODE, "邮费")).outcome == "user_paying"
    assert (await acq.query("U1")).outcome == "user_paying"
    assert (await acq.query("U1")).outcome == "paid"
    assert gw.charges("U1") == 1


async def test_userpaying_then_failure_after_seconds(acq, gw):
    gw.script(Scenario("userpaying", then="fail", after_seconds=0.2))
    assert (await acq.pay("U2", 100, CODE, "邮费")).outcome == "user_paying"
    assert (await acq.query("U2")).outcome == "user_paying"
    await asyncio.sleep(0.25)
    assert await acq.query("U2") == AcquirerAnswer("failed", reason="PAYERROR")
    assert gw.charges("U2") == 0


@pytest.mark.parametrize("kind", ["systemerror", "bankerror", "http500"])
async def test_system_errors_are_unknown_and_query_tells(acq, gw, kind):
    gw.script(Scenario(kind, then="success"))
    ans = await acq.pay("S1", 100, CODE, "邮费")
    assert ans.outcome == "unknown"
    assert (await acq.query("S1")).outcome == "paid"
    assert gw.charges("S1") == 1


async def test_timeout_then_late_success_after_client_gave_up(acq, gw):
    gw.script(Scenario("timeout", then="success", delay=1.0))
    ans = await acq.pay("T1", 100, CODE, "邮费")
    assert ans == AcquirerAnswer("unknown", reason="timeout")
    assert (await acq.query("T1")).outcome == "user_paying"
    assert gw.charges("T1") == 0
    await asyncio.sleep(0.7)  # the held answer lands after the client gave up
    assert (await acq.query("T1")).outcome == "paid"
    assert gw.charges("T1") == 1
    assert await acq.reverse("T1") == ReverseAnswer("refunded")
    assert gw.orders["T1"].refunds == 1


async def test_timeout_reversed_before_late_success_never_charges(acq, gw):
    gw.script(Scenario("timeout", then="success", delay=1.0))
    assert (await acq.pay("T2", 100, CODE, "邮费")).outcome == "unknown"
    assert await acq.reverse("T2") == ReverseAnswer("reversed")
    await asyncio.sleep(0.7)
    assert gw.charges("T2") == 0
    assert await acq.query("T2") == AcquirerAnswer("failed", reason="REVOKED")


async def test_duplicate_answers_charge_once(acq, gw):
    gw.script(Scenario("duplicate"))
    first = await acq.pay("D1", 100, CODE, "邮费")
    second = await acq.pay("D1", 100, CODE, "邮费")  # a resent request gets the same answer
    assert first.outcome == second.outcome == "paid"
    assert first.transaction_id == second.transaction_id
    assert gw.charges("D1") == 1 and gw.orders["D1"].pay_requests == 2


async def test_repeat_pay_of_paid_order_is_unknown_not_second_charge(acq, gw):
    assert (await acq.pay("R1", 100, CODE, "邮费")).outcome == "paid"
    ans = await acq.pay("R1", 100, "134567890123450000", "邮费")
    assert ans == AcquirerAnswer("unknown", reason="ORDERPAID")
    assert gw.charges("R1") == 1


async def test_notenough_fails_with_reason(acq, gw):
    gw.script(Scenario("notenough"), auth_code=CODE)
    assert await acq.pay("N1", 100, CODE, "邮费") == AcquirerAnswer("failed", reason="NOTENOUGH")
    assert gw.charges("N1") == 0


async def test_code_already_used(acq, gw):
    assert (await acq.pay("C1", 100, CODE, "邮费")).outcome == "paid"
    ans = await acq.pay("C2", 100, CODE, "邮费")
    assert ans == AcquirerAnswer("failed", reason="AUTH_CODE_INVALID")
    assert gw.charges("C1") == 1 and "C2" not in gw.orders


async def test_tampered_response_signature_is_unknown_never_paid(acq, gw):
    gw.script(Scenario("tampered"))
    ans = await acq.pay("X1", 100, CODE, "邮费")
    assert ans == AcquirerAnswer("unknown", reason="bad_signature")
    assert (await acq.query("X1")).outcome == "paid"  # a genuine answer settles it


async def test_amount_mismatch_in_success_is_not_paid():
    def lie(request: httpx.Request) -> httpx.Response:
        p = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH, "result_code": "SUCCESS",
             "out_trade_no": "M1", "total_fee": "1", "transaction_id": "42x"}
        p["sign"] = make_sign(p, KEY)
        return httpx.Response(200, content=to_xml(p))

    async with httpx.AsyncClient(transport=httpx.MockTransport(lie)) as client:
        acq = WeChatV2Acquirer("http://gw", appid=APPID, mch_id=MCH, api_key=KEY, client=client)
        assert await acq.pay("M1", 100, CODE, "邮费") == AcquirerAnswer(
            "unknown", reason="amount_mismatch")


async def test_network_down_is_unknown_and_reverse_retries(acq, gw):
    url = gw.url
    await gw.close()
    async with WeChatV2Acquirer(url, appid=APPID, mch_id=MCH, api_key=KEY, timeout=0.5) as a:
        assert await a.pay("Z1", 100, CODE, "邮费") == AcquirerAnswer("unknown", reason="network")
        assert await a.reverse("Z1") == ReverseAnswer("retry", reason="network")


async def test_query_of_unknown_order_is_unknown(acq):
    assert await acq.query("NOPE") == AcquirerAnswer("unknown", reason="ORDERNOTEXIST")


async def test_reverse_unpaid_order_closes_it(acq, gw):
    gw.script(Scenario("userpaying", then="never"))
    assert (await acq.pay("V1", 100, CODE, "邮费")).outcome == "user_paying"
    assert await acq.reverse("V1") == ReverseAnswer("reversed")
    assert gw.orders["V1"].trade_state == "REVOKED" and gw.charges("V1") == 0


async def test_reverse_recall_y_means_retry_then_succeeds(acq, gw):
    gw.script(Scenario("success", reverse_errors=1))
    assert (await acq.pay("V2", 100, CODE, "邮费")).outcome == "paid"
    assert await acq.reverse("V2") == ReverseAnswer("retry", reason="SYSTEMERROR")
    assert await acq.reverse("V2") == ReverseAnswer("refunded")
    assert gw.orders["V2"].refunds == 1 and gw.charges("V2") == 1


async def test_auth_code_never_logged(acq, gw, caplog):
    caplog.set_level(logging.DEBUG)
    gw.script(Scenario("userpaying", then="success"), auth_code=CODE)
    await acq.pay("L1", 100, CODE, "邮费")
    await acq.query("L1")
    await acq.pay("L2", 100, CODE, "邮费")  # reused code: error path logs too
    with pytest.raises(ValueError) as err:
        await acq.pay("L3", 100, CODE + "9", "邮费")
    assert CODE not in str(err.value)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert CODE not in text and CODE[:14] not in text
    assert "6789" in caplog.text  # the last 4 digits are what staff see
    assert KEY not in text and KEY not in repr(acq)


async def test_reverse_with_forged_answer_is_unknown():
    def forged(request: httpx.Request) -> httpx.Response:
        p = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCH, "result_code": "SUCCESS"}
        if request.url.path.endswith("orderquery"):
            p["trade_state"] = "SUCCESS"
        else:
            p["recall"] = "N"
        p["sign"] = make_sign(p, "attacker-key")
        return httpx.Response(200, content=to_xml(p))

    async with httpx.AsyncClient(transport=httpx.MockTransport(forged)) as client:
        acq = WeChatV2Acquirer("http://gw", appid=APPID, mch_id=MCH, api_key=KEY, client=client)
        assert await acq.query("F1") == AcquirerAnswer("unknown", reason="bad_signature")
        assert await acq.reverse("F1") == ReverseAnswer("unknown", reason="bad_signature")
