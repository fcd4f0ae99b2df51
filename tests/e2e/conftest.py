"""Browser tests against the real service: ``postkiosk run`` in a subprocess, Chromium driven by Playwright.

The service runs the built-in demo (a wire-level simulated Kerong lock wall on a pty, SQLite in the
test's tmp_path, the wall page at /sim). Chromium is the system one at /usr/bin/chromium; nothing is
ever downloaded. Screenshots go to ``$POSTKIOSK_TEST_OUTPUT/e2e`` (default ``test-output/e2e`` in the
repository).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",  # as the kiosk runs: voice prompts speak on their own
]
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class KioskService:
    base_url: str
    courier_login: str
    courier_pin: str
    database: Path
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("postkiosk")
    if script.exists():
        return [str(script), "run", "--port", str(port)]
    return [sys.executable, "-c", "from postkiosk.cli import main; main()", "run", "--port", str(port)]


def _healthz(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as err:
        err.close()
        return err.code
    except OSError:
        return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def kiosk_service(request, tmp_path: Path):
    """The real service on a free port; fails the test if it does not come up or dies meanwhile.
    ``@pytest.mark.service_env(NAME=value, ...)`` adds environment settings (``POSTKIOSK_...``)."""
    port = _free_port()
    database = tmp_path / "var" / "postkiosk.sqlite3"
    log = tmp_path / "service.log"
    env = dict(os.environ)
    env.pop("POSTKIOSK_CONFIG", None)  # always the built-in demo station
    env["POSTKIOSK_DATABASE__PATH"] = str(database)
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"  # keep rich from wrapping the banner
    marker = request.node.get_closest_marker("service_env")
    if marker is not None:
        env.update({k: str(v) for k, v in marker.kwargs.items()})
    with log.open("wb") as out:
        process = subprocess.Popen(_command(port), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"postkiosk run exited with {process.returncode} while starting:\n"
                            + log.read_text(errors="replace"))
            if _healthz(base_url + "/healthz") == 200:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"GET /healthz did not return 200 within {START_TIMEOUT:.0f} s:\n"
                            + log.read_text(errors="replace"))
            time.sleep(0.2)
        note = database.parent / "demo-courier.txt"
        login, pin = note.read_text().split()
        service = KioskService(base_url, login, pin, database, log, process)
        yield service
        print(f"--- last lines of the service log ({log}):\n{service.log_tail()}")
        if process.poll() is not None:
            pytest.fail(f"postkiosk run died during the test (exit {process.returncode}):\n{service.log_tail()}")
    finally:
        _stop(process)


@pytest.fixture
def chromium():
    """Headless system Chromium; the test is skipped only when /usr/bin/chromium is missing.

    (Named so as not to clash with pytest-playwright's ``browser`` fixture if that plugin is installed.)
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _touchscreen(browser, width: int = 1280, height: int = 800):
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=True, locale="zh-CN")
    context.set_default_timeout(10_000)
    return context


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


def _page_fixture(request, browser, name: str, width: int, height: int, shots: Path):
    context = _touchscreen(browser, width, height)
    try:
        page = context.new_page()
        yield page
        if request.node.stash.get(_CALL_FAILED, False) and not page.is_closed():
            try:
                page.screenshot(path=str(shots / f"99-failed-{name}.png"), full_page=True, timeout=5_000)
            except Exception as err:  # the picture is a help, not a second failure
                print(f"no failure screenshot of the {name} page: {err}")
    finally:
        context.close()


@pytest.fixture
def kiosk_page(request, chromium, kiosk_service, shots):
    """The kiosk: a 1280x800 touchscreen in Simplified Chinese. (Depends on the service so it is
    closed, with its event stream, before the service is stopped.)"""
    yield from _page_fixture(request, chromium, "kiosk", 1280, 800, shots)


@pytest.fixture
def wall_page(request, chromium, kiosk_service, shots):
    """The person at the wall, on another device (its own browser context and window).

    Two pages of one context would share a window, and Chromium then throttles the one behind
    (every tap on it takes seconds); separate contexts also keep the kiosk's cookies to the kiosk.
    Wide enough for the resident's phone panel to sit beside the wall.
    """
    yield from _page_fixture(request, chromium, "wall", 1440, 900, shots)


@pytest.fixture
def shots() -> Path:
    """The screenshot folder of this run, emptied of the previous run's numbered pictures."""
    root = Path(os.environ.get("POSTKIOSK_TEST_OUTPUT", "test-output"))
    if not root.is_absolute():
        root = REPO_ROOT / root
    folder = root / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("[0-9][0-9]-*.png"):
        old.unlink()
    return folder
