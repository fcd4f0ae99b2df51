"""``postkiosk diag idcard``: the second-generation ID card reader (SAM module) on the bench.

``read`` waits for a card and shows what it says, masked (name first character, ID number last 4
characters, address cut to its district, no birth date). ``--show-personal-data`` shows every field
in full, and only after a ``personal_data_shown`` event naming the OS user, the command and the card
type (never the data) has been committed to the station journal; if the journal cannot be written
nothing personal is shown (PIPL: who looked at whose data must be answerable). The photo is never
shown or written (T-E4); ``has_photo`` says the card sent one. ``status`` asks the SAM module for its
status and its ID.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from postkiosk.diag_common import JsonOpt, UrlOpt, emit, fail

app = typer.Typer(help="Second-generation ID card reader (SAM module, 115200 8N1) on the bench.",
                  no_args_is_help=True)

BaudOpt = Annotated[int, typer.Option("--baudrate", help="line speed (115200 on every known SAM module)")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0, help="seconds to wait for a card on the pad")]
ShowOpt = Annotated[bool, typer.Option("--show-personal-data",
                                       help="show every field in full; this is recorded in the station journal")]
ConfigOpt = Annotated[str | None, typer.Option("--config", help="station TOML file (for the journal's database)")]

JOURNAL_KIND = "personal_data_shown"
COMMAND = "diag idcard read"


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


async def _journal_shown(config: str | None, card_type: str) -> int:
    """Commit the ``personal_data_shown`` event; returns its id. Raises on any storage problem."""
    from lockers import journal
    from lockers.db import Database
    from postkiosk import config as config_mod

    cfg = config_mod.load(config)
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
    url: UrlOpt,
    baudrate: BaudOpt = 115200,
    timeout: TimeoutOpt = 10.0,
    show_personal_data: ShowOpt = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a card on the reader and show what it says (masked unless --show-personal-data)."""
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
        event = asyncio.run(_journal_shown(config, card.card_type.value))
    except Exception as err:  # noqa: BLE001  (any failure to journal means: show nothing)
        fail(f"personal data not shown: the journal could not be written ({type(err).__name__}: {err})", as_json)
    emit({"masked": False, "journal_event": event, "card": card.personal_data()}, as_json,
         lambda d: _table(f"ID card, in full (journal event {event})", d["card"]))


@app.command("status")
def status(url: UrlOpt, baudrate: BaudOpt = 115200, as_json: JsonOpt = False) -> None:
    """Ask the SAM module for its status (11 FF) and its ID (12 FF)."""
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
