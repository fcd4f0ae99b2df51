"""``postkiosk diag bus-monitor``: a live protocol analyser for one RS-485 lock bus.

Plug a second adapter onto the A/B pair as a listener (it never transmits) and watch the
station's requests and the boards' replies, decoded as they happen::

    postkiosk diag bus-monitor --protocol kerong-cu16 --url /dev/ttyUSB1
        12.4 ms  -> request  board 0   status
        33.0 ms  <- reply    board 0   status_reply  lock_bits=1111111111111111 ...  after 20.5 ms

One line per frame: time since the monitor started (ms), direction, board, command, the decoded
content, and a flag when the checksum is wrong; bytes that decode as nothing are shown as garbage.
``--json`` prints one JSON object per line instead. The capture ends after ``--count`` records,
after ``--duration`` seconds, or on Ctrl+C, and a summary follows: frames per board, checksum
errors, garbage bytes, replies missing. Decoding is ``firmware_bridge.monitor``: it uses silent
gaps on the line (``--gap-ms``, default 3.5 characters) as frame boundaries.

Nothing is ever written to the bus.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from firmware_bridge.errors import LinkError, LinkOpenError
from firmware_bridge.generic_8a import status_bytes_for
from firmware_bridge.kerong_cu12 import DataPosition
from firmware_bridge.link import SerialLink
from firmware_bridge.monitor import Direction, Frame, Monitor, MonitorStats
from hal.lockbank import DEFAULT_BAUDRATE, Polarity, StatusByteOrder
from postkiosk.diag_common import JsonOpt, UrlOpt, console, emit, emit_line, err_console, fail
from postkiosk.diag_lock import DataPositionOpt, LockProtocol

_ARROW = {Direction.REQUEST: "->", Direction.REPLY: "<-", Direction.UNKNOWN: "??"}


def frame_line(frame: Frame, origin: float) -> str:
    """The human line of one record (rich markup, dynamic parts escaped)."""
    t_ms = (frame.time - origin) * 1000
    raw = escape(frame.raw_hex)
    if frame.is_garbage:
        return f"{t_ms:10.1f} ms  [red]!! garbage [/]{len(frame.raw)} byte(s): {raw}"
    board = "-" if frame.board is None else str(frame.board)
    check = "" if frame.checksum_ok else "  [bold red]BAD CHECKSUM[/]"
    return (f"{t_ms:10.1f} ms  {_ARROW[frame.direction]} {frame.direction.value:<8} board {board:<4} "
            f"{escape(frame.command):<20} {escape(frame.summary())}{check}  [dim]{raw}[/]")


def summary_text(summary: dict[str, Any]) -> str:
    def per_board(counts: dict[str, int]) -> str:
        return ", ".join(f"{b}: {n}" for b, n in counts.items()) or "none"

    return (
        f"{summary['frames']} frame(s): {summary['requests']} request(s), {summary['replies']} reply(ies), "
        f"{summary['unknown']} unknown direction\n"
        f"frames per board: {per_board(summary['frames_by_board'])}\n"
        f"checksum errors: {summary['checksum_errors']}; garbage: {summary['garbage_bytes']} byte(s) in "
        f"{summary['garbage_records']} record(s)\n"
        f"replies missing: {summary['replies_missing']} ({per_board(summary['replies_missing_by_board'])}); "
        f"replies matching no request: {summary['unmatched_replies']}"
    )


async def _capture(monitor: Monitor, url: str, baudrate: int, *, count: int | None, duration: float | None,
                   as_json: bool, shown: list[int]) -> None:
    """Read the bus and print records until ``count`` records, ``duration`` seconds, or cancellation."""
    loop = asyncio.get_running_loop()
    link = SerialLink(url, baudrate)
    try:
        await link.open()
    except LinkOpenError as err:
        fail(f"cannot open the bus: {err}", as_json)
    origin = loop.time()
    err_console.print(f"listening to {escape(monitor.protocol)} on {escape(url)} at {baudrate} baud "
                      f"(gap {monitor.gap * 1000:.2f} ms); Ctrl+C stops", highlight=False)
    deadline = None if duration is None else origin + duration
    poll = max(monitor.gap, 0.005)

    def show(frames: list[Frame]) -> bool:
        """Print ``frames``; True once ``count`` records have been shown."""
        for frame in frames:
            if count is not None and shown[0] >= count:
                return True
            if as_json:
                emit_line(frame.as_dict(origin), True, "")
            else:  # one line per frame whatever the width: the terminal may fold it, rich must not
                console.print(frame_line(frame, origin), highlight=False, soft_wrap=True)
            shown[0] += 1
        return count is not None and shown[0] >= count

    try:
        done = count is not None and count <= 0
        while not done:
            timeout = poll if deadline is None else min(poll, deadline - loop.time())
            if timeout <= 0:
                break
            data = await link.read(timeout)
            if data:
                done = show(monitor.feed(data, link.last_rx or loop.time()))
            else:
                done = show(monitor.idle(loop.time()))
        if not done:
            show(monitor.flush(loop.time()))
    finally:
        await link.close()


def bus_monitor(
    protocol: Annotated[LockProtocol, typer.Option(  # type: ignore[valid-type]
        "--protocol", help="the boards' protocol", show_default=False)],
    url: UrlOpt,
    baudrate: Annotated[Optional[int], typer.Option(help="line speed (default: the protocol's factory setting)",
                                                    show_default=False)] = None,
    count: Annotated[Optional[int], typer.Option(help="stop after this many records (frames and garbage)",
                                                 show_default=False)] = None,
    duration: Annotated[Optional[float], typer.Option(help="stop after this many seconds", show_default=False)]
    = None,
    as_json: JsonOpt = False,
    gap_ms: Annotated[Optional[float], typer.Option(help="silence (ms) that ends a frame (default: 3.5 "
                                                    "characters, at least 1.75 ms)", show_default=False)] = None,
    polarity: Annotated[Optional[Polarity], typer.Option(help="also show door states with this polarity",
                                                         show_default=False)] = None,
    byte_order: Annotated[StatusByteOrder, typer.Option(help="which status byte holds doors 0-7")] =
    StatusByteOrder.FIRST_BYTE_FIRST,
    doors: Annotated[Optional[int], typer.Option(help="8A/80 only: doors per board, to tell the model's "
                                                 "status length (default: try both)", show_default=False)] = None,
    data_position: Annotated[DataPositionOpt, typer.Option(help="CU12 only: where a frame carries its data")] =
    DataPositionOpt.AFTER_SUM,
    reply_window: Annotated[float, typer.Option(help="seconds a request waits for its reply before the reply "
                                                "counts as missing")] = 0.5,
) -> None:
    """Decode the traffic of a lock bus live, like a protocol analyser; never transmits."""
    name = protocol.value
    line_speed = baudrate or DEFAULT_BAUDRATE[name]
    try:
        monitor = Monitor(
            name,
            line_speed,
            gap=None if gap_ms is None else gap_ms / 1000,
            closed_is_1=None if polarity is None else polarity is Polarity.CLOSED_IS_1,
            first_byte_first=byte_order is StatusByteOrder.FIRST_BYTE_FIRST,
            status_bytes=status_bytes_for(doors) if name == "generic-8a" and doors else None,
            data_position=DataPosition(data_position.value),
            reply_window=reply_window,
        )
    except ValueError as err:
        fail(str(err), as_json)
    shown = [0]
    error: str | None = None
    try:
        asyncio.run(_capture(monitor, url, line_speed, count=count, duration=duration, as_json=as_json,
                             shown=shown))
    except KeyboardInterrupt:
        pass
    except LinkError as err:
        error = f"the bus failed: {err}"
    emit_summary(monitor.stats, as_json)
    if error:
        err_console.print(f"[bold red]error:[/] {escape(error)}", highlight=False)
        raise typer.Exit(1)


def emit_summary(stats: MonitorStats, as_json: bool) -> None:
    """The end-of-capture summary: one JSON line ``{"summary": ...}`` or a few lines of text."""
    summary = stats.as_dict()
    emit({"summary": summary}, as_json, lambda d: console.print(escape(summary_text(d["summary"])),
                                                                highlight=False))
