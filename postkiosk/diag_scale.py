"""``postkiosk diag scale``: a streaming weighing scale on the bench.

The scale is given before the command (``diag lock``'s form) or after it; both work::

    postkiosk diag scale --url /dev/ttyUSB0 read
    postkiosk diag scale --url /dev/ttyUSB0 --baudrate 4800 read --current

``read --stable`` (the default) waits for a settled weight, exactly as the kiosk accepts one;
``read --current`` shows the next reading whatever its state (for watching a scale settle, or one
that never does).

Exit codes: 0 a weight; 1 the scale answered without a usable weight (never settled, overload);
2 it could not be reached, stayed silent, or sent something that is not a weight (port, cable,
baud rate, format).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer

from postkiosk.diag_common import JsonOpt, console, emit, fail, pick_option

app = typer.Typer(help="Weighing scales on the bench. Give the scale with --url before the command (or after it).",
                  no_args_is_help=True)

UrlOpt = Annotated[Optional[str], typer.Option(
    "--url", help="the scale's serial port or pyserial URL (required): /dev/ttyUSB0, /dev/serial/by-id/..., "
    "socket://host:port", show_default=False)]
BaudOpt = Annotated[Optional[int], typer.Option(
    "--baudrate", help="serial speed (most scales: 9600) [default: 9600]", show_default=False)]
DEFAULT_BAUDRATE = 9600


@dataclass(frozen=True)
class ScaleOptions:
    """The scale as given before the command (the group's options)."""

    url: str | None = None
    baudrate: int | None = None


@app.callback()
def _group(ctx: typer.Context, url: UrlOpt = None, baudrate: BaudOpt = None) -> None:
    """Weighing scales on the bench: the scale here, the command after it."""
    ctx.obj = ScaleOptions(url, baudrate)


def _words(d: dict[str, Any]) -> str:
    if d["overload"]:
        return "[red]OVERLOAD[/]"
    state = "stable" if d["stable"] else "[yellow]unstable[/]"
    return f"[bold]{d['grams']} g[/] ({state}, {d['kind']})"


@app.command()
def read(ctx: typer.Context, url: UrlOpt = None, baudrate: BaudOpt = None,
         stable: Annotated[bool, typer.Option("--stable/--current",
                                              help="wait for a settled weight, or show the next reading")] = True,
         timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait")] = 5.0,
         stable_lines: Annotated[int, typer.Option("--stable-lines",
                                                   help="equal stable readings needed in a row")] = 3,
         as_json: JsonOpt = False) -> None:
    """Read the weight on the scale."""
    group = ctx.find_object(ScaleOptions) or ScaleOptions()
    url = pick_option("--url", group.url, url, None, as_json)
    baudrate = pick_option("--baudrate", group.baudrate, baudrate, DEFAULT_BAUDRATE, as_json)
    if not url:
        fail("give --url, e.g. 'postkiosk diag scale --url /dev/ttyUSB0 read'", as_json)
    from hal.errors import HalError
    from hal.scale import ScaleOverload, ScaleUnstable, scale

    async def weigh() -> dict[str, Any]:
        async with scale("serial-lines", url=url, baudrate=baudrate, stable_lines=stable_lines) as device:
            weight = await (device.read_stable(timeout) if stable else device.read_current(timeout))
            return {"url": url, **weight.as_dict()}

    try:
        data = asyncio.run(weigh())
    except (ScaleOverload, ScaleUnstable) as err:
        fail(str(err), as_json, code=1)
    except (HalError, ValueError) as err:
        fail(str(err), as_json)
    emit(data, as_json, lambda d: console.print(_words(d), highlight=False))
