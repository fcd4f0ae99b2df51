"""``postkiosk diag scan image`` through typer's CliRunner on generated images in tmp_path."""

import json

import cv2
import pytest
from typer.testing import CliRunner

from postkiosk.diag_scan import app
from simulators.camera import barcode_frame, code128_frame, qr_frame

ID_NUMBER = "11010519491231002X"
PAYMENT = "134567890123456789"  # 18 digits starting 13: a payment code

runner = CliRunner()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    made = {"tilted": code128_frame("SF1234567890123", angle=30, noise=10, seed=1),
            "notice": qr_frame("取件码 8848", seed=2),
            "id": qr_frame(ID_NUMBER, seed=3),
            "payment": code128_frame(PAYMENT, seed=4),
            "ean": barcode_frame("6901234567892", "EAN13", module=3, seed=5)}
    paths = {}
    for name, frame in made.items():
        paths[name] = folder / f"{name}.png"
        cv2.imwrite(str(paths[name]), frame)
    return paths


def test_the_table_names_text_format_symbology_and_pass(images):
    result = runner.invoke(app, ["image", str(images["tilted"]), str(images["notice"])])
    assert result.exit_code == 0, result.output
    assert "SF1234567890123" in result.output and "取件码 8848" in result.output
    assert "rotated" in result.output and "zxing" in result.output
    assert "]C0 Code 128" in result.output and "]Q1 QR" in result.output


def test_json_gives_one_record_per_file(images):
    result = runner.invoke(app, ["image", str(images["tilted"]), str(images["notice"]), "--json"])
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)
    assert first["size"] == [640, 480]
    assert first["codes"] == [{"text": "SF1234567890123", "masked": False, "length": 15, "format": "Code128",
                               "symbology": "]C0", "symbology_name": "Code 128", "found_by": "rotated",
                               "error": None}]
    assert [c["text"] for c in second["codes"]] == ["取件码 8848"]


@pytest.mark.parametrize("name,secret,shown", [("id", ID_NUMBER, "002X"), ("payment", PAYMENT, "6789")])
@pytest.mark.parametrize("as_json", [False, True])
def test_personal_data_shows_its_last_4_characters_only(images, name, secret, shown, as_json):
    result = runner.invoke(app, ["image", str(images[name])] + (["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    assert secret not in result.output and secret[:14] not in result.output
    assert shown in result.output
    if as_json:
        [code] = json.loads(result.stdout)[0]["codes"]
        assert (code["text"], code["masked"], code["length"]) == ("*" * 14 + shown, True, 18)


def test_formats_restrict_what_is_read(images):
    result = runner.invoke(app, ["image", str(images["ean"]), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["codes"] == []
    result = runner.invoke(app, ["image", str(images["ean"]), "--formats", "QRCode,EAN13", "--json"])
    assert result.exit_code == 0, result.output
    [code] = json.loads(result.stdout)[0]["codes"]
    assert (code["text"], code["format"], code["symbology"]) == ("6901234567892", "EAN13", "]E0")
    result = runner.invoke(app, ["image", str(images["tilted"]), "--formats", "QRCode"])
    assert result.exit_code == 1 and "no code found" in result.output


def test_a_file_that_is_not_an_image(images, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    result = runner.invoke(app, ["image", str(tmp_path / "notes.png"), str(images["notice"]), "--json"])
    assert result.exit_code == 1
    broken, good = json.loads(result.stdout)
    assert broken["error"] == "cannot read this file as an image" and good["codes"]


def test_an_unknown_format_is_a_usage_error(images):
    result = runner.invoke(app, ["image", str(images["notice"]), "--formats", "QRCode,Fancy"])
    assert result.exit_code == 2
    assert "Fancy" in result.output
