import asyncio
import hashlib
import hmac
import json
import logging

import httpx
import pytest

from lockers.acquirers import AcquirerAnswer, ReverseAnswer
from lockers.acquirers.aggregator import AggregatorAcquirer, canonical, make_sign, verify_sign
from lockers.db import Database
from lockers.payments import PaymentDesk
from simulators.pay_gateway import Scenario, run_pay_gateway
from tests.payment_fixtures import fast_settings

CODE = "0112345678901234567"
KEY = "agg-test-key"
GOLDEN_FIELDS = {"merchant_id": "M100000001", "out_trade_no": "PK01_20261130_00000001",
                 "amount_fen": 1250, "auth_code": CODE, "pay_type": "DC_MICROPAY",
                 "nonce": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "timestamp": 1796011509,
                 "reason": "", "sign": "ignored"}
GOLDEN_TEXT = ("amount_fen=1250&auth_code=0112345678901234567&merchant_id=M100000001"
               "&nonce=5K8264ILTKCH16CQ2502SI8ZNMTM67VS&out_trade_no=PK01_20261130_00000001"
               "&pay_type=DC_MICROPAY&timestamp=1796011509")
# computed with `printf %s "$GOLDEN_TEXT" | openssl dgst -sha256 -hmac agg-test-key`
GOLDEN_SIGN = "594685ae7f3498db6681a5819c1951aee146f233949459c9f54b45b0b7a08a5e"


@pytest.fixture
async def gw():
    running = await run_pay_gateway()
    yield running
    await running.close()


def client_for(gw, **kw):
    kw.setdefault("timeout", 0.5)
    return AggregatorAcquirer(gw.agg_url, merchant_id=gw.agg_merchant_id, key=gw.agg_key, **kw)


@pytest.fixture
async def acq(gw):
    a = client_for(gw)
    yield a
    await a.aclose()


def mock_acquirer(reply_fields, *, key=KEY, status=200):
    """A fake aggregator answering with ``reply_fields`` (+ out_trade_no of the request), signed."""
    def handler(request):
        req = json.loads(request.content)
        out = {"merchant_id": "M1", "out_trade_no": req["out_trade_no"], **reply_fields}
        out["sign"] = make_sign(out, key)
        return httpx.Response(status, content=json.dumps(out).encode())
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return client, AggregatorAcquirer("https://agg.test/api", merchant_id="M1", key=KEY,
                                      client=client)


# -- codec ----------------------------------------------------------------------------------------


def test_canonical_string_and_hmac_golden():
    assert canonical(GOLDEN_FIELDS) == GOLDEN_TEXT
    assert make_sign(GOLDEN_FIELDS, KEY) == GOLDEN_SIGN
    assert GOLDEN_SIGN == hmac.new(KEY.encode(), GOLDEN_TEXT.encode(), hashlib.sha256).hexdigest()


def test_verify_rejects_tampering_missing_sign_and_unsignable_values():
    fields = {"merchant_id": "M1", "state": "SUCCESS", "amount_fen": 100}
    fields["sign"] = make_sign(fields, KEY)
    assert verify_sign(fields, KEY) and verify_sign({**fields, "sign": fields["sign"].upper()}, KEY)
    assert not verify_sign({**fields, "amount_fen": 1}, KEY)
    assert not verify_sign({k: v for k, v in fields.items() if k != "sign"}, KEY)
    assert not verify_sign(fields, "other")
    assert not verify_sign({**fields, "extra": [1]}, KEY)
    for bad in (1.5, True, {"a": 1}, [1]):
        with pytest.raises(ValueError, match="only strings and integers"):
            canonical({"x": bad})


def test_constructor_checks_and_repr_hides_key():
    with pytest.raises(ValueError, match="required"):
        AggregatorAcquirer("https://x", merchant_id="", key=KEY)
    with pytest.raises(ValueError, match="pay_type"):
        AggregatorAcquirer("https://x", merchant_id="M", key=KEY, pay_type="dc micropay")
    with pytest.raises(ValueError, match="timeout"):
        AggregatorAcquirer("https://x", merchant_id="M", key=KEY, timeout=-1)
    a = AggregatorAcquirer("https://x", merchant_id="M", key=KEY, channel="unionpay",
                           client=httpx.AsyncClient())
    assert a.channel == "unionpay" and KEY not in repr(a)


