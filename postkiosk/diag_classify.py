"""``postkiosk diag classify TEXT``: what the station makes of a scanned or typed text, and why.

It runs the kiosk's own classifier (``hal.codes.classify``) with the default payment code rules and
prints the kind of read (pickup code or token, payment code, resident ID number, S10 postal item,
waybill with its carrier or "unknown carrier", unknown), its details and a one-line explanation. Like
everything the kiosk shows, the details are masked: no full pickup code, token, payment code, ID number
or waybill number is printed, in the table or in ``--json``.

Mount it with ``diag_classify.register(app)`` on the ``diag`` group; :data:`app` is the same command
on its own (used by the tests).
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from hal.codes import classify, explain
from postkiosk.diag_common import JsonOpt, emit

TextArg = Annotated[str, typer.Argument(help="the text as the scanner sent it (quote it)")]
SymbologyOpt = Annotated[Optional[str], typer.Option(
    "--symbology", "-s", help="the scanner's AIM identifier, e.g. ']Q1' (QR) or ']E0' (EAN-13)")]


def classify_command(text: TextArg, symbology: SymbologyOpt = None, json_: JsonOpt = False) -> None:
    """Say what TEXT is to the station (pickup code, payment code, ID number, waybill...) and why."""
    read = classify(text, symbology)
    data: dict[str, Any] = {**read.to_dict(), "explanation": explain(read)}
    emit(data, json_, _table)


def _table(data: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in data.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        table.add_row(key, escape("-" if value is None else str(value)))
    return table


def register(app: typer.Typer) -> None:
    """Mount ``classify`` on ``postkiosk diag``."""
    app.command("classify")(classify_command)


app = typer.Typer(help="What the station makes of a scanned text.")
register(app)
