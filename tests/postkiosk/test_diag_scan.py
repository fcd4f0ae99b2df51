"""``postkiosk diag scan --image FILE`` (and ``diag scan image FILE...``) through typer's CliRunner on
generated images in tmp_path, as mounted in ``postkiosk.cli:app``."""

import json

import cv2
import pytest
from typer.testing import CliRunner

from postkiosk.cli import app
from simulators.camera import barcode_frame, code128_frame, qr_frame

ID_NUMBER = "11010519491231002X"
PAYMENT = "134567890123456789"  # 18 digits starting 13: a payment code
TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PICKUP_CODE = "48151623"

runner = CliRunner()


def scan(*args):
    """``postkiosk diag scan ARGS``; a path stands for ``--image PATH``."""
    argv = []
    for arg in args:
        argv += ["--image", str(arg)] if not isinstance(arg, str) else [arg]
    return runner.invoke(app, ["diag", "scan", *argv])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    made = {"tilted": code128_frame("SF1234567890123", angle=30, noise=10, seed=1),
            "notice": qr_frame("取件码 8848", seed=2),
            "id": qr_frame(ID_NUMBER, seed=3),
            "payment": code128_frame(PAYMENT, seed=4),
            "ean": barcode_frame("6901234567892", "EAN13", module=3, seed=5),
            "token": qr_frame(f"https://post.example/p/{TOKEN}", seed=6),
            "pickup": code128_frame(PICKUP_CODE, seed=7)}
    paths = {}
    for name, frame in made.items():
        paths[name] = folder / f"{name}.png"
        cv2.imwrite(str(paths[name]), frame)
    return paths


def test_the_table_names_text_kind_format_symbology_and_pass(images):
    result = scan(images["tilted"], images["notice"])
    assert result.exit_code == 0, result.output
    assert "SF1234567890123" in result.output and "取件码 8848" in result.output
    assert "waybill" in result.output and "unknown" in result.output
    assert "rotated" in result.output and "zxing" in result.output
    assert "]C0 Code 128" in result.output and "]Q1 QR" in result.output


def test_json_gives_one_record_per_file(images):
    result = scan(images["tilted"], images["notice"], "--json")
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)
    assert first["size"] == [640, 480]
    assert first["codes"] == [{"text": "SF1234567890123", "masked": False, "kind": "waybill", "length": 15,
                               "format": "Code128", "symbology": "]C0", "symbology_name": "Code 128",
                               "found_by": "rotated", "error": None}]
    assert [(c["text"], c["kind"]) for c in second["codes"]] == [("取件码 8848", "unknown")]


def test_the_image_command_form_still_works_and_takes_the_group_options(images):
    result = runner.invoke(app, ["diag", "scan", "image", str(images["tilted"]), str(images["notice"]), "--json"])
    assert result.exit_code == 0, result.output
    assert [rec["codes"][0]["text"] for rec in json.loads(result.stdout)] == ["SF1234567890123", "取件码 8848"]
    result = runner.invoke(app, ["diag", "scan", "--json", "--formats", "QRCode", "image", str(images["notice"])])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["codes"][0]["format"] == "QRCode"
    result = runner.invoke(app, ["diag", "scan", "--formats", "QRCode", "image", str(images["notice"]),
                                 "--formats", "Code128"])
    assert result.exit_code == 2 and "--formats given twice with different values" in result.output
    result = runner.invoke(app, ["diag", "scan", "--image", str(images["tilted"]), "image", str(images["notice"])])
    assert result.exit_code == 2 and "either with --image or after 'image'" in result.output


def test_help_and_a_missing_image(images):
    result = runner.invoke(app, ["diag", "scan", "--help"])
    assert result.exit_code == 0 and "--image" in result.output
    result = scan("--json")
    assert result.exit_code == 2 and "give an image" in json.loads(result.stdout)["error"]


@pytest.mark.parametrize("name,secret,masked,kind", [
    ("id", ID_NUMBER, "*" * 14 + "002X", "resident_id"),
    ("payment", PAYMENT, "*" * 14 + "6789", "payment_code"),
    ("token", TOKEN, "PK1-…WXYZ", "pickup_token"),
    ("pickup", PICKUP_CODE, "******23", "pickup_code"),
])
@pytest.mark.parametrize("as_json", [False, True])
def test_secrets_are_masked_as_the_kiosk_masks_them(images, name, secret, masked, kind, as_json):
    result = scan(images[name], *(["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    assert secret not in result.output and secret[:6] not in result.output and secret[-6:] not in result.output
    assert masked in result.output and kind in result.output
    if as_json:
        [code] = json.loads(result.stdout)[0]["codes"]
        assert (code["text"], code["masked"], code["kind"]) == (masked, True, kind)


def test_formats_restrict_what_is_read(images):
    result = scan(images["ean"], "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["codes"] == []
    result = scan(images["ean"], "--formats", "QRCode,EAN13", "--json")
    assert result.exit_code == 0, result.output
    [code] = json.loads(result.stdout)[0]["codes"]
    assert (code["text"], code["format"], code["symbology"], code["kind"]) == ("6901234567892", "EAN13", "]E0",
                                                                                "unknown")
    result = scan(images["tilted"], "--formats", "QRCode")
    assert result.exit_code == 1 and "no code found" in result.output


def test_a_file_that_is_not_an_image(images, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    result = scan(tmp_path / "notes.png", images["notice"], "--json")
    assert result.exit_code == 1
    broken, good = json.loads(result.stdout)
    assert broken["error"] == "cannot read this file as an image" and good["codes"]


def test_an_unknown_format_is_a_usage_error(images):
    result = scan(images["notice"], "--formats", "QRCode,Fancy")
    assert result.exit_code == 2
    assert "Fancy" in result.output
