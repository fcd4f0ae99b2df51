from __future__ import annotations

import asyncio
import io
import re
import shutil
import struct
import subprocess
import wave

import pytest
from fastapi import FastAPI

from hal.speech import EspeakSpeech
from kiosk import i18n
from kiosk.terminal import Screen
from kiosk.voice import (PROMPTS, PromptContext, UnknownPrompt, add_voice_routes, prompt_text, screen_prompt,
                         spell_digits, voice_for)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed: scripts/setup.sh installs the Debian package")
#: the three ways the kiosk speaks: Mandarin, Cantonese (Traditional Chinese), English
LANGUAGES = ["zh_Hans_CN", "zh_Hant_HK", "en"]
CONTEXT = PromptContext(compartment="A05", price_fen=1250, message="这个码不是本柜的取件码。")
#: screens that show the compartment's number
WITH_DOOR = {k for k in PROMPTS if k.startswith(("door/", "result/deposit_cancelled"))} | {
    f"result/{k}" for k in ("deposit_stored", "not_taken", "refused", "returned", "retrieve_not_taken",
                            "door_not_opened", "posted", "dropoff_cancelled", "dispatched")}


@pytest.fixture
def language():
    tokens = []

    def use(locale):
        tokens.append(i18n.set_language(locale))

    yield use
    for token in reversed(tokens):
        i18n._current.reset(token)


def audio_of(data: bytes) -> tuple[float, int]:
    """(seconds, loudest sample) as a player would read the WAV."""
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        samples = struct.unpack(f"<{len(frames) // 2}h", frames)
        assert len(samples) == wav.getnframes() * wav.getnchannels()  # the header tells the true length
        return len(samples) / wav.getnchannels() / wav.getframerate(), max(map(abs, samples), default=0)


@pytest.mark.parametrize("code, spoken", [
    ("A05", "A, 0, 5"), ("a05", "A, 0, 5"), ("B-12", "B, 1, 2"), ("1234 5678", "1, 2, 3, 4, 5, 6, 7, 8"),
    ("KK123456789CN", "K, K, 1, 2, 3, 4, 5, 6, 7, 8, 9, C, N"), ("", ""), ("７", ""),
])
def test_codes_are_spelled_one_character_at_a_time(code, spoken):
    assert spell_digits(code) == spoken


def test_each_language_has_its_voice():
    assert voice_for("zh_Hans_CN") == "cmn-latn-pinyin"
    assert voice_for("zh_Hant_TW") == voice_for("zh_Hant_HK") == voice_for("zh_Hant_MO") == "yue"
    assert voice_for("en") == voice_for("fr") == "en"
    assert voice_for("zh_Hans_CN", {"zh_Hans_CN": "yue"}) == "yue"  # a Cantonese-speaking station


@needs_espeak
def test_the_mandarin_voice_says_characters_in_mandarin():
    # espeak-ng 1.51's plain "cmn" hands pinyin to the English voice ("(en)" in its phonemes)
    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", voice_for("zh_Hans_CN"), "柜门已打开"],
                         capture_output=True, text=True, check=True).stdout
    assert "(en)" not in out and out.count("_|") >= 4


def test_every_screen_and_step_has_a_prompt():
    pages = {"home", "pickup", "courier-login", "retrieve", "help", "catalogue", "maintenance"}
    doors = {f"door/{flow}" for flow in ("pickup", "deposit", "posting", "collect", "retrieve")}
    results = {f"result/{key}" for key in ("deposit_stored", "deposit_cancelled", "collected", "not_taken",
                                           "refused", "returned", "retrieve_not_taken", "door_not_opened",
                                           "posted", "dropoff_cancelled", "posting_refused", "dispatched",
                                           "scan_refused", "scan_not_pickup")}
    posting = {f"post/{step}" for step in ("notice", "card", "recipient", "item", "weigh", "price", "printing",
                                           "dropoff")}
    deposit = {"deposit/1", "deposit/2", "deposit/3"}
    assert pages | doors | results | posting | deposit <= PROMPTS.keys()
    from kiosk.terminal import RESULTS
    assert {f"result/{key}" for key, _tone in RESULTS.values()} <= PROMPTS.keys()
    with pytest.raises(UnknownPrompt):
        prompt_text("technician")


@pytest.mark.parametrize("locale", LANGUAGES)
def test_door_numbers_are_spoken_digit_by_digit(language, locale):
    language(locale)
    speaks_door = {k for k in PROMPTS
                   if prompt_text(k, PromptContext(compartment="A05")) != prompt_text(k, PromptContext(compartment="Z9"))}
    assert speaks_door == WITH_DOOR
    for key in WITH_DOOR:
        text = prompt_text(key, CONTEXT)
        assert "A, 0, 5" in text and "A05" not in text, (key, text)


