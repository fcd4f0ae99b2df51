"""``postkiosk diag printer``: a receipt (ESC/POS) or label (TSPL) printer on the bench.

The printer is given before the command (``diag lock``'s form) or after it; both work::

    postkiosk diag printer --protocol escpos --url /dev/usb/lp0 status
    postkiosk diag printer --protocol tspl --url socket://192.168.1.50:9100 test-page

``status`` asks the printer for its state (online, paper, cover, errors) and shows the raw status
bytes; ``test-page`` prints the station name, date and time, a Chinese line, a Code 128, a QR code
and a ruler of the printable width, after checking that the printer is ready.

Exit codes: 0 fine; 1 the printer answered and cannot print (out of paper, cover open...); 2 it
could not be reached or did not answer (port, cable, baud rate, protocol), or bad arguments.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from postkiosk.diag_common import JsonOpt, console, emit, fail, pick_option

app = typer.Typer(help="Receipt (ESC/POS) and label (TSPL) printers on the bench. Give the printer with "
                  "--protocol and --url before the command (or after it).", no_args_is_help=True)


class Protocol(str, enum.Enum):
    escpos = "escpos"
    tspl = "tspl"


ProtocolOpt = Annotated[Optional[Protocol], typer.Option(
    "--protocol", help="escpos (receipt printers) or tspl (label printers) [default: escpos]", show_default=False)]
UrlOpt = Annotated[Optional[str], typer.Option(
    "--url", help="the printer (required): /dev/usb/lp0, /dev/ttyUSB0, /dev/serial/by-id/..., "
    "socket://host:9100", show_default=False)]
BaudOpt = Annotated[Optional[int], typer.Option(
    "--baudrate", help="serial speed; ignored by USB-CDC and socket:// links [default: 9600]", show_default=False)]
ProfileOpt = Annotated[Optional[str], typer.Option(
    "--profile", help="paper: receipt-80mm, receipt-58mm, label-76x130, label-100x150 "
                      "(default: receipt-80mm for escpos, label-76x130 for tspl)")]


DEFAULT_BAUDRATE = 9600


@dataclass(frozen=True)
class PrinterOptions:
    """The printer as given before the command (the group's options)."""

    protocol: Protocol | None = None
    url: str | None = None
    baudrate: int | None = None
    profile: str | None = None

    def resolve(self, as_json: bool, protocol: Protocol | None, url: str | None, baudrate: int | None,
                profile: str | None) -> tuple[Protocol, str, int, str | None]:
        """The command's printer: options given after the command, else before it; --url is required."""
        protocol = pick_option("--protocol", self.protocol, protocol, Protocol.escpos, as_json)
        url = pick_option("--url", self.url, url, None, as_json)
        baudrate = pick_option("--baudrate", self.baudrate, baudrate, DEFAULT_BAUDRATE, as_json)
        profile = pick_option("--profile", self.profile, profile, None, as_json)
        if not url:
            fail("give --url, e.g. 'postkiosk diag printer --protocol escpos --url /dev/usb/lp0 status'", as_json)
        return protocol, url, baudrate, profile


@app.callback()
def _group(ctx: typer.Context, protocol: ProtocolOpt = None, url: UrlOpt = None, baudrate: BaudOpt = None,
           profile: ProfileOpt = None) -> None:
    """Receipt (ESC/POS) and label (TSPL) printers on the bench: the printer here, the command after it."""
    ctx.obj = PrinterOptions(protocol, url, baudrate, profile)


def _options(ctx: typer.Context) -> PrinterOptions:
    return ctx.find_object(PrinterOptions) or PrinterOptions()


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
def status(ctx: typer.Context, url: UrlOpt = None, protocol: ProtocolOpt = None, baudrate: BaudOpt = None,
           profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Ask the printer for its state. Exits 1 when it cannot print, 2 when it does not answer."""
    protocol, url, baudrate, profile = _options(ctx).resolve(as_json, protocol, url, baudrate, profile)

    async def ask() -> dict[str, Any]:
        async with _printer(protocol, url, baudrate, profile) as device:
            state = await device.status()
            return {**device.describe(), **state.as_dict(), "reasons": list(state.reasons)}

    data = _run(ask(), as_json)
    emit(data, as_json, _status_table)
    if not data["ready"]:
        raise typer.Exit(1)


@app.command("test-page")
def test_page(ctx: typer.Context, url: UrlOpt = None, protocol: ProtocolOpt = None, baudrate: BaudOpt = None,
              profile: ProfileOpt = None,
              station: Annotated[str, typer.Option("--station", help="name printed at the top")] = "postkiosk",
              as_json: JsonOpt = False) -> None:
    """Print a test page (station, time, Chinese, Code 128, QR, ruler); exits 1 when not ready.

    The page holds the station name, the date and time, a Chinese line, a Code 128, a QR code and
    a ruler across the printable width (a tick every mm, longer every 5 and 10 mm)."""
    protocol, url, baudrate, profile = _options(ctx).resolve(as_json, protocol, url, baudrate, profile)

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
