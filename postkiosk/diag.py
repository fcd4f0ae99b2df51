"""``postkiosk diag``: diagnostics for technicians.

Bench mode (a device on the technician's own adapter, no station needed) takes the device's protocol
and URL on the command line; station mode talks to the running service after a technician login.
Every command has ``--json``. Sub-command groups live in ``postkiosk/diag_*.py`` and are mounted here.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Diagnostics: test devices on the bench, or inspect the running station.",
                  no_args_is_help=True)

from postkiosk import diag_station  # noqa: E402

diag_station.register(app)

from postkiosk import diag_idcard  # noqa: E402

app.add_typer(diag_idcard.app, name="idcard")

from postkiosk import diag_classify, diag_scanner  # noqa: E402

diag_classify.register(app)
app.add_typer(diag_scanner.app, name="scanner")

from postkiosk import diag_busmon, diag_lock  # noqa: E402

app.add_typer(diag_lock.app, name="lock")
app.command("bus-monitor")(diag_busmon.bus_monitor)

from postkiosk import diag_scan  # noqa: E402

app.add_typer(diag_scan.app, name="scan")

from postkiosk import diag_printer, diag_scale  # noqa: E402

app.add_typer(diag_printer.app, name="printer")
app.add_typer(diag_scale.app, name="scale")
