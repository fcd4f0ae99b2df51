"""Station mode of ``postkiosk diag``: the running service, after a technician login.

``postkiosk diag login`` asks for the technician's login and password and keeps the session token
in a file only the user can read (``$XDG_RUNTIME_DIR``, else ``~/.cache``); the session ends after
120 s without use, like every staff session, and the commands say so. The commands are thin clients
of the technician API (``/api/tech/...``): what the web page shows, the command line shows.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import httpx
import typer
from rich.live import Live
from rich.table import Table

from postkiosk import config as config_mod
from postkiosk.diag_common import JsonOpt, console, emit, fail

ServiceOpt = Annotated[Optional[str], typer.Option("--service", help="the station's address (default: from the "
                                                   "configuration, http://127.0.0.1:8080)")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="station TOML file")]


def _session_file() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or str(Path.home() / ".cache")
    return Path(base) / "postkiosk" / "diag-session.json"


def _service_url(service: str | None, config: Path | None) -> str:
    if service:
        return service.rstrip("/")
    cfg = config_mod.load(config)
    scheme = "https" if cfg.web.tls_certfile else "http"
    host = "127.0.0.1" if cfg.web.host in ("0.0.0.0", "::") else cfg.web.host
    return f"{scheme}://{host}:{cfg.web.port}"


def _save_session(url: str, token: str) -> None:
    path = _session_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"service": url, "token": token}, fh)


def _load_session(url: str, as_json: bool) -> str:
    token = os.environ.get("POSTKIOSK_TOKEN")
    if token:
        return token
    try:
        saved = json.loads(_session_file().read_text())
    except (OSError, ValueError):
        fail("not logged in: run `postkiosk diag login` first", as_json)
    if saved.get("service") != url:
        fail(f"the saved login is for {saved.get('service')}, not {url}: run `postkiosk diag login` again", as_json)
    return saved["token"]


def _call(method: str, url: str, path: str, as_json: bool, token: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url + path, headers=headers, timeout=30.0, **kw)
    except httpx.HTTPError as err:
        fail(f"cannot reach the station at {url}: {err}", as_json)
    if response.status_code == 401 and token:
        fail("the session has ended (120 s without use, or the service restarted): run `postkiosk diag login`",
             as_json)
    if response.status_code >= 400:
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        fail(f"{response.status_code}: {message}", as_json)
    return response


def _get(path: str, service: str | None, config: Path | None, as_json: bool) -> Any:
    url = _service_url(service, config)
    return _call("GET", url, path, as_json, _load_session(url, as_json)).json()


def login(login: Annotated[str, typer.Option("--login", prompt=True, help="your technician login")],
          password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                       help="read the password from standard input")] = False,
          service: ServiceOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Log in as a technician for the station-mode commands."""
    url = _service_url(service, config)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    response = _call("POST", url, "/api/technician/session", as_json, json={"login": login, "password": password})
    body = response.json()
    _save_session(url, body["token"])
    emit({"service": url, "technician": body["technician"], "idle_timeout": body["idle_timeout"]}, as_json,
         lambda d: f"logged in to {d['service']} as {d['technician']['name']}; the session ends after "
                   f"{d['idle_timeout']:g} s without use")


