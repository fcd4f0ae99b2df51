import asyncio
import time

import cv2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.camera import BACKENDS as CAMERA_BACKENDS
from hal.camera import CameraHealth, OpenCVCamera, camera
from hal.camera_scanner import CameraScanner, Presence
from hal.errors import DeviceIOError, DeviceOpenError, DeviceUnavailable
from hal.scanner import BACKENDS, ScannedCode, code_scanner
from simulators.camera import SimulatedCamera, code128_frame, idle_frame, qr_frame

TOKEN = "PK1-ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
WAYBILL = "SF1234567890123"


@pytest.fixture(scope="module")
def frames():
    return {"idle": idle_frame(seed=2), "qr": qr_frame(TOKEN, module=4, seed=1),
            "tilted": code128_frame(WAYBILL, angle=30, noise=10, seed=2), "chinese": qr_frame("取件码 8848", seed=3)}


async def codes_until_frames_stop(scanner):
    """Every code read until the played-once frames run out (the stall rule then ends reading)."""
    codes = []
    with pytest.raises(DeviceIOError):
        while True:
            code = await scanner.read(timeout=2)
            if code is not None:
                codes.append(code)
    return codes


# the presence rule ------------------------------------------------------------------------------


def test_a_code_is_new_once_while_it_stays_in_view():
    presence = Presence(absent_frames=3)
    assert presence.update(["A"]) == ["A"]
    for _ in range(50):
        assert presence.update(["A"]) == []
    assert presence.present == {"A"}


def test_fewer_misses_than_absent_frames_are_a_decoder_slip_not_a_new_scan():
    presence = Presence(absent_frames=3)
    frames = [["A"], [], [], ["A"], [], ["A"], ["A"]]
    assert [presence.update(f) for f in frames] == [["A"], [], [], [], [], [], []]


def test_absent_for_n_frames_then_back_is_a_new_scan():
    presence = Presence(absent_frames=3)
    frames = [["A"], [], [], [], ["A"], ["A", "B"], ["B"], [], [], ["A"]]
    assert [presence.update(f) for f in frames] == [["A"], [], [], [], ["A"], ["B"], [], [], [], ["A"]]


def test_absent_frames_must_be_positive():
    with pytest.raises(ValueError):
        Presence(absent_frames=0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.lists(st.sets(st.sampled_from("ABC")), max_size=40))
def test_a_code_is_reported_exactly_when_it_was_not_seen_in_the_n_frames_before(n, frames):
    presence = Presence(absent_frames=n)
    last_seen = {}
    for i, seen in enumerate(frames):
        reported = presence.update(sorted(seen))
        expected = [k for k in sorted(seen) if k not in last_seen or i - last_seen[k] - 1 >= n]
        assert reported == expected
        for k in seen:
            last_seen[k] = i


# the scanner over the simulated camera --------------------------------------------------------------


async def test_a_code_held_still_is_read_once(frames):
    cam = SimulatedCamera(size=(640, 480))
    cam.show(frames["qr"])
    async with code_scanner("camera", camera=cam, clock=lambda: 1700000000.0) as scanner:
        assert await scanner.read(timeout=2) == ScannedCode(TOKEN, "]Q1", 1700000000.0)
        before = scanner.frames_decoded
        assert await scanner.read(timeout=0.3) is None
        assert scanner.frames_decoded - before >= 5  # it kept looking, and kept quiet


async def test_a_code_taken_away_and_shown_again_is_read_again(frames):
    cam = SimulatedCamera(size=(640, 480))
    cam.show(frames["tilted"])
    async with CameraScanner(cam, absent_frames=3) as scanner:
        first = await scanner.read(timeout=2)
        assert (first.text, first.symbology) == (WAYBILL, "]C0")
        cam.take_away()
        start = scanner.frames_decoded
        while scanner.frames_decoded - start < 4:
            assert await scanner.read(timeout=0.05) is None
        cam.show(frames["tilted"])
        assert (await scanner.read(timeout=2)).text == WAYBILL


async def test_hysteresis_over_a_played_sequence(frames):
    qr, idle = frames["qr"], frames["idle"]
    sequence = [idle, qr, qr, idle, idle, qr, qr, idle, idle, idle, qr, idle]  # N = 3: slip, then gone
    cam = SimulatedCamera(sequence, loop=False, stall_timeout=0.2)
    async with CameraScanner(cam, absent_frames=3) as scanner:
        codes = await codes_until_frames_stop(scanner)
        assert scanner.frames_decoded == len(sequence)
    assert [c.text for c in codes] == [TOKEN, TOKEN]


async def test_two_codes_in_view_are_two_scans(frames):
    cam = SimulatedCamera([frames["qr"], frames["chinese"], frames["qr"], frames["chinese"]], loop=False,
                          stall_timeout=0.2)
    async with CameraScanner(cam, absent_frames=2) as scanner:
        codes = await codes_until_frames_stop(scanner)
    assert [c.text for c in codes] == [TOKEN, "取件码 8848"]


async def test_the_simulator_plays_image_files(tmp_path, frames):
    cv2.imwrite(str(tmp_path / "waybill.png"), frames["tilted"])
    cv2.imwrite(str(tmp_path / "notice.jpg"), frames["chinese"], [cv2.IMWRITE_JPEG_QUALITY, 92])
    cam = SimulatedCamera([tmp_path / "waybill.png", str(tmp_path / "notice.jpg")], loop=False, stall_timeout=0.2)
    async with CameraScanner(cam) as scanner:
        codes = await codes_until_frames_stop(scanner)
    assert [(c.text, c.symbology) for c in codes] == [(WAYBILL, "]C0"), ("取件码 8848", "]Q1")]