@pytest.mark.parametrize("locale", ["zh_Hans_CN", "zh_Hant_HK"])
def test_chinese_prompts_are_translated(language, locale):
    """An untranslated prompt would be English read by a Chinese voice."""
    language(locale)
    english = {}
    for key in PROMPTS:
        text = prompt_text(key, CONTEXT).replace("A, 0, 5", "")
        if not re.search(r"[\u4e00-\u9fff]", text) or re.search(r"[A-Za-z]{4,}", text):
            english[key] = text
    assert not english, "untranslated prompts (add their msgids to messages.po):\n" + "\n".join(
        f"{k}: {v}" for k, v in english.items())


@needs_espeak
@pytest.mark.parametrize("locale", LANGUAGES)
async def test_every_prompt_renders_to_audible_wav(locale):
    token = i18n.set_language(locale)
    try:
        texts = {key: prompt_text(key, CONTEXT) for key in PROMPTS}
    finally:
        i18n._current.reset(token)
    engine = EspeakSpeech(cache_items=0, concurrency=4)
    voice = voice_for(locale)
    keys = list(texts)
    wavs = await asyncio.gather(*(engine.render(texts[key], voice) for key in keys))
    for key, wav in zip(keys, wavs, strict=True):
        seconds, loudest = audio_of(wav)
        assert seconds > 0.2, (key, seconds)
        assert loudest > 500, (key, loudest)


def test_live_screens_choose_their_prompt():
    door = Screen(name="door", flow="pickup", compartment="A05")
    assert screen_prompt(door) == ("door/pickup", PromptContext(compartment="A05"))
    assert screen_prompt(Screen(name="door", flow="pickup", refusing=True, compartment="A05"))[0] == \
        "door/pickup_refusing"
    assert screen_prompt(Screen(name="door", flow="collect", compartment="B12"))[0] == "door/collect"
    cancelled = Screen(name="result", result="deposit_cancelled", compartment="A05",
                       detail={"reason": "closed_empty"})
    assert screen_prompt(cancelled)[0] == "result/deposit_cancelled/closed_empty"
    by_courier = Screen(name="result", result="deposit_cancelled", detail={"reason": "cancelled_by_courier"})
    assert screen_prompt(by_courier)[0] == "result/deposit_cancelled"
    expired_id = Screen(name="result", result="posting_refused", detail={"reason": "id_expired"})
    assert screen_prompt(expired_id)[0] == "result/posting_refused/id"
    scan = Screen(name="result", result="scan_refused", detail={"messages": {"en": "Not a code of ours."},
                                                               "message": "不是本柜的码。"})
    token = i18n.set_language("en")
    try:
        key, ctx = screen_prompt(scan)
        assert prompt_text(key, ctx) == "Not a code of ours."
    finally:
        i18n._current.reset(token)


async def voice_client(station):
    if not any(getattr(r, "path", None) == "/api/voice" for r in station.app.routes):
        add_voice_routes(station.app, station.kiosk)
    return station.client


@needs_espeak
async def test_the_kiosk_serves_a_screen_prompt_as_wav(kiosk_station):
    client = await voice_client(kiosk_station)
    r = await client.get("/api/voice", params={"prompt": "pickup"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["x-prompt"] == "pickup"
    seconds, loudest = audio_of(r.content)
    assert seconds > 0.5 and loudest > 500


async def test_the_kiosk_speaks_the_live_door_in_the_page_language(kiosk_station):
    client = await voice_client(kiosk_station)
    kiosk_station.kiosk.terminal.screen = Screen(name="door", flow="deposit", compartment="A05", version=7)
    r = await client.get("/api/voice/text", params={"prompt": "door"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompt"] == "door/deposit" and body["voice"] == "cmn-latn-pinyin"
    assert "A, 0, 5" in body["text"] and "放入" in body["text"]
    client.cookies.set("pk_lang", "en")
    body = (await client.get("/api/voice/text", params={"prompt": "door"})).json()
    assert body["voice"] == "en"
    assert body["text"] == "Compartment A, 0, 5. Put the parcel in, then close the door."
    # a door page left over after the screen moved on has nothing live to say
    kiosk_station.kiosk.terminal.screen = Screen()
    assert (await client.get("/api/voice/text", params={"prompt": "door"})).status_code == 404


async def test_unknown_or_malformed_prompts_are_refused(kiosk_station):
    client = await voice_client(kiosk_station)
    assert (await client.get("/api/voice", params={"prompt": "technician"})).json()["error"] == "unknown_prompt"
    assert (await client.get("/api/voice", params={"prompt": "Home; rm -rf /"})).status_code == 422
    assert (await client.get("/api/voice")).status_code == 422


async def test_a_missing_engine_answers_503_not_a_crash(kiosk_station, tmp_path):
    app = FastAPI()
    add_voice_routes(app, kiosk_station.kiosk, speech=EspeakSpeech(binary=str(tmp_path / "no-espeak")))
    import httpx
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kiosk") as client:
        r = await client.get("/api/voice", params={"prompt": "home"})
    assert r.status_code == 503
    assert r.json()["error"] == "voice_unavailable"
