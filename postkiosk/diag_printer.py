"""``postkiosk diag printer``: a receipt (ESC/POS) or label (TSPL) printer on the bench.

``status`` asks the printer for its state (online, paper, cover, errors) and shows the raw status
bytes; ``test-page`` prints the station name, date and time, a Chinese line, a Code 128, a QR code
and a ruler of the printable width, after checking that the printer is ready.

Exit codes: 0 fine; 1 the printer answered and cannot print (out of paper, cover open...); 2 it
could not be reached or did not answer (port, cable, baud rate, protocol), or bad arguments.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from postkiosk.diag_common import JsonOpt, UrlOpt, console, emit, fail

app = typer.Typer(help="Receipt (ESC/POS) and label (TSPL) printers on the bench.", no_args_is_help=True)


class Protocol(str, enum.Enum):
    escpos = "escpos"
    tspl = "tspl"


ProtocolOpt = Annotated[Protocol, typer.Option("--protocol", help="escpos (receipt printers) or tspl (label printers)")]
BaudOpt = Annotated[int, typer.Option("--baudrate", help="serial speed; ignored by USB-CDC and socket:// links")]
ProfileOpt = Annotated[Optional[str], typer.Option(
    "--profile", help="paper: receipt-80mm, receipt-58mm, label-76x130, label-100x150 "
                      "(default: receipt-80mm for escpos, label-76x130 for tspl)")]


def _printer(protocol: Protocol, url: str, baudrate: int, profile: str | None) -> Any:
    from hal.printer import printer

    return printer(protocol.value, url, profile, baudrate=baudrate)


def _run(coro: Any, as_json: bool) -> Any:
    from hal.errors import HalError
    from hal.printer import PrinterNotReady

    try:
        return asyncio.run(coro)
    except PrinterNotReady as err:
        fail(str(err), as_json, code=1)
    except (HalError, ValueError) as err:
        fail(str(err), as_json)


def _status_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"{data['protocol']} printer on {data['url']}", show_header=False)
    ready = "[green]ready[/]" if data["ready"] else f"[red]not ready: {', '.join(data['reasons'])}[/]"
    table.add_row("state", ready)
    table.add_row("online", "yes" if data["online"] else "[red]no[/]")
    table.add_row("paper", "[red]out[/]" if data["paper_out"] else "[yellow]low[/]" if data["paper_low"] else "ok")
    table.add_row("cover", "[red]open[/]" if data["cover_open"] else "closed")
    table.add_row("errors", ", ".join(data["errors"]) or "none")
    table.add_row("paper width", f"{data['width_dots']} dots at {data['dpi']} dpi")
    table.add_row("status bytes", " ".join(f"{k}={v}" for k, v in data["raw"].items()))
    return table


@app.command()
def status(url: UrlOpt, protocol: ProtocolOpt = Protocol.escpos, baudrate: BaudOpt = 9600,
           profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Ask the printer for its state. Exits 1 when it cannot print, 2 when it does not answer."""

    async def ask() -> dict[str, Any]:
        async with _printer(protocol, url, baudrate, profile) as device:
            state = await device.status()
            return {**device.describe(), **state.as_dict(), "reasons": list(state.reasons)}

    data = _run(ask(), as_json)
    emit(data, as_json, _status_table)
    if not data["ready"]:
        raise typer.Exit(1)


@app.command("test-page")
def test_page(url: UrlOpt, protocol: ProtocolOpt = Protocol.escpos, baudrate: BaudOpt = 9600,
              profile: ProfileOpt = None,
              station: Annotated[str, typer.Option("--station", help="name printed at the top")] = "postkiosk",
              as_json: JsonOpt = False) -> None:
    """Print a test page (station, time, Chinese, Code 128, QR, ruler); exits 1 when not ready.

    The page holds the station name, the date and time, a Chinese line, a Code 128, a QR code and
    a ruler across the printable width (a tick every mm, longer every 5 and 10 mm)."""

    async def print_page() -> dict[str, Any]:
        async with _printer(protocol, url, baudrate, profile) as device:
            page = await device.test_page(station)
            state = await device.status()
            return {**device.describe(), "printed": True, "lines": list(page.lines), "code128": page.code128,
                    "qr": page.qr, "status": state.as_dict()}

    data = _run(print_page(), as_json)

    def render(d: dict[str, Any]) -> None:
        console.print(f"[green]test page sent[/] to the {d['protocol']} printer on {d['url']}", highlight=False)
        console.print(f"  Code 128: {d['code128']}\n  QR:       {d['qr']}", highlight=False)
        if d["status"]["paper_low"]:
            console.print("  [yellow]paper low[/]")

    emit(data, as_json, render)
