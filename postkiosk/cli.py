"""The ``postkiosk`` command line (typer + rich)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from postkiosk import config as config_mod

app = typer.Typer(help="postkiosk: the controller of a community postal service point.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
sim_app = typer.Typer(help="Wire-level device simulators.", no_args_is_help=True)
admin_app = typer.Typer(help="Station administration.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
journal_app = typer.Typer(help="The custody event journal.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(admin_app, name="admin")
app.add_typer(config_app, name="config")
app.add_typer(journal_app, name="journal")

from postkiosk.diag import app as diag_app  # noqa: E402  (after the groups above, like them)

app.add_typer(diag_app, name="diag")
from postkiosk.cli_close import app as close_app  # noqa: E402

app.add_typer(close_app, name="close")
console = Console()

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="station TOML file "
                                                   "(default: $POSTKIOSK_CONFIG, else the built-in demo)")]


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    from postkiosk import logs

    logs.install()  # ID numbers, mobiles and payment codes masked in every record (T-E1)


async def _serve(app_, host: str, port: int, on_ready=None, web=None) -> None:
    import uvicorn

    tls = {}
    if web is not None and web.tls_certfile is not None:
        tls = {"ssl_certfile": str(web.tls_certfile), "ssl_keyfile": str(web.tls_keyfile)}
    # SSE streams of an open kiosk page never end by themselves: give them 3 s at shutdown.
    server = uvicorn.Server(uvicorn.Config(app_, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=3, **tls))
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started and on_ready:
        on_ready()
    await task


@app.command()
def run(config: ConfigOpt = None, host: Annotated[Optional[str], typer.Option(help="listen address")] = None,
        port: Annotated[Optional[int], typer.Option(help="listen port")] = None,
        verbose: bool = False) -> None:
    """Run the kiosk. With no configuration it runs the demo: simulated lock boards, a SQLite file under
    var/, the web UI on http://127.0.0.1:8080 and the simulated wall at /sim."""
    _logging(verbose)
    cfg = config_mod.load(config)
    host = host or cfg.web.host
    port = port or cfg.web.port
    if not config_mod.is_loopback(host) and cfg.web.tls_certfile is None:
        console.print(f"[bold red]error:[/] listening on {host} exposes the kiosk beyond this machine; "
                      "set web.tls_certfile and web.tls_keyfile first", highlight=False)
        raise typer.Exit(2)

    async def main() -> None:
        if cfg.is_demo:
            from postkiosk.demo import DemoStation, ensure_demo_courier, ensure_demo_staff, ensure_demo_technician

            credential = ensure_demo_courier(cfg)
            technician = ensure_demo_technician(cfg)
            staff = ensure_demo_staff(cfg)
            demo = DemoStation(cfg)
            urls = await demo.start_simulators()
            web = demo.app(urls)

            def banner() -> None:
                console.print(f"[bold green]postkiosk is running[/] ({cfg.source})")
                console.print(f"  kiosk:            http://{host}:{port}/")
                console.print(f"  simulated wall:   http://{host}:{port}/sim   (open and close doors, put parcels in)")
                console.print(f"  API documentation: http://{host}:{port}/docs")
                for name, url in urls.items():
                    console.print(f"  lock bank {name}:      Kerong CU16 simulator on {url}")
                for name, sim in demo.device_sims.items():
                    console.print(f"  {name.replace('_', ' ') + ':':18}{type(sim.sim).__name__} on {sim.url}")
                console.print(f"  database:         {cfg.database.path}")
                console.print(f"  courier login:    number [bold]{credential.login}[/], PIN [bold]{credential.pin}[/]"
                              f"  ({'made just now' if credential.created_now else 'made on first run'};"
                              f" stored hashed, shown from {cfg.database.path.parent / 'demo-courier.txt'})")
                console.print(f"  technician page:  http://{host}:{port}/technician   login [bold]{technician.login}[/],"
                              f" password [bold]{technician.pin}[/]")
                console.print(f"  counter queue:    http://{host}:{port}/queue/staff   login [bold]{staff.login}[/],"
                              f" password [bold]{staff.pin}[/]")
                console.print("  Ctrl+C stops it.")

            try:
                await _serve(web, host, port, banner, cfg.web)
            finally:
                await demo.close_simulators()
        else:
            from postkiosk.service import Station

            station = Station(cfg)
            scheme = "https" if cfg.web.tls_certfile else "http"
            await _serve(station.app(), host, port,
                         lambda: console.print(f"postkiosk listening on {scheme}://{host}:{port}/ ({cfg.source})"),
                         cfg.web)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