async def test_request_on_the_wire(gw):
    seen = {}

    def handler(request):
        seen.update(json.loads(request.content))
        seen["path"] = request.url.path
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        a = AggregatorAcquirer("https://agg.test/api/", merchant_id="M1", key=KEY,
                               pay_type="DC_MICROPAY", client=client, clock=lambda: 1796011509.7)
        assert await a.pay("O1", 1250, CODE, "邮费") == AcquirerAnswer("unknown", reason="http_500")
    assert seen.pop("path") == "/api/pay"
    assert seen["timestamp"] == 1796011509 and len(seen["nonce"]) == 32
    assert seen["sign"] == make_sign(seen, KEY)
    assert set(seen) == {"merchant_id", "out_trade_no", "amount_fen", "auth_code", "pay_type",
                         "nonce", "timestamp", "sign"}


@pytest.mark.parametrize("fields, expected", [
    ({"state": "SUCCESS", "transaction_id": "A1", "amount_fen": 1250},
     AcquirerAnswer("paid", transaction_id="A1")),
    ({"state": "SUCCESS", "transaction_id": "A1", "amount_fen": 1},
     AcquirerAnswer("unknown", reason="amount_mismatch")),
    ({"state": "USERPAYING"}, AcquirerAnswer("user_paying", reason="USERPAYING")),
    ({"state": "NOTPAY"}, AcquirerAnswer("user_paying", reason="NOTPAY")),
    ({"state": "FAIL", "reason": "NOTENOUGH"}, AcquirerAnswer("failed", reason="NOTENOUGH")),
    ({"state": "CLOSED"}, AcquirerAnswer("failed", reason="CLOSED")),
    ({"state": "ERROR", "reason": "SYSTEMERROR"}, AcquirerAnswer("unknown", reason="SYSTEMERROR")),
    ({"state": "SOMETHING_NEW"}, AcquirerAnswer("unknown", reason="SOMETHING_NEW")),
    ({"state": "SUCCESS", "merchant_id": "M2"}, AcquirerAnswer("unknown", reason="merchant_mismatch")),
    ({"state": "SUCCESS", "out_trade_no": "O9"}, AcquirerAnswer("unknown", reason="order_mismatch")),
])
async def test_pay_answer_mapping(fields, expected):
    client, a = mock_acquirer(fields)
    async with client:
        assert await a.pay("O1", 1250, CODE, "邮费") == expected


@pytest.mark.parametrize("fields, expected", [
    ({"state": "REVERSED"}, ReverseAnswer("reversed")),
    ({"state": "CLOSED"}, ReverseAnswer("reversed")),
    ({"state": "REFUND"}, ReverseAnswer("refunded")),
    ({"state": "ERROR", "reason": "SYSTEMERROR"}, ReverseAnswer("retry", reason="SYSTEMERROR")),
    ({"state": "NOTEXIST"}, ReverseAnswer("unknown", reason="NOTEXIST")),
])
async def test_reverse_answer_mapping(fields, expected):
    client, a = mock_acquirer(fields)
    async with client:
        assert await a.reverse("O1") == expected


async def test_forged_or_unsigned_replies_are_unknown():
    client, a = mock_acquirer({"state": "SUCCESS"}, key="attacker")
    async with client:
        assert await a.query("F1") == AcquirerAnswer("unknown", reason="bad_signature")
        assert await a.reverse("F1") == ReverseAnswer("unknown", reason="bad_signature")

    def unsigned(request):
        return httpx.Response(200, content=b'{"state":"SUCCESS","merchant_id":"M1"}')

    async with httpx.AsyncClient(transport=httpx.MockTransport(unsigned)) as client:
        a = AggregatorAcquirer("https://agg.test", merchant_id="M1", key=KEY, client=client)
        assert await a.query("F2") == AcquirerAnswer("unknown", reason="unsigned")
        assert await a.reverse("F2") == ReverseAnswer("retry", reason="unsigned")


# -- against the simulator over loopback HTTP --------------------------------------------------------


async def test_success_over_loopback(acq, gw):
    ans = await acq.pay("P1", 1250, CODE, "邮费")
    assert ans == AcquirerAnswer("paid", transaction_id=gw.orders["P1"].transaction_id)
    assert gw.charges("P1") == 1 and gw.orders["P1"].protocol == "aggregator"
    assert (await acq.query("P1")).outcome == "paid"


async def test_wrong_key_is_refused_and_not_trusted(gw):
    async with AggregatorAcquirer(gw.agg_url, merchant_id=gw.agg_merchant_id, key="wrong",
                                  timeout=1) as a:
        assert await a.pay("K1", 100, CODE, "邮费") == AcquirerAnswer("unknown", reason="http_401")
    assert "K1" not in gw.orders


