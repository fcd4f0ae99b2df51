"""``postkiosk diag lock``: lock boards on the bench, on the technician's own adapter, no station needed.

The bus is described on the command line with the same names and values as the station
configuration and ``postkiosk sim lockboard`` (``--protocol``, ``--doors``, ``--polarity``,
``--byte-order``, ``--baudrate``)::

    postkiosk diag lock --protocol kerong-cu16 --url /dev/ttyUSB0 status --board 0
    postkiosk diag lock --protocol kerong-cu16 --url /dev/ttyUSB0 unlock --board 0 --door 3
    postkiosk diag lock --protocol generic-8a --url /dev/ttyUSB0 scan-bus --from 1 --to 32

``status`` and ``unlock`` go through the production driver (``hal.lockbank``), so what they show is
what the station would see: the same polarity mapping, the same never-retried unlock (and, on a
Modbus relay board, the same "all relays off" when the bus is opened). Doors are
0-based channels, as in the station configuration (door 0 = the board's lock 1). ``scan-bus``
sends each address one harmless status query (a Modbus board gets "read discrete input 0": no
relay is touched) with a short timeout and no retry, and lists the addresses that answer, with
what their reply tells of the model (door count, CU12 firmware version).

Every command has ``--json``. Exit codes: 0 done; 1 the unlock went out but the door could not be
read back; 2 the command could not run (port, no answer, bad option).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from firmware_bridge import cu48, generic_8a as g8a, kerong_cu12 as cu12, kerong_cu16 as cu16
from firmware_bridge.bus import Bus, BusStats
from firmware_bridge.errors import LinkError, LinkOpenError, LinkTimeout
from firmware_bridge.link import SerialLink
from firmware_bridge.monitor import RtuFrame, decode_rtu_reply, encode_rtu
from hal.errors import DeviceIOError, DeviceOpenError, DeviceUnavailable, HalError
from hal.lockbank import (
    BACKENDS,
    DEFAULT_BAUDRATE,
    BankProfile,
    BoardStatus,
    DoorState,
    LockBank,
    Polarity,
    StatusByteOrder,
    lock_bank,
)
from postkiosk.diag_common import JsonOpt, console, emit, err_console, fail

T = TypeVar("T")

app = typer.Typer(
    help="Lock boards on the bench: door status, one unlock, which addresses answer. "
    "Give the bus with --protocol and --url before the command.",
    no_args_is_help=True,
)

#: the protocol names of hal.lockbank.BACKENDS, as a choice for the command line
LockProtocol = enum.Enum(  # type: ignore[misc]
    "LockProtocol", [(name.replace("-", "_").upper(), name) for name in BACKENDS], type=str
)

#: doors per board when --doors is not given: the board model's channel count
DEFAULT_DOORS: dict[str, int] = {
    "kerong-cu16": 16,
    "kerong-cu12": 12,
    "cu48": 48,
    "generic-8a": 24,
    "modbus-relay": 8,
}

#: board addresses each protocol can carry (DIP switches; Modbus slave ids without broadcast 0)
ADDRESSES: dict[str, range] = {
    "kerong-cu16": range(0, 16),
    "kerong-cu12": range(0, 16),
    "cu48": range(0, 256),
    "generic-8a": range(1, 33),
    "modbus-relay": range(1, 248),
}


class DataPositionOpt(str, enum.Enum):
    """Where a CU12 frame carries its DATA (``firmware_bridge.kerong_cu12.DataPosition``)."""

    BEFORE_SUM = "before_sum"
    AFTER_SUM = "after_sum"


@dataclass(frozen=True)
class LockOptions:
    """The bus as given on the command line (the group options)."""

    protocol: str | None
    url: str | None
    baudrate: int | None
    doors: int | None
    polarity: Polarity
    byte_order: StatusByteOrder
    pulse_ms: int
    reply_timeout: float
    retries: int
    item_sensors: bool | None
    data_position: DataPositionOpt | None

    def require(self, as_json: bool) -> tuple[str, str]:
        """Protocol and URL, or end the command with a clear message."""
        if not self.protocol or not self.url:
            missing = " and ".join(f"--{name}" for name in ("protocol", "url") if not getattr(self, name))
            fail(f"give {missing} before the command, e.g. "
                 "'postkiosk diag lock --protocol kerong-cu16 --url /dev/ttyUSB0 status --board 0'", as_json)
        return self.protocol, self.url

    @property
    def line_speed(self) -> int:
        assert self.protocol is not None
        return self.baudrate or DEFAULT_BAUDRATE[self.protocol]

    @property
    def channels(self) -> int:
        assert self.protocol is not None
        return self.doors or DEFAULT_DOORS[self.protocol]

    def profile(self, board: int) -> BankProfile:
        """A one-board bank profile for ``board``."""
        assert self.protocol is not None and self.url is not None
        return BankProfile(
            protocol=self.protocol,
            url=self.url,
            boards=(board,),
            channels_per_board=self.channels,
            baudrate=self.line_speed,
            polarity=self.polarity,
            status_byte_order=self.byte_order,
            pulse_ms=self.pulse_ms,
            reply_timeout=self.reply_timeout,
            query_retries=self.retries,
            has_item_sensors=self.protocol == "kerong-cu16" if self.item_sensors is None else self.item_sensors,
        )


@app.callback()
def lock(
    ctx: typer.Context,
    protocol: Annotated[Optional[LockProtocol], typer.Option(  # type: ignore[valid-type]
        "--protocol", help="the boards' protocol (required)", show_default=False)] = None,
    url: Annotated[Optional[str], typer.Option(
        "--url", help="serial port or pyserial URL (required): /dev/ttyUSB0, /dev/serial/by-id/..., "
        "socket://host:port, rfc2217://host:port", show_default=False)] = None,
    baudrate: Annotated[Optional[int], typer.Option(help="line speed (default: the protocol's factory "
                                                    "setting)", show_default=False)] = None,
    doors: Annotated[Optional[int], typer.Option(help="doors per board (default: the model's channel count)",
                                                 show_default=False)] = None,
    polarity: Annotated[Polarity, typer.Option(help="which status bit means a closed door")] = Polarity.CLOSED_IS_1,
    byte_order: Annotated[StatusByteOrder, typer.Option(help="which status byte holds doors 0-7")] =
    StatusByteOrder.FIRST_BYTE_FIRST,
    pulse_ms: Annotated[int, typer.Option(help="unlock pulse in ms, for boards that take it")] = 500,
    reply_timeout: Annotated[float, typer.Option(help="seconds to wait for each reply")] = 0.3,
    retries: Annotated[int, typer.Option(help="extra attempts of a status query (an unlock is never "
                                              "repeated)")] = 2,
    item_sensors: Annotated[Optional[bool], typer.Option(
        "--item-sensors/--no-item-sensors", help="the board reports item sensors (default: only KR-CU16)",
        show_default=False)] = None,
    data_position: Annotated[Optional[DataPositionOpt], typer.Option(
        help="CU12 only: where a frame carries its data", show_default=False)] = None,
) -> None:
    """Lock boards on the bench: the bus is given here, the command after it."""
    ctx.obj = LockOptions(
        protocol=None if protocol is None else protocol.value,
        url=url,
        baudrate=baudrate,
        doors=doors,
        polarity=polarity,
        byte_order=byte_order,
        pulse_ms=pulse_ms,
        reply_timeout=reply_timeout,
        retries=retries,
        item_sensors=item_sensors,
        data_position=data_position,
    )


def _options(ctx: typer.Context) -> LockOptions:
    opts = ctx.find_object(LockOptions)
    assert opts is not None, "diag lock commands run under the lock group"
    return opts


def _bank(opts: LockOptions, board: int, as_json: bool) -> LockBank:
    """The production driver for one board, or end the command on a bad option."""
    protocol, _ = opts.require(as_json)
    if board not in ADDRESSES[protocol]:
        span = ADDRESSES[protocol]
        fail(f"{protocol} board addresses are {span[0]}..{span[-1]}, not {board}", as_json)
    try:
        profile = opts.profile(board)
        if protocol == "kerong-cu12" and opts.data_position is not None:
            from hal.lockbank_cu12 import KerongCU12Bank

            return KerongCU12Bank(profile, data_position=cu12.DataPosition(opts.data_position.value))
        return lock_bank(profile)
    except (ValueError, DeviceUnavailable) as err:
        fail(str(err), as_json)


def _run(coro: Awaitable[T], as_json: bool) -> T:
    """Run the command's coroutine; device errors end the command with exit code 2."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except DeviceOpenError as err:
        fail(f"cannot open the bus: {err}", as_json)
    except HalError as err:
        fail(str(err), as_json)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _raw_bit(state: DoorState, polarity: Polarity) -> int | None:
    """The status bit the board sent for a door in ``state`` (None when unknown)."""
    if state is DoorState.UNKNOWN:
        return None
    return int((state is DoorState.CLOSED) == (polarity is Polarity.CLOSED_IS_1))