@sim_app.command("lockboard")
def sim_lockboard(boards: Annotated[str, typer.Option(help="board addresses, comma separated")] = "0,1",
                  doors: Annotated[int, typer.Option(help="doors per board")] = 16,
                  polarity: Annotated[str, typer.Option(help="closed_is_1 or closed_is_0")] = "closed_is_1",
                  transport: Annotated[str, typer.Option(help="'pty' or 'tcp:HOST:PORT'")] = "pty",
                  baudrate: Annotated[Optional[int], typer.Option(help="default: the protocol's")] = None,
                  pace: Annotated[bool, typer.Option(help="send bytes at the baud rate")] = False,
                  http: Annotated[Optional[int], typer.Option(help="also serve the wall page on this port")] = None,
                  byte_order: Annotated[str, typer.Option(help="first_byte_first or last_byte_first")] =
                  "first_byte_first",
                  protocol: Annotated[str, typer.Option(help="kerong-cu16, kerong-cu12, cu48, generic-8a, "
                                                             "modbus-relay")] = "kerong-cu16") -> None:
    """Run a simulated lock bus as its own process (a pty or a TCP port) until Ctrl+C."""
    from simulators.registry import SIMULATORS, run_simulator

    if protocol not in SIMULATORS:
        raise typer.BadParameter(f"no simulator for {protocol!r}; available: {', '.join(sorted(SIMULATORS))}")
    addresses = tuple(int(b) for b in boards.split(",") if b.strip())

    async def main() -> None:
        from hal.lockbank import DEFAULT_BAUDRATE

        running = await run_simulator(protocol, addresses, doors, polarity, transport,
                                      baudrate=baudrate or DEFAULT_BAUDRATE[protocol],
                                      pace=pace, byte_order=byte_order)
        console.print(f"{protocol} simulator, boards {list(addresses)} x {doors} doors, {polarity}")
        console.print(f"url: [bold]{running.url}[/]")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server_task = None
        if http:
            from fastapi import FastAPI

            from simulators.wall import wall_router

            web = FastAPI(title="lock bus simulator")
            web.include_router(wall_router({"A": running.sim}))
            import uvicorn

            server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=http, log_level="warning"))
            server_task = asyncio.create_task(server.serve())
            console.print(f"wall page: http://127.0.0.1:{http}/sim")
        try:
            await stop.wait()
        finally:
            if server_task:
                server.should_exit = True
                await server_task
            await running.close()

    asyncio.run(main())


@admin_app.command("add-user")
def add_user(role: Annotated[str, typer.Option(help="courier, technician or staff")],
             login: Annotated[str, typer.Option(help="couriers: courier number, 4 to 12 digits; others: a login "
                                                     "like 'li.wei'")],
             name: Annotated[str, typer.Option(help="the person's name")],
             carrier: Annotated[str, typer.Option(help="couriers only: the carrier they work for")] = "",
             password_stdin: Annotated[bool, typer.Option("--password-stdin", help="technician and staff: read the "
                                                          "password from standard input instead of making one")] = False,
             config: ConfigOpt = None) -> None:
    """Create a named account; there are no default or shared ones. Couriers get a random 8-digit PIN,
    technicians and staff a random password (or their own with --password-stdin), shown only once."""
    from lockers import accounts
    from lockers.db import connect
    from lockers.errors import InvalidInput

    cfg = config_mod.load(config)
    if role == "courier":
        secret = f"{secrets.randbelow(10 ** 8):08d}"
    elif password_stdin:
        import sys

        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = secrets.token_urlsafe(12)
    conn = connect(cfg.database.path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            accounts.create_account(conn, role=role, login=login, name=name, carrier=carrier, secret=secret,
                                    now=time.time(), actor=f"admin:{_os_user()}")
        except InvalidInput as err:
            conn.execute("ROLLBACK")
            raise typer.BadParameter(str(err)) from None
        except Exception:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()
    who = f"{role} {login} ({name}{', ' + carrier if carrier else ''})"
    if role == "courier":
        console.print(f"{who} created; PIN [bold]{secret}[/] (shown only now)")
    elif password_stdin:
        console.print(f"{who} created with the given password")
    else:
        console.print(f"{who} created; password [bold]{secret}[/] (shown only now)")


@admin_app.command("list-users")
def list_users(config: ConfigOpt = None,
               json_: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every account: login, name, role, carrier, locked or not (never a secret)."""
    from rich.table import Table

    from lockers import accounts
    from lockers.db import connect

    cfg = config_mod.load(config)
    conn = connect(cfg.database.path)
    try:
        rows = accounts.list_accounts(conn)
    finally:
        conn.close()
    now = time.time()
    for row in rows:
        locked_until = row.pop("locked_until")
        row["locked"] = locked_until is not None and locked_until > now
    if json_:
        import json

        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("login", "name", "role", "carrier", "locked")
    for row in rows:
        table.add_row(row["login"], row["name"], row["role"], row["carrier"] or "-", "yes" if row["locked"] else "")
    console.print(table)


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container: the uid still says who
        import os

        return f"uid{os.getuid()}"


@config_app.command("sample")
def config_sample() -> None:
    """Print a commented station configuration to start from."""
    typer.echo(config_mod.sample_toml())


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Load and validate the configuration, then list the compartments it describes."""
    cfg = config_mod.load(config)
    console.print(f"configuration OK ({cfg.source}): {len(cfg.layout())} compartments in "
                  f"{len(cfg.banks)} bank(s); database {cfg.database.path}")


@journal_app.command("verify")
def journal_verify(config: ConfigOpt = None) -> None:
    """Check the hash chain of the event journal; exit 1 if any row was edited or removed."""
    from lockers import journal
    from lockers.db import connect

    cfg = config_mod.load(config)
    conn = connect(cfg.database.path)
    try:
        result = journal.verify(conn)
    finally:
        conn.close()
    if result.ok:
        console.print(f"journal OK: {result.rows} rows, chain intact")
    else:
        console.print(f"[red]journal BROKEN at row {result.first_bad_id}: {result.reason}[/]")
        raise typer.Exit(1)


def main() -> None:
    app()
