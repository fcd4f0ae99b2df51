"""``postkiosk diag scale``: a streaming weighing scale on the bench.

``read --stable`` (the default) waits for a settled weight, exactly as the kiosk accepts one;
``read --current`` shows the next reading whatever its state (for watching a scale settle, or one
that never does).

Exit codes: 0 a weight; 1 the scale answered without a usable weight (never settled, overload);
2 it could not be reached, stayed silent, or sent something that is not a weight (port, cable,
baud rate, format).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from postkiosk.diag_common import JsonOpt, UrlOpt, console, emit, fail

app = typer.Typer(help="Weighing scales on the bench.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Weighing scales on the bench."""  # keeps ``read`` a sub-command when this app runs alone


def _words(d: dict[str, Any]) -> str:
    if d["overload"]:
        return "[red]OVERLOAD[/]"
    state = "stable" if d["stable"] else "[yellow]unstable[/]"
    return f"[bold]{d['grams']} g[/] ({state}, {d['kind']})"


@app.command()
def read(url: UrlOpt,
         baudrate: Annotated[int, typer.Option("--baudrate", help="serial speed (most scales: 9600)")] = 9600,
         stable: Annotated[bool, typer.Option("--stable/--current",
                                              help="wait for a settled weight, or show the next reading")] = True,
         timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait")] = 5.0,
         stable_lines: Annotated[int, typer.Option("--stable-lines",
                                                   help="equal stable readings needed in a row")] = 3,
         as_json: JsonOpt = False) -> None:
    """Read the weight on the scale."""
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
