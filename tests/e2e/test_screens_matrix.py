"""Every resident screen, in every language, in normal and large print, on the 7-inch 800x480 panel
and a 1280x800 screen, with touch (issue 9; kiosk-ux-and-stack.md §9.1, §9.2):

* controls at least 64 px (80 px in large print) in both directions;
* body text at least 18 px; in large print the main actions at least 30 px type;
* line spacing at least 1.3 on paragraphs;
* text contrast at least 4.5:1, computed from the rendered colours (text colour against the nearest
  opaque background behind it);
* no text clipped: nothing wider than the viewport, no element whose content overflows a box that
  hides it.

A screenshot of each lands in test-output/e2e/screens/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from kiosk.i18n import LANGUAGES

SCREENS = ("/", "/pickup", "/courier", "/help", "/post", "/post/catalogue", "/problem/printer_paper_out", "/queue", "/queue?step=priority",
           "/bills", "/problem/payments_offline")
COURIER_SCREENS = ("/courier/deposit", "/courier/retrieve")
VIEWPORTS = ((800, 480), (1280, 800))

#: one pass over the page in the browser: every measurement this test asserts on
MEASURE = r"""
(large) => {
  const px = (v) => parseFloat(v) || 0;
  const rgba = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return [0, 0, 0, 0];
                        const p = m[1].split(",").map((x) => parseFloat(x)); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0.5) return c; }
    return [255, 255, 255, 1];
  };
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
                            return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none"; };
  const name = (el) => (el.dataset.testid || el.id || el.textContent.trim().slice(0, 24) || el.tagName);
  const out = { small: [], tinyText: [], smallAction: [], lowContrast: [], tight: [], clipped: [], wide: [] };
  const min = large ? 80 : 64;
  document.querySelectorAll("button, a.btn, .key, input:not([type=hidden]), textarea, select, summary").forEach((el) => {
    if (!visible(el) || el.closest("[hidden]")) return;
    const r = el.getBoundingClientRect();
    if (r.width < min - 0.5 || r.height < min - 0.5) out.small.push([name(el), Math.round(r.width), Math.round(r.height)]);
  });
  if (large) document.querySelectorAll("main .btn.primary, main .btn.big").forEach((el) => {
    if (visible(el) && px(getComputedStyle(el).fontSize) < 30) out.smallAction.push([name(el), getComputedStyle(el).fontSize]);
  });
  const texts = [...document.querySelectorAll("body *")].filter((el) => visible(el) && !el.closest("[hidden]") &&
    [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()));
  texts.forEach((el) => {
    const s = getComputedStyle(el);
    if (px(s.fontSize) < 18) out.tinyText.push([name(el), s.fontSize]);
    const fg = rgba(s.color), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < 4.5) out.lowContrast.push([name(el), ratio.toFixed(2), s.color, `rgb(${bg.slice(0, 3)})`]);
    if (el.tagName === "P" || el.tagName === "LI") {
      const lh = s.lineHeight === "normal" ? 1.2 * px(s.fontSize) : px(s.lineHeight);
      if (lh < 1.3 * px(s.fontSize) - 0.5) out.tight.push([name(el), s.lineHeight, s.fontSize]);
    }
    if (["hidden", "clip"].includes(s.overflowX) && el.scrollWidth > el.clientWidth + 1) out.clipped.push([name(el), "x"]);
    if (["hidden", "clip"].includes(s.overflowY) && el.scrollHeight > el.clientHeight + 1) out.clipped.push([name(el), "y"]);
  });
  const vw = document.documentElement.clientWidth;
  document.querySelectorAll("body *").forEach((el) => {
    if (!visible(el) || el.closest("[hidden]")) return;
    const r = el.getBoundingClientRect();
    if (r.right > vw + 1 || r.left < -1) out.wide.push([name(el), Math.round(r.left), Math.round(r.right), vw]);
  });
  if (document.documentElement.scrollWidth > vw + 1) out.wide.push(["page", document.documentElement.scrollWidth, vw]);
  return out;
}
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("width,height", VIEWPORTS, ids=lambda v: str(v))
def test_every_screen_in_every_language_and_mode(chromium: Browser, kiosk_service, shots: Path, width, height):
    folder = shots / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": width, "height": height}, has_touch=True)
    page = context.new_page()
    problems: dict[str, dict[str, list]] = {}
    try:
        for locale in LANGUAGES:
            page.goto(kiosk_service.url(f"/lang/{locale}?next=/"))
            for large in (False, True):
                page.request.delete(kiosk_service.url("/api/courier/session"))
                page.goto(kiosk_service.url(f"/large/{'on' if large else 'off'}?next=/"))
                for path in (*SCREENS, *COURIER_SCREENS):
                    if path == COURIER_SCREENS[0]:  # a courier logs in: their screens are measured too
                        login = page.request.post(kiosk_service.url("/api/courier/session"), data={
                            "login": kiosk_service.courier_login, "pin": kiosk_service.courier_pin})
                        assert login.ok, login.text()
                    page.goto(kiosk_service.url(path))
                    page.wait_for_load_state("load")
                    assert page.locator("html").get_attribute("lang") == LANGUAGES[locale][0]
                    found = page.evaluate(MEASURE, large)
                    key = f"{locale} {'large' if large else 'normal'} {width}x{height} {path}"
                    found = {k: v for k, v in found.items() if v}
                    if found:
                        problems[key] = found
                    slug = path.strip("/").replace("/", "-").replace("?", "-") or "home"
                    page.screenshot(path=str(folder / f"{width}x{height}-{locale}-{'large' if large else 'normal'}-{slug}.png"))
    finally:
        context.close()
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


