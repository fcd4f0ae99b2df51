import base64
import datetime as dt
import gc
import json
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hal.codes import (
    CARRIERS,
    MAX_TEXT,
    PICKUP_TOKEN_LENGTH,
    PICKUP_TOKEN_PREFIX,
    CarrierWaybill,
    ChannelRule,
    InvalidIdNumber,
    PaymentCode,
    PaymentCodeRules,
    PickupCode,
    PickupToken,
    PostalItem,
    ResidentIdNumber,
    Unknown,
    age_on,
    classify,
    explain,
    make_s10,
    parse_resident_id,
    resident_id_check_char,
    s10_check_digit,
    s10_valid,
)

TODAY = dt.date(2026, 11, 1)
TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
READ_TYPES = (PickupCode, PickupToken, PaymentCode, ResidentIdNumber, PostalItem, CarrierWaybill, Unknown)


# ---------------------------------------------------------------- §3.1 UPU S10

@pytest.mark.parametrize("serial, digit", [
    ("12345678", 5), ("47110815", 1), ("47312482", 9), ("00071758", 1), ("96633102", 0), ("76129403", 8),
    ("00071759", 5), ("00071761", 8),
])
def test_s10_check_digits_of_the_published_vectors(serial, digit):
    assert s10_check_digit(serial) == digit


@pytest.mark.parametrize("number, valid", [
    ("EA123456785CN", True), ("EE471108151FR", True), ("RR473124829GB", True), ("EB000717595HK", True),
    ("EB000717594HK", False), ("EB000717618HK", True), ("EB900717618HK", False),
])
def test_s10_validity_of_the_published_vectors(number, valid):
    assert s10_valid(number) is valid
    read = classify(number)
    assert isinstance(read, PostalItem) and read.valid is valid
    assert read.reason == (None if valid else "check")


def test_s10_sum_divisible_by_11_gives_5_unconfirmed():
    """UNCONFIRMED: the c = 11 -> 5 branch (sum mod 11 == 0) is as the spec states it; no published vector
    covers it (rules-and-identifiers.md §3.1, open question 5). Serial 00000000 has sum 0."""
    assert s10_check_digit("00000000") == 5
    assert s10_valid("EA000000005CN")


def test_s10_reserved_service_indicators_and_bad_serials():
    for first in "JKSTW":
        number = make_s10(first + "A", "12345678")
        assert not s10_valid(number)
        assert classify(number) == PostalItem(number, False, "reserved_service")
    with pytest.raises(ValueError):
        s10_check_digit("1234567")
    with pytest.raises(ValueError):
        s10_check_digit("1234567a")


# ---------------------------------------------------------------- §3.2 resident ID numbers

@pytest.mark.parametrize("body, check, birth, sex", [
    ("11010519491231002", "X", dt.date(1949, 12, 31), "F"),
    ("44052418800101001", "4", dt.date(1880, 1, 1), "M"),
    ("11010119900307001", "1", dt.date(1990, 3, 7), "M"),
    ("32010619860812317", "8", dt.date(1986, 8, 12), "M"),
])
def test_resident_id_vectors(body, check, birth, sex):
    assert resident_id_check_char(body) == check
    assert parse_resident_id(body + check, today=TODAY) == (body + check, birth, sex)
    read = classify(body + check, today=TODAY)
    assert read == ResidentIdNumber(True, None, "*" * 14 + body[-3:] + check)


def test_resident_id_negative_vector_and_lowercase_x():
    with pytest.raises(InvalidIdNumber) as err:
        parse_resident_id("11010119900101123X", today=TODAY)
    assert err.value.reason == "check"
    assert "11010119900101123X" not in str(err.value)
    assert classify("11010119900101123X", today=TODAY) == ResidentIdNumber(False, "check", "**************123X")
    assert parse_resident_id("11010519491231002x", today=TODAY)[0] == "11010519491231002X"
    assert classify("11010519491231002x", today=TODAY).valid


def test_resident_id_birth_date_rules():
    future = "110101" + "20300101" + "001"
    number = future + resident_id_check_char(future)
    with pytest.raises(InvalidIdNumber) as err:
        parse_resident_id(number, today=TODAY)
    assert err.value.reason == "birth_date"
    not_a_date = "110101" + "19900230" + "001"
    with pytest.raises(InvalidIdNumber):
        parse_resident_id(not_a_date + resident_id_check_char(not_a_date), today=TODAY)
    assert age_on(dt.date(1990, 3, 7), dt.date(2026, 3, 6)) == 35
    assert age_on(dt.date(1990, 3, 7), dt.date(2026, 3, 7)) == 36


