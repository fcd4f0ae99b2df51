"""``postkiosk close``: the station's daily close (日终轧帐) and its prepaid balance, from the command line.

``close run --day YYYY-MM-DD`` reconciles the day (lockers/station_ledger.py) and stores a new version
of its close; ``close show`` prints a stored close; ``close top-up`` records money paid into the
station's prepaid account by a named staff member; ``close balance`` shows the balance. Results are a
rich table for people or JSON with ``--json``; ``--csv FILE`` writes the report for Excel (UTF-8 with
BOM); ``--print`` sends the slip to the configured receipt printer. ``run`` and ``show`` exit 1 when
the close flagged a mismatch, so a cron job can alert on it.

The commands open the station database named in the configuration directly, like ``admin``: run
them on the station itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from postkiosk import config as config_mod
from postkiosk.diag_common import JsonOpt, console, emit, fail

T = TypeVar("T")

app = typer.Typer(help="Daily close (日终轧帐) and the station's prepaid balance.", no_args_is_help=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="station TOML file "
                                                   "(default: $POSTKIOSK_CONFIG, else the built-in demo)")]
DayOpt = Annotated[Optional[str], typer.Option("--day", help="the business day, YYYY-MM-DD (default: today, "
                                               "station time)")]
CsvOpt = Annotated[Optional[Path], typer.Option("--csv", help="also write the report as CSV (UTF-8 with BOM)")]
PrintOpt = Annotated[bool, typer.Option("--print", help="also print the slip on the configured receipt printer")]
TIMEZONE = "Asia/Shanghai"


def acquirers_for(cfg: Any) -> dict[str, Any]:
    """The payment gateways the close asks: the ``[payments.acquirers]`` tables when the configuration
    has them. With none (payments not configured, or only the demo's in-process simulator) every
    order is flagged ``gateway_unknown`` rather than assumed to match. Tests replace this function."""
    payments = getattr(cfg, "payments", None)
    tables = getattr(payments, "acquirers", None)
    if not tables:
        return {}
    from lockers.acquirers.factory import build_acquirers

    return build_acquirers(tables)


def station_id_for(cfg: Any) -> str:
    """The station id that prefixes order numbers (``[payments] station_id``, default PK01)."""
    return str(getattr(getattr(cfg, "payments", None), "station_id", None) or "PK01")


def commissions_for(cfg: Any) -> Any:
    """``[payments.commissions]`` when configured, else the operator's table (DEFAULT_COMMISSIONS)."""
    from lockers.station_ledger import DEFAULT_COMMISSIONS, CommissionTable

    table = getattr(getattr(cfg, "payments", None), "commissions", None)
    return CommissionTable.from_config(table or DEFAULT_COMMISSIONS)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container: the uid still says who
        return f"uid{os.getuid()}"


def _with_db(config: Path | None, as_json: bool, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Open the station database, run ``work(cfg, ledger)``, close it; domain errors end the command."""
    from lockers.db import Database
    from lockers.errors import CustodyError
    from lockers.station_ledger import StationLedger

    cfg = config_mod.load(config)

    async def main() -> T:
        db = Database(cfg.database.path)
        await db.open()
        try:
            return await work(cfg, StationLedger(db, commissions_for(cfg), timezone=TIMEZONE))
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except CustodyError as err:
        fail(f"{err} ({err.code})", as_json)
    except ValueError as err:  # a bad [payments] table in the configuration
        fail(f"configuration: {err}", as_json)


def _today() -> str:
    return dt.datetime.now(ZoneInfo(TIMEZONE)).date().isoformat()


def _yuan(fen: int) -> str:
    from lockers.station_ledger import fen_text

    return fen_text(fen)


def _render(d: dict[str, Any]) -> None:
    title = (f"日终轧帐 daily close {d['station_id']} {d['day']} v{d['version']} by {d['actor']}: "
             + ("[green]balanced[/]" if d["ok"] else f"[bold red]{len(d['mismatches'])} MISMATCH(ES)[/]"))
    orders = Table("order", "channel", "code", "purpose", "yuan", "here", "gateway", "flag", title=title)
    for o in d["orders"]:
        orders.add_row(o["order_no"], o["channel"], "…" + o["last4"], o["purpose"], _yuan(o["amount_fen"]),
                       o["local_state"], o["gateway"], f"[red]{o['flag']}[/]" if o["flag"] else "")
    console.print(orders)
    totals = Table("paid by", "", "count", "yuan")
    for group in ("paid_by_channel", "paid_by_purpose"):
        for key, v in d[group].items():
            totals.add_row(group.removeprefix("paid_by_"), key, str(v["count"]), _yuan(v["amount_fen"]))
    console.print(totals)
    lg = d["ledger"]
    ledger = Table("prepaid balance", "yuan")
    for key, label in (("opening", "opening"), ("top_ups", "+ top-ups"), ("debits", "- agency debits"),
                       ("refunds", "+ refunds"), ("closing", "closing")):
        ledger.add_row(label, _yuan(lg[key]))
    for service, fen in d["commissions"].items():
        ledger.add_row(f"commission {service}", _yuan(fen))
    console.print(ledger)
    if d["mismatches"]:
        flags = Table("flag", "order", "detail", title="[bold red]flagged, nothing adjusted[/]")
        for m in d["mismatches"]:
            flags.add_row(m["code"], m["order_no"] or "", m["detail"])
        console.print(flags)


async def _print_slip(cfg: Any, report: Any) -> None:
    from hal.printer import printer

    rp = cfg.receipt_printer
    if rp is None or rp.simulate or rp.protocol != "escpos":
        raise RuntimeError("no receipt printer (escpos, with a url) is configured")
    async with printer(rp.protocol, rp.url, rp.profile, baudrate=rp.baudrate or 9600) as device:
        await device.print_job(report.to_receipt_parts())


def _deliver(cfg: Any, report: Any, as_json: bool, csv_file: Path | None, print_slip: bool) -> None:
    if csv_file is not None:
        csv_file.write_bytes(report.to_csv())
    if print_slip:
        try:
            asyncio.run(_print_slip(cfg, report))
        except Exception as err:  # the close is stored; only the slip is missing
            fail(f"the close is stored but the slip was not printed: {err}", as_json)
    emit(report.to_dict(), as_json, _render)
    if not report.ok:
        raise typer.Exit(1)


@app.command("run")
def run(day: DayOpt = None, staff: Annotated[Optional[str], typer.Option("--staff", help="who closes (recorded)")]
        = None, csv_file: CsvOpt = None, print_slip: PrintOpt = False, config: ConfigOpt = None,
        as_json: JsonOpt = False) -> None:
    """Reconcile a day: every payment against the gateway, the prepaid balance and the commissions.
    Stores a new version of the day's close (earlier ones are kept); exits 1 when anything is flagged."""
    from lockers.station_ledger import DailyClose

    actor = f"staff:{staff}" if staff else f"admin:{_os_user()}"

    async def work(cfg: Any, ledger: Any) -> tuple[Any, Any]:
        acquirers = acquirers_for(cfg)
        try:
            close = DailyClose(ledger, acquirers, station_id=station_id_for(cfg))
            return cfg, await close.run(day or _today(), actor=actor)
        finally:
            for acquirer in acquirers.values():
                closer = getattr(acquirer, "aclose", None)
                if closer is not None:
                    await closer()

    cfg, report = _with_db(config, as_json, work)
    _deliver(cfg, report, as_json, csv_file, print_slip)


@app.command("show")
def show(day: DayOpt = None, version: Annotated[Optional[int], typer.Option("--version", help="which version "
                                                                         "(default: the latest)")] = None,
         csv_file: CsvOpt = None, print_slip: PrintOpt = False, config: ConfigOpt = None,
         as_json: JsonOpt = False) -> None:
    """Show a stored close of a day (exits 1 when it had flagged mismatches)."""
    from lockers.station_ledger import DailyClose

    the_day = day or _today()

    async def work(cfg: Any, ledger: Any) -> tuple[Any, list[Any]]:
        return cfg, await DailyClose(ledger, {}).versions(the_day)

    cfg, versions = _with_db(config, as_json, work)
    chosen = [r for r in versions if version is None or r.version == version]
    if not chosen:
        fail(f"no daily close of {the_day}" + (f" version {version}" if version else "")
             + (f" (versions: {', '.join(str(r.version) for r in versions)})" if versions else ""), as_json)
    _deliver(cfg, chosen[-1], as_json, csv_file, print_slip)


@app.command("top-up")
def top_up(amount_yuan: Annotated[str, typer.Option("--amount-yuan", help="money paid in, yuan (at most 2 decimals)")],
           staff: Annotated[str, typer.Option("--staff", help="the staff login who paid it in")],
           reference: Annotated[str, typer.Option("--reference", help="slip or transfer number")],
           config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Record a top-up of the station's prepaid balance by a named staff member."""
    from lockers.errors import InvalidInput
    from lockers.station_ledger import yuan_to_fen

    try:
        fen = yuan_to_fen(amount_yuan)
    except InvalidInput as err:
        fail(str(err), as_json)

    async def work(cfg: Any, ledger: Any) -> Any:
        return await ledger.top_up(fen, staff, reference)

    entry = _with_db(config, as_json, work)
    emit({"amount_fen": entry.amount_fen, "balance_fen": entry.balance_after_fen, "staff": entry.staff_login,
          "reference": entry.reference, "day": entry.day}, as_json,
         lambda d: f"topped up {_yuan(d['amount_fen'])} yuan by {d['staff']} ({d['reference']}); "
                   f"balance {_yuan(d['balance_fen'])} yuan")


@app.command("balance")
def balance(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The station's prepaid balance now."""
    async def work(cfg: Any, ledger: Any) -> int:
        return await ledger.balance()

    fen = _with_db(config, as_json, work)
    emit({"balance_fen": fen}, as_json, lambda d: f"prepaid balance {_yuan(d['balance_fen'])} yuan")
