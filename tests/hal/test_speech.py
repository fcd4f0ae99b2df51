from __future__ import annotations

import asyncio
import io
import shutil
import stat
import struct
import wave

import pytest

from hal.errors import DeviceIOError, DeviceTimeout, DeviceUnavailable
from hal.speech import EspeakSpeech, checked_wav, speech_engine

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed: scripts/setup.sh installs the Debian package")


def audio_of(data: bytes) -> tuple[float, bytes]:
    """(seconds, PCM frames) as a player would read them."""
    with wave.open(io.BytesIO(data)) as wav:
        frames = wav.readframes(wav.getnframes())
        assert len(frames) == wav.getnframes() * wav.getsampwidth() * wav.getnchannels()
        return wav.getnframes() / wav.getframerate(), frames


def peak(frames: bytes) -> int:
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    return max(abs(s) for s in samples)


def tone_wav(seconds: float = 0.5) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(struct.pack("<h", 1000) * int(8000 * seconds))
    return buf.getvalue()


def fake_engine(tmp_path, body: str) -> str:
    """An executable standing in for espeak-ng: a shell script with ``body``."""
    path = tmp_path / "fake-espeak"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@needs_espeak
@pytest.mark.parametrize("voice, text", [
    ("cmn-latn-pinyin", "柜门已打开，请取件后关门。"),
    ("yue", "櫃門已打開，請取件後關門。"),
    ("en", "Compartment A, 0, 5. Your door is open."),
])
async def test_espeak_renders_audible_wav_with_true_sizes(voice, text):
    wav = await EspeakSpeech().render(text, voice)
    seconds, frames = audio_of(wav)  # the streamed header's placeholder sizes are corrected
    assert 0.5 < seconds < 20
    assert peak(frames) > 1000


@needs_espeak
async def test_rendering_keeps_the_event_loop_free():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await EspeakSpeech(cache_items=0).render("请将身份证放在读卡区，不要移开。" * 4, "cmn-latn-pinyin")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ticks > 3


async def test_missing_engine_is_a_clear_error(tmp_path):
    engine = EspeakSpeech(binary=str(tmp_path / "no-such-espeak-ng"))
    with pytest.raises(DeviceUnavailable, match="install the Debian package espeak-ng"):
        await engine.render("你好", "cmn-latn-pinyin")
    with pytest.raises(DeviceUnavailable, match="not found"):
        await engine.check()


@needs_espeak
async def test_unknown_voice_is_named():
    with pytest.raises(DeviceUnavailable, match="no voice 'xx-nosuch'"):
        await EspeakSpeech().render("hello", "xx-nosuch")


@pytest.mark.parametrize("text, voice", [("", "en"), ("   ", "en"), ("x" * 601, "en"),
                                         ("hello", "-w /tmp/owned.wav"), ("hello", "")])
async def test_bad_arguments_are_refused_before_any_process(tmp_path, text, voice):
    engine = EspeakSpeech(binary=fake_engine(tmp_path, f"touch {tmp_path}/ran"))
    with pytest.raises(ValueError):
        await engine.render(text, voice)
    assert not (tmp_path / "ran").exists()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="speed"):
        EspeakSpeech(speed=20)
    with pytest.raises(ValueError, match="pitch"):
        EspeakSpeech(pitch=120)
    with pytest.raises(DeviceUnavailable, match="unknown speech backend 'piper'"):
        speech_engine("piper")
    assert isinstance(speech_engine("espeak-ng", speed=140), EspeakSpeech)


async def test_an_engine_that_hangs_is_killed(tmp_path):
    engine = EspeakSpeech(binary=fake_engine(tmp_path, "exec sleep 30"), timeout=0.3)
    with pytest.raises(DeviceTimeout, match="0.3 s"):
        await engine.render("你好", "cmn-latn-pinyin")


async def test_an_engine_that_fails_or_returns_no_audio(tmp_path):
    failing = EspeakSpeech(binary=fake_engine(tmp_path, "echo 'segfault in synth' >&2; exit 3"))
    with pytest.raises(DeviceIOError, match="exit status 3"):
        await failing.render("你好", "yue")
    garbage = EspeakSpeech(binary=fake_engine(tmp_path, "echo not a wav"))
    with pytest.raises(DeviceIOError, match="no valid WAV"):
        await garbage.render("你好", "yue")
    with pytest.raises(DeviceIOError, match="no audio"):
        checked_wav(tone_wav(0))


async def test_the_text_goes_in_on_stdin_and_renders_are_cached(tmp_path):
    wav_file = tmp_path / "tone.wav"
    wav_file.write_bytes(tone_wav())
    calls = tmp_path / "calls"
    binary = fake_engine(tmp_path, f'echo "$*" >> {calls}; cat >> {tmp_path}/stdin; cat {wav_file}')
    cache = tmp_path / "var" / "voice"
    engine = EspeakSpeech(binary=binary, speed=140, cache_dir=cache)
    first = await engine.render("柜门 A, 0, 5", "cmn-latn-pinyin")
    again = await engine.render("  柜门   A, 0, 5 ", "cmn-latn-pinyin")  # same words, other spacing
    assert first == again == tone_wav()
    assert calls.read_text().splitlines() == ["-v cmn-latn-pinyin -s 140 -b 1 --stdout"]
    assert (tmp_path / "stdin").read_text(encoding="utf-8") == "柜门 A, 0, 5\n"
    assert len(list(cache.glob("*.wav"))) == 1
    # a restarted service finds it on disk; another voice or speed is another recording
    restarted = EspeakSpeech(binary=binary, speed=140, cache_dir=cache)
    await restarted.render("柜门 A, 0, 5", "cmn-latn-pinyin")
    assert len(calls.read_text().splitlines()) == 1
    await restarted.render("柜门 A, 0, 5", "yue")
    await EspeakSpeech(binary=binary, speed=160, cache_dir=cache).render("柜门 A, 0, 5", "cmn-latn-pinyin")
    assert len(calls.read_text().splitlines()) == 3


async def test_caches_are_bounded(tmp_path):
    wav_file = tmp_path / "tone.wav"
    wav_file.write_bytes(tone_wav(0.1))
    calls = tmp_path / "calls"
    binary = fake_engine(tmp_path, f"echo x >> {calls}; cat > /dev/null; cat {wav_file}")
    engine = EspeakSpeech(binary=binary, cache_items=2, cache_dir=tmp_path / "voice", cache_files=3)
    for n in range(5):
        await engine.render(f"柜门 {n}", "yue")
    assert len(engine._memory) == 2
    assert len(list((tmp_path / "voice").glob("*.wav"))) == 3
    assert not list((tmp_path / "voice").glob("*.part"))