def test_weighted_check_agrees_with_the_iso_7064_recursion():
    rng = random.Random(7)
    for _ in range(20_000):
        body = "".join(rng.choice("0123456789") for _ in range(17))
        p = 0
        for d in body:
            p = ((p + int(d)) * 2) % 11
        r = (12 - p) % 11
        assert resident_id_check_char(body) == ("X" if r == 10 else str(r))


# ---------------------------------------------------------------- §3.3 payment codes

@pytest.mark.parametrize("code, channel", [
    ("134567890123456789", "wechat"),
    ("135112298638468293", "wechat"),
    ("120061098828009406", "wechat"),
    ("289431869362714645", "alipay"),
    ("28763443825664394", "alipay"),
    ("2512345678901234", "alipay"),
    ("6212345678901234567", "unionpay"),
    ("0112345678901234567", "ecny"),
    ("1912345678901234567", None),
])
def test_worked_payment_classification_table(code, channel):
    read = classify(code, today=TODAY)
    if channel is None:
        assert not isinstance(read, PaymentCode)
        assert read == Unknown("number", 19)
    else:
        assert isinstance(read, PaymentCode)
        assert (read.channel, read.last4) == (channel, code[-4:])
        assert read.code == code


def test_payment_rule_confidence_follows_the_spec_tags():
    assert classify("134567890123456789").confidence == "verified"
    assert classify("0112345678901234567").confidence == "unverified"
    assert "unverified" in explain(classify("0112345678901234567"))


def test_payment_rules_are_configurable_per_acquirer():
    no_ecny = PaymentCodeRules(ecny=None)
    assert not isinstance(classify("0112345678901234567", rules=no_ecny), PaymentCode)
    other_ecny = PaymentCodeRules(ecny=ChannelRule("ecny", ("02",), 20, 20, "verified"))
    read = classify("02123456789012345678", rules=other_ecny)
    assert isinstance(read, PaymentCode) and (read.channel, read.confidence) == ("ecny", "verified")
    no_wechat = PaymentCodeRules(wechat=None)
    assert isinstance(classify("134567890123456789", rules=no_wechat), CarrierWaybill)


@pytest.mark.parametrize("code, channel", [
    ("13456789012345678", None),  # WeChat prefix, 17 digits
    ("1345678901234567890", None),  # WeChat prefix, 19 digits
    ("1645678901234567", None),  # prefix 16 is nobody's
    ("2412345678901234", None),  # 24 is below Alipay's 25-30
    ("251234567890123", None),  # Alipay prefix, 15 digits
    ("301234567890123456789012", "alipay"),  # 24 digits: the longest Alipay code
    ("3012345678901234567890123", None),  # 25 digits
    ("621234567890123456", None),  # UnionPay prefix, 18 digits
])
def test_only_documented_payment_forms_are_payment_codes(code, channel):
    read = classify(code, today=TODAY)
    assert (read.channel if isinstance(read, PaymentCode) else None) == channel


# ---------------------------------------------------------------- ambiguities decided

def test_a_valid_id_number_beats_a_wechat_payment_code():
    # region 11 (Beijing) makes a valid ID number that also fits WeChat's prefix 10-15 and 18 digits
    assert classify("110101199003070011", today=TODAY) == ResidentIdNumber(True, None, "**************0011")


def test_a_wechat_code_with_a_wrong_id_check_character_stays_a_payment_code():
    read = classify("110101199003070012", today=TODAY)
    assert isinstance(read, PaymentCode) and read.channel == "wechat"


def test_an_id_like_number_outside_payment_prefixes_is_a_mistyped_id_not_a_waybill():
    assert classify("440524188001010015", today=TODAY) == ResidentIdNumber(False, "check", "**************0015")
    # no region code: an 18-digit waybill of unknown carrier (YTO's 18-digit form among the candidates)
    read = classify("990524188001010015", today=TODAY)
    assert isinstance(read, CarrierWaybill) and read.carrier is None and "yto" in read.candidates


