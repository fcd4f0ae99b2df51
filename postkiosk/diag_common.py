"""What every ``postkiosk diag`` command shares: one way to print a result (a rich table for people,
JSON with ``--json`` for scripts), one way to fail (a plain message and exit code 2), and the options
every bench command takes.

A command builds a plain dict or list (JSON-serialisable), then calls :func:`emit` with a function
that renders it for people. Personal data is masked before it reaches either form.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of a table")]
UrlOpt = Annotated[str, typer.Option("--url", help="serial port or pyserial URL: /dev/ttyUSB0, "
                                      "/dev/serial/by-id/..., socket://host:port, rfc2217://host:port")]


def emit(data: Any, as_json: bool, render: Callable[[Any], Any] | None = None) -> None:
    """Print ``data``: as one JSON document when ``as_json``, else ``render(data)`` (a rich renderable or
    None when render printed itself), else a pretty print."""
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()
        return
    shown = render(data) if render else data
    if shown is not None:
        console.print(shown)


def emit_line(data: Any, as_json: bool, text: str) -> None:
    """One event of a live command (listen, bus-monitor): a JSON line, or ``text`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()
    else:
        console.print(text, highlight=False)


def fail(message: str, as_json: bool = False, code: int = 2) -> NoReturn:
    """End the command with a clear message (and ``{"error": ...}`` on stdout with ``--json``)."""
    if as_json:
        sys.stdout.write(json.dumps({"error": message}, ensure_ascii=False) + "\n")
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def pick_option(name: str, before: Any, after: Any, default: Any, as_json: bool = False) -> Any:
    """One bench option that a group takes before its command and the command after it (both orders
    work, as in ``diag lock``): the value given, else ``default``; the same option given on both sides
    with different values ends the command (exit 2) rather than silently picking one."""
    if before is not None and after is not None and before != after:
        shown = [getattr(v, "value", v) for v in (before, after)]
        fail(f"{name} given twice with different values ({shown[0]} before the command, "
             f"{shown[1]} after it)", as_json)
    if after is not None:
        return after
    return default if before is None else before