def _api(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    import json
    import urllib.request

    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read() or b"{}")


@pytest.fixture
def long_results(monkeypatch):
    monkeypatch.setenv("POSTKIOSK_STATION__RESULT_SECONDS", "60")  # six languages x modes of one result


@pytest.mark.timeout(300)
def test_the_door_and_result_screens_in_every_language_and_mode(long_results, chromium: Browser, kiosk_service,
                                                                 shots: Path):
    """The screens a flow shows (an open door, then its result) at 800x480, the tightest panel."""
    import time

    base = kiosk_service.base_url
    folder = shots / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    token = _api(base, "POST", "/api/courier/session",
                 {"login": kiosk_service.courier_login, "pin": kiosk_service.courier_pin})["token"]
    ticket = _api(base, "POST", "/api/deposits", {"tracking": "SF1234567890", "phone": "13912345678", "size": "S",
                                                  "consent": True}, token)
    label = ticket["compartment"]
    board, channel = divmod(int(label[1:]) - 1, 16)
    context = chromium.new_context(viewport={"width": 800, "height": 480}, has_touch=True)
    page = context.new_page()
    problems: dict[str, dict[str, list]] = {}

    def sweep(screen: str) -> None:
        # cookies set directly: a door or result page may move itself to "/" at any moment, which
        # would race a navigation through /lang/ or /large/
        for locale in LANGUAGES:
            for large in (False, True):
                context.clear_cookies()
                context.add_cookies([{"name": "pk_lang", "value": locale, "url": base}]
                                    + ([{"name": "pk_large", "value": "1", "url": base}] if large else []))
                _goto_home(page, kiosk_service.url("/"))
                assert page.locator("body").get_attribute("data-page") == screen
                found = {k: v for k, v in page.evaluate(MEASURE, large).items() if v}
                if found:
                    problems[f"{locale} {'large' if large else 'normal'} {screen}"] = found
                page.screenshot(path=str(folder / f"800x480-{locale}-{'large' if large else 'normal'}-{screen}.png"))

    try:
        deadline = time.monotonic() + 10
        while _api(base, "GET", "/api/screen")["door"] != "open":
            assert time.monotonic() < deadline, "the deposit door never opened"
            time.sleep(0.05)
        sweep("door")
        _api(base, "POST", f"/sim/api/A/{board}/{channel}/put")
        _api(base, "POST", f"/sim/api/A/{board}/{channel}/close")
        deadline = time.monotonic() + 10
        while _api(base, "GET", "/api/screen")["name"] != "result":
            assert time.monotonic() < deadline, "no result screen"
            time.sleep(0.05)
        sweep("result")
    finally:
        context.close()
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


def _goto_home(page, url: str) -> None:
    """Open "/", where a door or result page may itself be moving to "/" (a screen event): a
    navigation it interrupts is simply made again."""
    from playwright.sync_api import Error

    for _ in range(5):
        try:
            page.goto(url)
            return
        except Error as err:
            if "interrupted by another navigation" not in str(err):
                raise
            page.wait_for_load_state("load")
    page.goto(url)
