import json

import pytest
import typer
from typer.testing import CliRunner

from postkiosk import diag_classify
from postkiosk.diag_classify import app

runner = CliRunner()
WECHAT = "134567890123456789"
ID_NUMBER = "11010519491231002X"
TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def run(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("text, expected", [
    (WECHAT, {"kind": "payment_code", "channel": "wechat", "confidence": "verified", "last4": "6789",
              "length": 18}),
    ("0112345678901234567", {"kind": "payment_code", "channel": "ecny", "confidence": "unverified",
                             "last4": "4567", "length": 19}),
    (ID_NUMBER, {"kind": "resident_id", "valid": True, "reason": None, "masked": "**************002X"}),
    (f"https://post.example.cn/p/{TOKEN}", {"kind": "pickup_token", "masked": "PK1-…WXYZ", "from_link": True}),
    ("12345678", {"kind": "pickup_code", "masked": "******78"}),
    ("EA123456784CN", {"kind": "postal_item", "masked": "EA*******84CN", "valid": False, "reason": "check",
                       "service": "EA", "country": "CN"}),
    ("JT5261988016578", {"kind": "waybill", "masked": "JT*********6578", "carrier": "jt", "candidates": [],
                         "length": 15}),
    ("73610555582883", {"kind": "waybill", "masked": "**********2883", "carrier": None, "candidates": ["zto"],
                        "length": 14}),
    ("hello!", {"kind": "unknown", "reason": "unrecognised", "length": 6}),
])
def test_json_names_the_kind_and_masked_details(text, expected):
    data = json.loads(run(text, "--json"))
    explanation = data.pop("explanation")
    assert data == expected
    assert explanation and text not in explanation


def test_the_symbology_is_taken_into_account():
    assert json.loads(run("6901234567892", "--symbology", "]E0", "--json"))["reason"] == "product_barcode"
    assert json.loads(run("6901234567892", "-s", "]Q1", "--json"))["kind"] == "waybill"


@pytest.mark.parametrize("text, words", [
    (WECHAT, ["payment_code", "wechat", "6789", "WeChat Pay payment code"]),
    ("SF1385628716739", ["waybill", "SF Express", "SF*********6739"]),
    ("73610555582883", ["unknown carrier", "ZTO Express"]),
])
def test_the_table_says_what_and_why_without_the_secret(text, words):
    out = run(text)
    flat = " ".join(out.split())
    for word in words:
        assert word in flat
    assert text not in out


def test_mounted_on_a_group_as_diag_classify():
    group = typer.Typer()
    group.command("other")(lambda: None)
    diag_classify.register(group)
    result = runner.invoke(group, ["classify", ID_NUMBER, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kind"] == "resident_id"
    assert ID_NUMBER not in result.output