def station(service: ServiceOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every configured device and its health, model or firmware where it reports one."""
    data = _get("/api/tech/station", service, config, as_json)

    def render(d: dict[str, Any]) -> Table:
        table = Table("device", "kind", "model / firmware", "address", "health", title=f"station {d['station']}")
        for bank in d["banks"]:
            boards = ", ".join(f"{b}: {'answers' if ok else 'SILENT'}" for b, ok in bank["boards"].items())
            table.add_row(bank["name"], "lock bank", f"{bank.get('model') or bank['protocol']} {bank.get('firmware') or ''}",
                          bank.get("url") or "", ("[green]ok[/]" if bank["ok"] else "[red]FAULT[/]") + f" ({boards})")
        for dev in d["devices"]:
            table.add_row(dev["name"], dev.get("kind", ""), dev.get("model") or dev.get("backend") or "",
                          dev.get("url") or "", "[green]ok[/]" if dev["ok"] else f"[red]FAULT[/] {dev.get('error', '')}")
        db = d["database"]
        table.add_row("database", "SQLite", f"schema {db['schema']}, {db['journal_mode']}", db["file"],
                      f"{db['events']} journal events")
        return table

    emit(data, as_json, render)


def _doors_table(doors: list[dict[str, Any]]) -> Table:
    table = Table("door", "bank", "board", "ch", "door state", "item", "compartment", "last command")
    colour = {"open": "yellow", "closed": "green", "unknown": "red"}
    for d in doors:
        item = {True: "inside", False: "empty", None: "-"}[d["item"]]
        last = d["last_command"]
        when = time.strftime("%H:%M:%S", time.localtime(last["at"])) + " " + last["what"] if last else ""
        table.add_row(d["label"], d["bank"], str(d["board"]), str(d["channel"]),
                      f"[{colour.get(d['door'], 'white')}]{d['door']}[/]", item, d["state"], when)
    return table


def doors(once: Annotated[bool, typer.Option("--once", help="print the table once instead of live")] = False,
          interval: Annotated[float, typer.Option(help="seconds between refreshes")] = 1.0,
          service: ServiceOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every door live: state, item sensor, compartment state, last command (Ctrl+C ends it)."""
    if once or as_json:
        emit(_get("/api/tech/doors", service, config, as_json), as_json, _doors_table)
        return
    with Live(_doors_table(_get("/api/tech/doors", service, config, False)), console=console,
              refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(_doors_table(_get("/api/tech/doors", service, config, False)))
        except KeyboardInterrupt:
            pass


def selftest(service: ServiceOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The full self-test; exits 1 when a check fails."""
    report = _get("/api/tech/selftest", service, config, as_json)

    def render(r: dict[str, Any]) -> Table:
        table = Table("", "check", "detail", title="self-test: " + ("passed" if r["ok"] else "FAILED"))
        for c in r["checks"]:
            table.add_row("[green]ok[/]" if c["ok"] else "[red]FAIL[/]", c["check"], c["detail"])
        return table

    emit(report, as_json, render)
    if not report["ok"]:
        raise typer.Exit(1)


def logs(limit: Annotated[int, typer.Option(help="how many recent events")] = 50,
         service: ServiceOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The recent journal, newest first, personal data masked."""
    events = _get(f"/api/tech/logs?limit={limit}", service, config, as_json)

    def render(rows: list[dict[str, Any]]) -> Table:
        table = Table("#", "time", "event", "who", "door", "detail")
        for e in rows:
            table.add_row(str(e["id"]), time.strftime("%m-%d %H:%M:%S", time.localtime(e["at"])), e["kind"], e["actor"],
                          e["compartment"] or "", json.dumps(e["detail"], ensure_ascii=False))
        return table

    emit(events, as_json, render)


def export(output: Annotated[Optional[Path], typer.Option("--output", "-o", help="where to write the zip")] = None,
           service: ServiceOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """A support bundle (zip) with no personal data."""
    url = _service_url(service, config)
    response = _call("GET", url, "/api/tech/export", as_json, _load_session(url, as_json))
    target = output or Path(time.strftime("postkiosk-support-%Y%m%d-%H%M%S.zip"))
    target.write_bytes(response.content)
    emit({"file": str(target), "bytes": len(response.content)}, as_json,
         lambda d: f"support bundle written to {d['file']} ({d['bytes']} bytes)")


def register(app: typer.Typer) -> None:
    """Mount the station-mode commands on ``postkiosk diag``."""
    for name, fn in (("login", login), ("station", station), ("doors", doors), ("selftest", selftest),
                     ("logs", logs), ("export", export)):
        app.command(name)(fn)