def test_eight_digits_are_a_pickup_code_unless_the_symbology_says_product():
    assert classify("01234567") == PickupCode("01234567")
    assert classify("0123 4567") == PickupCode("01234567")
    assert classify("01234567", "]E4") == Unknown("product_barcode", 8)
    assert classify("6901234567892", "]E0") == Unknown("product_barcode", 13)
    assert classify("6901234567892", "EAN13") == Unknown("product_barcode", 13)
    assert isinstance(classify("6901234567892", "]Q1"), CarrierWaybill)


# ---------------------------------------------------------------- pickup tokens

def test_the_token_format_is_the_one_custody_issues():
    from lockers.custody import TOKEN_BYTES, TOKEN_PREFIX

    assert PICKUP_TOKEN_PREFIX == TOKEN_PREFIX
    assert len(base64.b32encode(bytes(TOKEN_BYTES)).decode().rstrip("=")) == PICKUP_TOKEN_LENGTH


@pytest.mark.parametrize("text, from_link", [
    (TOKEN, False), (TOKEN.lower(), False), (f"  {TOKEN}\n", False),
    (f"https://post.example.cn/p/{TOKEN}", True), (f"取件码 12345678，或在柜机扫码：{TOKEN} 。", True),
])
def test_pickup_tokens_bare_or_in_a_link(text, from_link):
    assert classify(text) == PickupToken(TOKEN, from_link)


@pytest.mark.parametrize("text, reason", [
    (f"{TOKEN} {TOKEN}", "several_tokens"),
    (TOKEN + "A", "unrecognised"),
    ("https://post.example.cn/p/PK1-SHORT", "link"),
    ("www.example.cn", "link"),
    ("", "empty"),
    (" \t\r\n", "empty"),
    ("取件码", "unrecognised"),
    ("ＳＦ１２３４５６７８９０１２３", "unrecognised"),  # full-width: not what a scanner sends
    ("١٢٣٤٥٦٧٨", "unrecognised"),  # non-ASCII digits are not digits here
    ("AB", "unrecognised"),
    ("1234567", "number"),
    ("X" * (MAX_TEXT + 1), "too_long"),
])
def test_unknown_reads_say_why(text, reason):
    read = classify(text)
    assert read == Unknown(reason, len(text))
    assert isinstance(explain(read), str) and explain(read)


