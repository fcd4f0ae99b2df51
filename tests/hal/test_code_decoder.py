import numpy as np
import pytest
import zxingcpp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hal.code_decoder import PASSES, CodeDecoder, Decoded, to_gray
from simulators.camera import barcode_frame, code128_frame, idle_frame, qr_frame, waybill_number

NOTICE = "PKG:ABC123-取件码 8848"  # the spec's §3.4 test text
RESTRICTED = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.Code128)


@pytest.fixture(scope="module")
def decoder():
    return CodeDecoder()


def bare(frame):
    return [r.text for r in zxingcpp.read_barcodes(frame, formats=RESTRICTED)]


def test_a_qr_code_with_chinese_text(decoder):
    [code] = decoder.decode(qr_frame(NOTICE, module=4, seed=3))
    assert (code.text, code.format, code.symbology, code.found_by) == (NOTICE, "QRCode", "]Q1", "zxing")


def test_an_upright_code128_waybill(decoder):
    [code] = decoder.decode(code128_frame("SF1234567890123", seed=4))
    assert (code.text, code.format, code.symbology, code.found_by) == ("SF1234567890123", "Code128", "]C0", "zxing")


@pytest.mark.parametrize("size,module,angle,seed", [((640, 480), 2.0, 30, 1), ((640, 480), 2.0, -30, 2),
                                                    ((1280, 720), 3.0, 30, 3), ((640, 480), 2.0, 15, 4)])
def test_a_tilted_noisy_waybill_that_no_bare_decoder_reads(decoder, size, module, angle, seed):
    text = waybill_number(seed)
    frame = code128_frame(text, angle=angle, size=size, module=module, noise=12, seed=seed)
    assert text not in bare(frame)  # the frame is as hard as the issue says
    from pyzbar import pyzbar

    assert text.encode() not in [d.data for d in pyzbar.decode(to_gray(frame))]
    [code] = decoder.decode(frame)
    assert (code.text, code.symbology, code.found_by) == (text, "]C0", "rotated")


def test_the_rotated_pass_gives_corners_in_frame_pixels(decoder):
    frame = code128_frame("YT1234567890123", angle=30, noise=8, seed=5, center=(300.0, 250.0))
    [code] = decoder.decode(frame)
    xs, ys = zip(*code.corners)
    # the symbol sits in the label's upper part, the label's centre being (300, 250)
    assert 250 < sum(xs) / 4 < 350 and 180 < sum(ys) / 4 < 260
    assert max(xs) - min(xs) > 200  # the corners span the symbol, not a crop's origin


def test_waybills_at_any_angle(decoder):
    for n, angle in enumerate((45, 60, 90, -75)):
        text = waybill_number(100 + n)
        assert [d.text for d in decoder.decode(code128_frame(text, angle=angle, module=2.0, noise=8,
                                                             seed=100 + n))] == [text]


def test_a_small_qr_code_is_read_enlarged(decoder):
    text = "https://pk.example.cn/p/PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    frame = qr_frame(text, module=1.85, angle=7, seed=6)
    assert text not in bare(frame)
    [code] = decoder.decode(frame)
    assert (code.text, code.found_by) == (text, "enhanced")


def test_a_noisy_qr_code_is_read(decoder):
    texts = [f"https://pk.example.cn/p/PK1-{n:026d}" for n in range(6)]
    frames = [qr_frame(t, module=3.5, noise=22, blur=1.0, lighting=0.5, angle=10 * n, seed=20 + n)
              for n, t in enumerate(texts)]
    assert sum(t in bare(f) for t, f in zip(texts, frames)) < len(texts)  # bare zxing-cpp misses some
    assert [[d.text for d in decoder.decode(f)] for f in frames] == [[t] for t in texts]


def test_the_pyzbar_pass_reports_format_and_symbology(decoder):
    gray = to_gray(qr_frame(NOTICE, module=4, seed=3))
    [code] = decoder._pass_pyzbar(gray, decoder.regions(gray))
    assert (code.text, code.format, code.symbology, code.found_by) == (NOTICE, "QRCode", "]Q1", "pyzbar")


@pytest.mark.parametrize("noise,size", [(3, (640, 480)), (8, (640, 480)), (16, (640, 480)), (6, (1280, 720))])
def test_an_idle_frame_gives_nothing_and_no_fallback_runs(noise, size, monkeypatch):
    decoder = CodeDecoder()
    called = []
    for name in PASSES[1:]:
        monkeypatch.setattr(decoder, f"_pass_{name}", lambda *_, name=name: called.append(name) or [])
    for seed in range(3):
        frame = idle_frame(size=size, noise=noise, seed=seed)
        assert decoder.regions(to_gray(frame)) == []
        assert decoder.decode(frame) == []
    assert called == []


def test_a_code_in_view_does_reach_the_fallbacks(monkeypatch):
    decoder = CodeDecoder()
    called = []
    monkeypatch.setattr(decoder, "_pass_pyzbar", lambda *_: called.append("pyzbar") or [])
    decoder.decode(code128_frame("SF1234567890123", angle=30, noise=10, seed=7))
    assert called == ["pyzbar"]


def test_formats_are_restricted_to_what_the_station_reads():
    frame = barcode_frame("6901234567892", "EAN13", module=3, seed=8)
    assert CodeDecoder().decode(frame) == []  # neither zxing-cpp nor the fallbacks report it
    [code] = CodeDecoder(extra=("EAN13",)).decode(frame)
    assert (code.text, code.format, code.symbology) == ("6901234567892", "EAN13", "]E0")
    tilted = barcode_frame("6901234567892", "EAN13", module=2.5, angle=35, noise=8, seed=9)
    assert CodeDecoder().decode(tilted) == []
    assert [d.text for d in CodeDecoder(extra=("EAN13",)).decode(tilted)] == ["6901234567892"]


def test_only_qr_configured_ignores_waybills():
    assert CodeDecoder(["QRCode"]).decode(code128_frame("SF1234567890123", angle=30, seed=10)) == []


@pytest.mark.parametrize("bad", ["Foo", "All", "AllLinear", "NONE"])
def test_unknown_formats_are_refused(bad):
    with pytest.raises(ValueError):
        CodeDecoder(["QRCode", bad])


def test_a_decoded_repr_hides_the_text():
    code = Decoded("11010519491231002X", "QRCode", "]Q1", "zxing")
    assert "1101" not in repr(code) and "18 chars" in repr(code)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.uint8, st.tuples(st.integers(0, 80), st.integers(0, 80)) | st.tuples(
    st.integers(0, 80), st.integers(0, 80), st.sampled_from([1, 3, 4]))))
def test_decode_never_raises_on_any_uint8_frame(frame):
    found = CodeDecoder().decode(frame)
    assert isinstance(found, list)


@pytest.mark.parametrize("frame", [np.zeros((10, 10), np.float32), np.zeros((4, 4, 2), np.uint8),
                                   np.zeros(5, np.uint8), [[0, 1]]])
def test_what_is_not_a_frame_is_a_value_error(frame):
    with pytest.raises(ValueError):
        CodeDecoder().decode(frame)