async def test_an_image_file_that_cannot_be_read_fails_the_open(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    cam = SimulatedCamera([tmp_path / "broken.png"])
    with pytest.raises(DeviceOpenError):
        await cam.open()
    assert not cam.is_open


async def test_frames_are_paced_at_the_frame_rate(frames):
    async with SimulatedCamera([frames["idle"]], fps=50) as cam:
        t0 = time.monotonic()
        for _ in range(11):
            await cam.frame(timeout=1)
        assert time.monotonic() - t0 >= 0.18  # 10 frame periods of 20 ms after the first


async def test_only_the_configured_formats_are_scanned():
    waybill = code128_frame(WAYBILL, seed=3)
    cam = SimulatedCamera([waybill], loop=False, stall_timeout=0.2)
    async with CameraScanner(cam, formats=["QRCode"]) as scanner:
        assert await codes_until_frames_stop(scanner) == []


# health and failures ------------------------------------------------------------------------------


async def test_health_while_frames_arrive_and_when_they_stop(frames):
    cam = SimulatedCamera([frames["idle"]], stall_timeout=0.2)
    scanner = CameraScanner(cam)
    assert scanner.health() == CameraHealth(False, 0, None, "closed")
    async with scanner:
        assert scanner.health().reason == "no frame yet"
        assert await scanner.read(timeout=0.1) is None
        health = scanner.health()
        assert health.ok and health.frames >= 2 and health.seconds_since_frame < 0.2
        cam.stop_frames()
        t0 = time.monotonic()
        with pytest.raises(DeviceIOError, match="no frame for"):
            await scanner.read(timeout=5)
        assert time.monotonic() - t0 < 1.0
        health = scanner.health()
        assert not health.ok and health.reason.startswith("no frame for")
        with pytest.raises(DeviceIOError):  # stays failed until closed and opened again
            await scanner.read(timeout=0.1)
    cam.resume_frames()
    async with scanner:
        assert await scanner.read(timeout=0.05) is None
        assert scanner.health().ok


async def test_a_reader_that_pauses_does_not_make_the_camera_look_stalled(frames):
    cam = SimulatedCamera([frames["qr"]], stall_timeout=0.1)
    async with CameraScanner(cam) as scanner:
        assert (await scanner.read(timeout=2)).text == TOKEN
        await asyncio.sleep(0.25)  # the kiosk busy with the code it read
        assert scanner.health().ok
        assert await scanner.read(timeout=0.05) is None


async def test_a_grab_that_fails_is_a_device_io_error(frames):
    cam = SimulatedCamera([frames["idle"]])
    async with CameraScanner(cam) as scanner:
        await scanner.read(timeout=0.05)
        cam.fail_grabs("USB camera disconnected")
        with pytest.raises(DeviceIOError, match="disconnected"):
            await scanner.read(timeout=1)
        health = scanner.health()
        assert (health.ok, health.reason) == (False, "grab failed")


async def test_closing_the_scanner_ends_a_pending_read(frames):
    cam = SimulatedCamera([frames["idle"]])
    scanner = CameraScanner(cam)
    await scanner.open()
    reader = asyncio.create_task(scanner.read(timeout=None))
    await asyncio.sleep(0.1)
    await scanner.close()
    assert await asyncio.wait_for(reader, 2) is None
    assert not cam.is_open


async def test_a_camera_opened_by_someone_else_stays_open(frames):
    cam = SimulatedCamera([frames["idle"]])
    async with cam:
        async with CameraScanner(cam) as scanner:
            await scanner.read(timeout=0.05)
        assert cam.is_open


def test_the_backend_tables():
    assert BACKENDS["camera"] == "hal.camera_scanner:CameraScanner"
    assert CAMERA_BACKENDS == {"opencv": "hal.camera:OpenCVCamera"}
    assert isinstance(camera("opencv", source=0), OpenCVCamera)
    with pytest.raises(DeviceUnavailable):
        camera("webcam-9000")
    scanner = code_scanner("camera", camera=SimulatedCamera(), extra_formats=["EAN13"], absent_frames=4)
    assert scanner.describe()["formats"] == "QRCode,Code128,EAN13"
    assert scanner.describe()["absent_frames"] == "4"


# the OpenCV backend, on an image sequence (no camera on a CI machine) --------------------------------


async def test_opencv_reads_an_image_sequence_until_it_ends(tmp_path, frames):
    for n, name in enumerate(["idle", "qr", "qr", "idle", "tilted"]):
        cv2.imwrite(str(tmp_path / f"frame_{n:02d}.png"), frames[name])
    scanner = code_scanner("camera", source=str(tmp_path / "frame_%02d.png"), stall_timeout=0.3, absent_frames=2)
    async with scanner:
        codes = await codes_until_frames_stop(scanner)
        assert scanner.health().ok is False
    assert [c.text for c in codes] == [TOKEN, WAYBILL]
    assert scanner.describe()["camera"] == "opencv"


async def test_opencv_cannot_open_what_is_not_there(tmp_path):
    cam = OpenCVCamera(str(tmp_path / "missing_%02d.png"))
    with pytest.raises(DeviceOpenError):
        await cam.open()
    assert not cam.is_open