def _status_data(opts: LockOptions, status: BoardStatus) -> dict[str, Any]:
    doors = []
    for channel, state in enumerate(status.doors):
        item = status.items[channel] if channel < len(status.items) else None
        doors.append({"door": channel, "state": state.value, "item": item, "raw_bit": _raw_bit(state, opts.polarity)})
    return {
        "protocol": opts.protocol,
        "url": opts.url,
        "board": status.board,
        "polarity": opts.polarity.value,
        "doors": doors,
        "open": [d["door"] for d in doors if d["state"] == DoorState.OPEN.value],
        "unknown": [d["door"] for d in doors if d["state"] == DoorState.UNKNOWN.value],
    }


_STATE_STYLE = {"open": "bold yellow", "closed": "green", "unknown": "red"}


def _render_status(data: dict[str, Any]) -> Table:
    has_items = any(d["item"] is not None for d in data["doors"])
    table = Table(title=f"{data['protocol']} board {data['board']} on {escape(data['url'])} ({data['polarity']})")
    table.add_column("door", justify="right")
    table.add_column("state")
    if has_items:
        table.add_column("item")
    table.add_column("raw bit", justify="right")
    for d in data["doors"]:
        row = [str(d["door"]), f"[{_STATE_STYLE[d['state']]}]{d['state']}[/]"]
        if has_items:
            row.append({True: "yes", False: "no", None: "-"}[d["item"]])
        row.append("-" if d["raw_bit"] is None else str(d["raw_bit"]))
        table.add_row(*row)
    table.caption = f"open: {', '.join(map(str, data['open'])) or 'none'}"
    return table


