"""Voice prompts in the browser (issue 9): a page asks for its prompt when it loads and plays it,
the mute switch stops that until it is switched back, and "Repeat" always speaks."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def test_pages_speak_unless_muted_and_repeat_always_speaks(kiosk_page: Page, kiosk_service):
    k = kiosk_page
    for path, prompt in (("/", "home"), ("/pickup", "pickup"), ("/post", "post/notice"), ("/help", "help"),
                         ("/problem/printer_paper_out", "problem/printer_paper_out")):
        with k.expect_response(re.compile(r"/api/voice\?prompt=")) as spoken:
            k.goto(kiosk_service.url(path))
        response = spoken.value
        assert response.url.endswith("prompt=" + prompt.replace("/", "%2F")), response.url
        assert response.status == 200 and response.headers["content-type"].startswith("audio/wav")
        body = response.body()
        assert body[:4] == b"RIFF" and len(body) > 8000, (path, len(body))

    k.goto(kiosk_service.url("/"))
    k.get_by_test_id("voice-mute").tap()
    expect(k.get_by_test_id("voice-mute")).to_have_attribute("aria-pressed", "true")
    asked: list[str] = []
    k.on("request", lambda r: asked.append(r.url) if "/api/voice" in r.url else None)
    k.goto(kiosk_service.url("/pickup"))
    k.wait_for_timeout(1500)
    assert asked == [], asked  # muted: nothing spoken by itself
    with k.expect_response(re.compile(r"/api/voice\?prompt=pickup")) as spoken:
        k.get_by_test_id("voice-repeat").tap()  # a request: always answered
    assert spoken.value.status == 200
    k.get_by_test_id("voice-mute").tap()
    expect(k.get_by_test_id("voice-mute")).to_have_attribute("aria-pressed", "false")
    with k.expect_response(re.compile(r"/api/voice\?prompt=help")):
        k.goto(kiosk_service.url("/help"))


def test_a_wrong_code_is_said_aloud_too(kiosk_page: Page, kiosk_service):
    k = kiosk_page
    k.goto(kiosk_service.url("/pickup"))
    for _ in range(8):
        k.locator(".keypad [data-key='0']").tap()  # the on-screen keypad
    with k.expect_response(re.compile(r"/api/voice\?prompt=problem%2Fwrong_code")) as spoken:
        k.get_by_test_id("open-door").tap()
    assert spoken.value.status == 200
    expect(k.locator("#message")).not_to_be_empty()  # and written on screen