async def test_tampered_reply_is_unknown_then_query_tells(acq, gw):
    gw.script(Scenario("tampered"))
    assert await acq.pay("X1", 100, CODE, "邮费") == AcquirerAnswer("unknown", reason="bad_signature")
    assert (await acq.query("X1")).outcome == "paid"


async def test_code_used_twice_and_repeat_of_paid_order(acq, gw):
    assert (await acq.pay("C1", 100, CODE, "邮费")).outcome == "paid"
    assert await acq.pay("C2", 100, CODE, "邮费") == AcquirerAnswer(
        "failed", reason="AUTH_CODE_INVALID")
    assert await acq.pay("C1", 100, "0112345678901230000", "邮费") == AcquirerAnswer(
        "unknown", reason="ORDERPAID")
    assert gw.charges("C1") == 1 and "C2" not in gw.orders


async def test_query_of_unknown_order_is_unknown(acq):
    assert await acq.query("NOPE") == AcquirerAnswer("unknown", reason="NOTEXIST")


async def test_timeout_then_late_success_is_refunded(acq, gw):
    gw.script(Scenario("timeout", then="success", delay=0.6))
    assert await acq.pay("T1", 100, CODE, "邮费") == AcquirerAnswer("unknown", reason="timeout")
    assert (await acq.query("T1")).outcome == "user_paying"
    await asyncio.sleep(0.3)
    assert (await acq.query("T1")).outcome == "paid"
    assert await acq.reverse("T1") == ReverseAnswer("refunded")
    assert await acq.query("T1") == AcquirerAnswer("failed", reason="REFUND")
    assert gw.orders["T1"].refunds == 1 and gw.charges("T1") == 1


async def test_auth_code_never_logged(acq, gw, caplog):
    caplog.set_level(logging.DEBUG)
    gw.script(Scenario("userpaying", then="success"), auth_code=CODE)
    await acq.pay("L1", 100, CODE, "邮费")
    await acq.query("L1")
    await acq.pay("L2", 100, CODE, "邮费")
    with pytest.raises(ValueError) as err:
        await acq.pay("L3", 100, CODE + "!", "邮费")
    assert CODE not in str(err.value)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert CODE not in text and CODE[:14] not in text and "4567" in caplog.text
    assert gw.agg_key not in text


# -- through the payment state machine -----------------------------------------------------------------

FAST = fast_settings(station_id="SZ01", call_timeout=2.0)


@pytest.fixture
async def desk(gw, tmp_path):
    db = Database(tmp_path / "pay.sqlite3", mounts="")
    await db.open()
    acq = client_for(gw, timeout=0.2)
    yield PaymentDesk(db, {"ecny": acq}, settings=FAST)
    await acq.aclose()
    await db.close()


@pytest.mark.parametrize("scenario, state, charges, reason", [
    (Scenario("success"), "paid", 1, None),
    (Scenario("duplicate"), "paid", 1, None),
    (Scenario("userpaying", then="success", after_queries=2), "paid", 1, None),
    (Scenario("userpaying", then="fail", after_queries=1), "failed", 0, "PAYERROR"),
    (Scenario("userpaying", then="never"), "reversed", 0, None),
    (Scenario("userpaying", then="never", reverse_errors=2), "reversed", 0, None),
    (Scenario("systemerror", then="success"), "paid", 1, None),
    (Scenario("bankerror", then="success"), "paid", 1, None),
    (Scenario("http500", then="success"), "paid", 1, None),
    (Scenario("timeout", then="success", delay=0.25), "paid", 1, None),
    (Scenario("timeout", then="success", delay=0.6), "reversed", 0, None),
    (Scenario("tampered"), "paid", 1, None),
    (Scenario("notenough"), "failed", 0, "NOTENOUGH"),
])
async def test_every_scenario_through_the_payment_desk(desk, gw, scenario, state, charges, reason):
    gw.script(scenario)
    result = await desk.pay("posting", "P42", 1250, CODE)
    assert result.state == state and result.channel == "ecny" and result.last4 == "4567"
    order = gw.orders[result.order_no]
    assert order.charges == charges and order.refunds == 0 and order.total_fee == 1250
    if reason is not None:
        assert result.reason == reason
    if state == "paid":
        assert result.transaction_id == order.transaction_id
    if scenario.kind == "timeout":
        await asyncio.sleep(max(0.0, scenario.delay - 0.3))
        assert order.charges == charges


async def test_desk_code_reuse_fails(desk, gw):
    assert (await desk.pay("posting", "P1", 500, CODE)).paid
    second = await desk.pay("posting", "P2", 500, CODE)
    assert second.state == "failed" and second.reason == "AUTH_CODE_INVALID"