@app.command()
def status(
    ctx: typer.Context,
    board: Annotated[int, typer.Option("--board", help="board address (DIP switches / slave id)")],
    as_json: JsonOpt = False,
) -> None:
    """Read every door of one board: open or closed, the item sensor where the board has one, the raw bit."""
    opts = _options(ctx)
    bank = _bank(opts, board, as_json)

    async def main() -> BoardStatus:
        async with bank:
            return await bank.read_status(board)

    emit(_status_data(opts, _run(main(), as_json)), as_json, _render_status)


_REPLY_TEXT = {
    "acknowledged": "[green]acknowledged[/] (the board took the command)",
    "refused": "[bold red]refused[/] (the board answered that it did not pulse)",
    "unanswered": "[yellow]unanswered[/] (no reply: normal for some boards, else outcome unknown)",
}


@app.command()
def unlock(
    ctx: typer.Context,
    board: Annotated[int, typer.Option("--board", help="board address (DIP switches / slave id)")],
    door: Annotated[int, typer.Option("--door", help="door (0-based channel: door 0 is the board's lock 1)")],
    wait: Annotated[Optional[float], typer.Option(help="seconds between the pulse and reading the door back "
                                                  "(default: the pulse time)", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Pulse one lock once (never repeated), print the board's answer, then read the door back."""
    opts = _options(ctx)
    bank = _bank(opts, board, as_json)
    if not 0 <= door < opts.channels:
        fail(f"door must be 0..{opts.channels - 1} (see --doors), not {door}", as_json)
    settle = opts.pulse_ms / 1000 if wait is None else max(0.0, wait)

    async def main() -> tuple[str, BoardStatus | None, str | None]:
        async with bank:
            reply = await bank.unlock(board, door)
            await asyncio.sleep(settle)
            try:
                return reply.value, await bank.read_status(board), None
            except DeviceIOError as err:  # the pulse went out: report it, then the failed read
                return reply.value, None, str(err)

    reply, after, error = _run(main(), as_json)
    state = after.doors[door].value if after is not None else DoorState.UNKNOWN.value
    item = after.items[door] if after is not None and door < len(after.items) else None
    data = {"protocol": opts.protocol, "url": opts.url, "board": board, "door": door, "reply": reply,
            "door_state": state, "item": item, "readback_error": error}

    def render(d: dict[str, Any]) -> None:
        console.print(f"unlock board {board} door {door}: {_REPLY_TEXT[reply]}")
        console.print(f"door {door} {settle:g} s after the pulse: [{_STATE_STYLE[state]}]{state}[/]"
                      + ("" if item is None else f", item {'present' if item else 'absent'}"))
        if error:
            err_console.print(f"[bold red]error:[/] reading the door back failed: {escape(error)}", highlight=False)

    emit(data, as_json, render)
    if error:
        raise typer.Exit(1)


# -- scan-bus: one harmless query per address -----------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    """How to ask one address whether a board is there, and what its answer says."""

    request: Callable[[int], bytes]
    decoder: Callable[[bytearray], tuple[int, Any]]
    answers: Callable[[Any, int], bool]
    info: Callable[[Any], dict[str, Any]]


def _either(*decoders: Callable[[bytearray], tuple[int, Any]]) -> Callable[[bytearray], tuple[int, Any]]:
    """One decoder out of several: the first frame found; wait if any still needs bytes."""

    def decode(buf: bytearray) -> tuple[int, Any]:
        results = [d(buf) for d in decoders]
        for consumed, frame in results:
            if frame is not None:
                return consumed, frame
        if any(consumed == 0 for consumed, _ in results):
            return 0, None
        return min(consumed for consumed, _ in results), None

    return decode


def _g8a_info(reply: g8a.QueryAllReply) -> dict[str, Any]:
    if len(reply.data) == 3:
        return {"doors": 24, "model": "8/12/24-channel (3 status bytes)"}
    return {"doors": 50, "model": "50-channel (7 status bytes)"}


def _modbus_info(reply: RtuFrame) -> dict[str, Any]:
    if reply.is_exception:
        return {"doors": None, "model": f"answered exception {reply.data[0]:02X} to read discrete input 0"}
    return {"doors": None, "model": "Modbus RTU (door count not reported)"}


def _probe(opts: LockOptions) -> _Probe:
    protocol = opts.protocol
    if protocol == "kerong-cu16":
        return _Probe(lambda a: cu16.encode(cu16.status_request(a)), cu16.decode_reply,
                      lambda f, a: isinstance(f, cu16.StatusReply) and f.board == a,
                      lambda f: {"doors": cu16.LOCKS_PER_BOARD, "model": "KR-CU16 (16 locks, 16 item sensors)"})
    if protocol == "kerong-cu12":
        position = cu12.DataPosition((opts.data_position or DataPositionOpt.AFTER_SUM).value)
        return _Probe(lambda a: cu12.encode(cu12.status_request(a), data_position=position),
                      functools.partial(cu12.decode_reply, data_position=position),
                      lambda f, a: isinstance(f, cu12.Reply) and f.board == a and f.command is cu12.Command.STATUS,
                      lambda f: {"doors": cu12.LOCKS_PER_BOARD, "model": f"CU12 (status answered {f.ask.name.lower()})"})
    if protocol == "cu48":
        return _Probe(lambda a: cu48.encode(cu48.status_request(a)), cu48.decode_reply,
                      lambda f, a: isinstance(f, cu48.Reply) and f.board == a and (f.has_status or not f.ok),
                      lambda f: {"doors": cu48.LOCKS_PER_BOARD, "model": f"CU48 (status {f.status.name.lower()})"})
    if protocol == "generic-8a":
        decoder = _either(*(functools.partial(g8a.decode_reply, status_bytes=n) for n in g8a.STATUS_BYTE_COUNTS))
        return _Probe(lambda a: g8a.encode(g8a.query_all_request(a)), decoder,
                      lambda f, a: isinstance(f, g8a.QueryAllReply) and f.board == a, _g8a_info)
    if protocol == "modbus-relay":
        return _Probe(lambda a: encode_rtu(RtuFrame(a, 0x02, struct.pack(">HH", 0, 1))), decode_rtu_reply,
                      lambda f, a: isinstance(f, RtuFrame) and f.slave == a and f.function & 0x7F == 0x02,
                      _modbus_info)
    raise ValueError(f"no bus scan for {protocol!r}")


async def _cu12_firmware(bus: Bus, address: int, position: cu12.DataPosition, timeout: float) -> str | None:
    """The CU12's 0x8F version reply as "software X.Y, hardware X.Y", or None when it does not say."""
    try:
        reply = await bus.transact(
            cu12.encode(cu12.version_request(address), data_position=position),
            functools.partial(cu12.decode_reply, data_position=position),
            expect=lambda f: isinstance(f, cu12.Reply) and f.board == address and f.command is cu12.Command.VERSION,
            timeout=timeout,
        )
    except LinkTimeout:
        return None
    if not reply.ok or len(reply.data) != 2:
        return None
    software, hardware = (f"{b >> 4}.{b & 0x0F}" for b in reply.data)
    return f"software {software}, hardware {hardware}"


async def _scan(opts: LockOptions, addresses: list[int], timeout: float,
                advance: Callable[[int], None]) -> tuple[list[dict[str, Any]], BusStats]:
    assert opts.url is not None
    probe = _probe(opts)
    link = SerialLink(opts.url, opts.line_speed)
    try:
        await link.open()
    except LinkOpenError as err:
        raise DeviceOpenError(str(err)) from err
    bus = Bus(link, reply_timeout=timeout)
    found: list[dict[str, Any]] = []
    bus_log = logging.getLogger("firmware_bridge.bus")
    level = bus_log.level
    bus_log.setLevel(logging.ERROR)  # silence is the usual answer here, not worth a warning per address
    try:
        for address in addresses:
            try:
                reply = await bus.transact(probe.request(address), probe.decoder,
                                           expect=functools.partial(probe.answers, a=address), timeout=timeout)
            except LinkTimeout:
                pass
            else:
                entry: dict[str, Any] = {"address": address, **probe.info(reply), "firmware": None}
                if opts.protocol == "kerong-cu12":
                    position = cu12.DataPosition((opts.data_position or DataPositionOpt.AFTER_SUM).value)
                    entry["firmware"] = await _cu12_firmware(bus, address, position, timeout)
                found.append(entry)
            advance(address)
    except LinkError as err:
        raise DeviceIOError(f"bus {opts.url} failed during the scan: {err}") from err
    finally:
        bus_log.setLevel(level)
        await link.close()
    return found, bus.stats


@app.command("scan-bus")
def scan_bus(
    ctx: typer.Context,
    first: Annotated[int, typer.Option("--from", help="first address to ask")] = 0,
    last: Annotated[int, typer.Option("--to", help="last address to ask")] = 31,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each address")] = 0.1,
    as_json: JsonOpt = False,
) -> None:
    """Ask every address in --from..--to once (a status query, no retry) and list the boards that answer."""
    opts = _options(ctx)
    protocol, url = opts.require(as_json)
    valid = ADDRESSES[protocol]
    addresses = [a for a in range(first, last + 1) if a in valid]
    if not addresses:
        fail(f"{protocol} board addresses are {valid[0]}..{valid[-1]}; nothing to ask in {first}..{last}", as_json)
    skipped = (last - first + 1) - len(addresses)

    if as_json:
        found, stats = _run(_scan(opts, addresses, timeout, lambda _: None), as_json)
    else:
        progress = Progress(TextColumn("scanning {task.fields[address]}"), BarColumn(), MofNCompleteColumn(),
                            console=err_console, transient=True)
        with progress:
            task = progress.add_task("scan", total=len(addresses), address="")

            def advance(address: int) -> None:
                progress.update(task, advance=1, address=f"address {address}")

            found, stats = _run(_scan(opts, addresses, timeout, advance), as_json)

    data = {
        "protocol": protocol,
        "url": url,
        "baudrate": opts.line_speed,
        "from": addresses[0],
        "to": addresses[-1],
        "asked": len(addresses),
        "skipped_out_of_range": skipped,
        "found": found,
        "bus": stats.as_dict(),
    }

    def render(d: dict[str, Any]) -> Table:
        table = Table(title=f"{protocol} on {escape(url)} at {d['baudrate']} baud: addresses {d['from']}..{d['to']}")
        table.add_column("address", justify="right")
        table.add_column("doors", justify="right")
        table.add_column("model")
        table.add_column("firmware")
        for entry in d["found"]:
            table.add_row(str(entry["address"]), "-" if entry["doors"] is None else str(entry["doors"]),
                          entry["model"], entry["firmware"] or "-")
        note = f"; {skipped} address(es) outside {valid[0]}..{valid[-1]} not asked" if skipped else ""
        table.caption = f"{len(d['found'])} of {d['asked']} address(es) answered{note}"
        return table

    emit(data, as_json, render)