def test_not_text_is_unknown():
    assert classify(None) == Unknown("not_text", 0)  # type: ignore[arg-type]
    assert classify(b"12345678") == Unknown("not_text", 0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- carriers

@pytest.mark.parametrize("number, carrier", [
    ("SF1385628716739", "sf"),
    ("SF0218947552508", "sf"),
    ("sf1385628716739", "sf"),
    ("JDX024407261700", "jd"),
    ("JDVA11408814483", "jd"),
    ("YT8962646785389", "yto"),
    ("YT7460266600081", "yto"),
    ("JT5261988016578", "jt"),
    ("JT0006968326954", "jt"),
    ("STO1234567890", "sto"),
    ("LP00123456789012", "cainiao"),
    ("DPK202252612836", "deppon"),
])
def test_carriers_with_a_published_prefix(number, carrier):
    read = classify(number)
    assert read == CarrierWaybill(number.upper(), carrier)
    assert CARRIERS[carrier].name in explain(read)


@pytest.mark.parametrize("number, candidates", [
    ("73610555582883", ("zto",)),
    ("773277027280336", ("sto",)),
    ("463431409940372", ("yunda",)),
    ("1207119765021", ("chinapost",)),
    ("621123456789012", ("cainiao",)),
    ("123456789012", ("sf",)),
    ("4312345678901234", ("sto",)),
    ("5685685685685", ("yunda",)),
    ("2234567890", ()),
])
def test_numeric_waybills_never_name_a_carrier(number, candidates):
    read = classify(number)
    assert read == CarrierWaybill(number, None, candidates)
    assert "unknown carrier" in explain(read)


@pytest.mark.parametrize("number", [
    "YT1234567890123456",  # YT + 16 digits: YunExpress, not YTO
    "JT123456789012",  # JT + 12: no example found, not taken
    "SF12345",  # too short for any carrier
    "AB1234567890",
])
def test_letter_numbers_outside_the_published_patterns_have_no_carrier(number):
    read = classify(number)
    assert not (isinstance(read, CarrierWaybill) and read.carrier is not None)


# ---------------------------------------------------------------- masks

def digits(n, prefix=""):
    return st.integers(0, 10 ** n - 1).map(lambda i: f"{prefix}{i:0{n}d}")


B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SECRETS = st.one_of(
    digits(8).map(lambda c: (c, PickupCode)),
    st.integers(0, 2 ** 130 - 1).map(lambda i: "PK1-" + "".join(B32[(i >> (5 * k)) & 31] for k in range(26))).map(
        lambda t: (t, PickupToken)),
    st.tuples(st.sampled_from("012345"), digits(16)).map(lambda p: ("1" + p[0] + p[1], None)),
    st.tuples(st.sampled_from(["25", "26", "27", "28", "29", "30"]), st.integers(14, 22)).flatmap(
        lambda p: digits(p[1], p[0])).map(lambda c: (c, None)),
    digits(17, "62").map(lambda c: (c, PaymentCode)),
    st.builds(lambda y, m, d, s, r: f"{r}0101{y:04d}{m:02d}{d:02d}{s:03d}", st.integers(1900, 2025),
              st.integers(1, 12), st.integers(1, 28), st.integers(0, 999),
              st.sampled_from(["11", "32", "44", "65"])).map(
        lambda b: (b + resident_id_check_char(b), ResidentIdNumber)),
)


@settings(max_examples=2_000, suppress_health_check=[HealthCheck.too_slow])
@given(SECRETS)
def test_no_shown_form_holds_the_whole_secret(case):
    secret, kind = case
    read = classify(secret, today=TODAY)
    if kind is not None:
        assert isinstance(read, kind)
    shown = [repr(read), str(read), json.dumps(read.to_dict(), ensure_ascii=False), explain(read), read.masked]
    for text in shown:
        assert secret not in text
        assert secret[:-4] not in text  # not even all but the tail


def test_masks_keep_only_a_short_tail():
    assert classify("12345678").masked == "******78"
    assert classify(TOKEN).masked == "PK1-…WXYZ"
    assert classify("134567890123456789").masked == "**************6789"
    assert classify("SF1385628716739").masked == "SF*********6739"
    assert classify("73610555582883").masked == "**********2883"
    assert json.loads(json.dumps(classify("73610555582883").to_dict())) == {
        "kind": "waybill", "masked": "**********2883", "carrier": None, "candidates": ["zto"], "length": 14}


# ---------------------------------------------------------------- T-B1 fuzzing

def _check(text, symbology=None):
    # CPU time of this thread with the collector paused: what classify itself costs, not how busy a
    # shared CI machine is
    gc.disable()
    try:
        start = time.thread_time()
        read = classify(text, symbology, today=TODAY)
        elapsed = time.thread_time() - start
    finally:
        gc.enable()
    assert isinstance(read, READ_TYPES)
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms for {len(text)} characters"
    json.dumps(read.to_dict())
    assert explain(read)
    return read


PIECES = ["PK1-", "SF", "JD", "YT", "JT", "STO", "LP", "CN", "DPK", "X", "x", "EA", "http://", "/p/", " ", "\t", "-",
          "1", "0", "62", "01", "13", "28", "7", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "2", "\u0660", "："]


def near_miss(seed):
    """A text glued from identifier pieces and digit runs: the forms classify decides between."""
    rng = random.Random(seed)
    parts = []
    for _ in range(rng.randrange(1, 9)):
        if rng.random() < 0.5:
            parts.append(rng.choice(PIECES))
        else:
            parts.append("".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 21))))
    return "".join(parts)


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=300), st.integers(0, 2**32).map(near_miss)),
       st.one_of(st.none(), st.sampled_from(["]Q1", "]E0", "]C0"]), st.text(max_size=4)))
def test_fuzz_classify_never_raises_and_is_fast(text, symbology):
    _check(text, symbology)


def test_worst_case_inputs_stay_fast():
    for text in ["1" * MAX_TEXT, "PK1-" * (MAX_TEXT // 4), ("A" * 30 + " ") * (MAX_TEXT // 31), "PK1-A" * 800,
                 "\u0660" * MAX_TEXT, "ß" * MAX_TEXT]:
        _check(text)


def test_an_id_number_with_a_wrong_check_character_from_regions_11_to_15_is_flagged_in_the_explanation():
    read = classify("110105194912310021")  # 11010519491231002X with a wrong last character
    assert isinstance(read, PaymentCode) and read.channel == "wechat"  # route by prefix and length (§3.3)
    assert "shaped like a resident ID number" in explain(read) and "110105194912310021" not in explain(read)
    assert "shaped like" not in explain(classify("134567890123456789"))  # no real birth date in it
