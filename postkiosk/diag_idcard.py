"""``postkiosk diag idcard``: the second-generation ID card reader (SAM module) on the bench.

The reader is given before the command (``diag lock``'s form) or after it; both work::

    postkiosk diag idcard --url /dev/ttyUSB0 read
    postkiosk diag idcard --url /dev/ttyUSB0 status

``read`` waits for a card and shows what it says, masked (name first character, ID number last 4
characters, address cut to its district, no birth date). ``--show-personal-data`` shows every field
in full, and only after a ``personal_data_shown`` event naming the OS user, the command and the card
type (never the data) has been committed to the station journal; if the journal cannot be written
nothing personal is shown (PIPL: who looked at whose data must be answerable). It therefore needs the
station's configuration (``--config`` or ``POSTKIOSK_CONFIG``), which names the station's database:
without one it is refused before the reader is opened, rather than journaling into a stray demo
database that nobody audits. The photo is never
shown or written (T-E4); ``has_photo`` says the card sent one. ``status`` asks the SAM module for its
status and its ID.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from postkiosk.diag_common import JsonOpt, emit, fail, pick_option

app = typer.Typer(help="Second-generation ID card reader (SAM module, 115200 8N1) on the bench. Give the "
                  "reader with --url before the command (or after it).", no_args_is_help=True)

UrlOpt = Annotated[Optional[str], typer.Option(
    "--url", help="the reader's serial port or pyserial URL (required): /dev/ttyUSB0, /dev/serial/by-id/..., "
    "socket://host:port", show_default=False)]
BaudOpt = Annotated[Optional[int], typer.Option(
    "--baudrate", help="line speed (115200 on every known SAM module) [default: 115200]", show_default=False)]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0, help="seconds to wait for a card on the pad")]
ShowOpt = Annotated[bool, typer.Option("--show-personal-data",
                                       help="show every field in full; this is recorded in the station journal")]
ConfigOpt = Annotated[str | None, typer.Option(
    "--config", help="station TOML file (default: $POSTKIOSK_CONFIG); --show-personal-data needs one, for the "
    "journal's database")]

JOURNAL_KIND = "personal_data_shown"
COMMAND = "diag idcard read"
DEFAULT_BAUDRATE = 115200
NEEDS_CONFIG = ("--show-personal-data is journaled in the station's database: give --config or set "
                "POSTKIOSK_CONFIG")


@dataclass(frozen=True)
class ReaderOptions:
    """The reader as given before the command (the group's options)."""

    url: str | None = None
    baudrate: int | None = None


@app.callback()
def _group(ctx: typer.Context, url: UrlOpt = None, baudrate: BaudOpt = None) -> None:
    """Second-generation ID card reader on the bench: the reader here, the command after it."""
    ctx.obj = ReaderOptions(url, baudrate)


def _device(ctx: typer.Context, url: str | None, baudrate: int | None, command: str,
            as_json: bool) -> tuple[str, int]:
    """The command's reader: options given after the command, else before it; --url is required."""
    group = ctx.find_object(ReaderOptions) or ReaderOptions()
    url = pick_option("--url", group.url, url, None, as_json)
    baudrate = pick_option("--baudrate", group.baudrate, baudrate, DEFAULT_BAUDRATE, as_json)
    if not url:
        fail(f"give --url, e.g. 'postkiosk diag idcard --url /dev/ttyUSB0 {command}'", as_json)
    return url, baudrate


def _station_config(config: str | None, as_json: bool) -> Any:
    """The station's configuration for the journal, or end the command (exit 2) before anything is read:
    the built-in demo configuration would journal into a database under ./var that no one audits."""
    from postkiosk import config as config_mod

    path = config or os.environ.get("POSTKIOSK_CONFIG")
    if not path:
        fail(NEEDS_CONFIG, as_json)
    try:
        return config_mod.load(path)
    except SystemExit as err:  # config.load's own message: not found, not TOML
        fail(f"personal data not shown: {err}", as_json)
    except ValueError as err:  # pydantic's ValidationError
        fail(f"personal data not shown: the configuration {path} is not valid: {err}", as_json)


def os_user() -> str:
    """The login name of whoever runs the command (the journal's actor)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid:{os.getuid()}"


def _reader(url: str, baudrate: int) -> Any:
    from hal.idcard import id_card_reader

    return id_card_reader("samv-serial", url=url, baudrate=baudrate)


async def _read(url: str, baudrate: int, timeout: float) -> tuple[Any, str | None]:
    """(card or None, error message or None)."""
    from hal.errors import DeviceOpenError, HalError
    from hal.idcard import CardReadFailed, CardRejected

    try:
        async with _reader(url, baudrate) as reader:
            return await reader.read_card(timeout), None
    except DeviceOpenError as err:
        return None, f"cannot open the reader: {err}"
    except CardReadFailed as err:
        return None, f"card not read, place it again and hold it still: {err}"
    except CardRejected as err:
        return None, f"card rejected: {err}"
    except HalError as err:
        return None, f"reader failed: {err}"


async def _journal_shown(cfg: Any, card_type: str) -> int:
    """Commit the ``personal_data_shown`` event to ``cfg``'s database; returns its id. Raises on any
    storage problem."""
    from lockers import journal
    from lockers.db import Database

    db = Database(cfg.database.path)
    try:
        await db.open()
        return await db.write(lambda conn: journal.append(
            conn, at=time.time(), kind=JOURNAL_KIND, actor=f"os-user:{os_user()}", command=COMMAND,
            card_type=card_type))
    finally:
        await db.close()


def _table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in rows.items():
        if value is not None:
            table.add_row(key, str(value))
    return table


@app.command("read")
def read(
    ctx: typer.Context,
    url: UrlOpt = None,
    baudrate: BaudOpt = None,
    timeout: TimeoutOpt = 10.0,
    show_personal_data: ShowOpt = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a card on the reader and show what it says (masked unless --show-personal-data, which
    needs the station's configuration for its journal)."""
    url, baudrate = _device(ctx, url, baudrate, "read", as_json)
    cfg = _station_config(config, as_json) if show_personal_data else None
    card, error = asyncio.run(_read(url, baudrate, timeout))
    if error:
        fail(error, as_json)
    if card is None:
        fail(f"no card on the reader within {timeout:g} s", as_json, code=1)
    if not show_personal_data:
        emit({"masked": True, "card": card.masked()}, as_json,
             lambda d: _table("ID card (masked; --show-personal-data to see everything, journaled)", d["card"]))
        return
    try:
        event = asyncio.run(_journal_shown(cfg, card.card_type.value))
    except Exception as err:  # noqa: BLE001  (any failure to journal means: show nothing)
        fail(f"personal data not shown: the journal could not be written ({type(err).__name__}: {err})", as_json)
    emit({"masked": False, "journal_event": event, "card": card.personal_data()}, as_json,
         lambda d: _table(f"ID card, in full (journal event {event})", d["card"]))


@app.command("status")
def status(ctx: typer.Context, url: UrlOpt = None, baudrate: BaudOpt = None, as_json: JsonOpt = False) -> None:
    """Ask the SAM module for its status (11 FF) and its ID (12 FF)."""
    url, baudrate = _device(ctx, url, baudrate, "status", as_json)
    from hal.errors import DeviceOpenError, HalError

    async def ask() -> dict[str, Any]:
        async with _reader(url, baudrate) as reader:
            sam = await reader.sam_status()
            out: dict[str, Any] = {"sam_status": f"0x{sam.status:02X}", "ok": sam.ok, "meaning": sam.meaning}
            try:
                out["sam_id"] = await reader.sam_id()
            except HalError as err:
                out["sam_id_error"] = str(err)
            out.update(reader.describe())
            return out

    try:
        result = asyncio.run(ask())
    except DeviceOpenError as err:
        fail(f"cannot open the reader: {err}", as_json)
    except HalError as err:
        fail(f"reader failed: {err}", as_json)
    emit(result, as_json, lambda d: _table("SAM module", d))
    if not result["ok"]:
        raise typer.Exit(1)
