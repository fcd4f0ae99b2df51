"""Wire-level simulator of an ESC/POS receipt printer (hardware-protocols.md §4.1-4.3, §4.5).

It reads the byte stream a host sends, over a pty or TCP (``simulators._endpoints``), with the
``firmware_bridge.escpos`` decoder, and turns it into paper: :attr:`EscPosPrinterSimulator.jobs`,
one :class:`PrintedJob` per cut, each a list of text lines (decoded from GB18030 in Chinese mode,
code page 437 outside it) and images (``GS v 0`` rasters as mode "1" PIL images; bands that follow
each other are joined into one image). A job not cut yet is :attr:`~EscPosPrinterSimulator.current`.

It answers ``DLE EOT n`` with status bytes built from its state (:class:`EscPosSimState`): paper
ok / near end / out, cover open, offline, cutter error, unrecoverable error, head too hot. Like a
real printer it answers real-time requests as the bytes arrive, even inside raster data
(``realtime_in_data``), which is why a driver must throw stale input away before asking; and it
answers while offline. While it cannot print (paper out, cover open, offline, an error), lines,
images and cuts that arrive are lost and counted in :attr:`EscPosSimState.lost_items`.

Chinese mode: ``FS &`` / ``FS .`` switch it; ``boot_chinese`` (the default, like most printers sold
in China) starts in it and ``ESC @`` returns to it, so python-escpos's bare GB18030 text prints too.

Faults: :meth:`~EscPosPrinterSimulator.drop_status_replies`, ``garbage_before_status``,
``delay_status_replies``, ``unsupported_status`` (a model without a near-end sensor never answers
``DLE EOT 4``), and :meth:`~EscPosPrinterSimulator.unplug`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from firmware_bridge import escpos
from firmware_bridge.escpos import Command, Op
from simulators._endpoints import PtyEndpoint, TcpEndpoint, Write

log = logging.getLogger(__name__)

PAPER = ("ok", "near_end", "out")


@dataclass
class EscPosSimState:
    """The printer as a person sees it. ``offline``: taken offline by other means than the causes
    below (a model that goes offline while the feed button is held). ``boot_chinese``: the mode after
    power-up and ``ESC @``. ``unsupported_status``: ``DLE EOT n`` requests it never answers."""

    paper: str = "ok"
    cover_open: bool = False
    offline: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    head_overheat: bool = False
    boot_chinese: bool = True
    realtime_in_data: bool = True
    unsupported_status: set[int] = field(default_factory=set)
    unplugged: bool = False
    lost_items: int = 0
    status_requests: int = 0

    @property
    def can_print(self) -> bool:
        return not (self.paper == "out" or self.cover_open or self.offline or self.cutter_error
                    or self.unrecoverable_error or self.head_overheat)


@dataclass
class PrintedJob:
    """Paper between two cuts: ``items`` are text lines (str) and images, top to bottom."""

    items: list[str | Image.Image] = field(default_factory=list)
    cut: str | None = None  # "full", "partial", or None while not cut
    feed_lines: int = 0

    @property
    def lines(self) -> list[str]:
        return [item for item in self.items if isinstance(item, str)]

    @property
    def images(self) -> list[Image.Image]:
        return [item for item in self.items if not isinstance(item, str)]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class StatusFaults:
    drop: int = 0  # status replies swallowed
    garbage: deque[bytes] = field(default_factory=deque)  # sent before the next replies, one each
    delay: float = 0.0
    delay_count: int = 0


class EscPosPrinterSimulator:
    """A simulated ESC/POS printer. ``paper``: "ok", "near_end" or "out"."""

    NAME = "ESC/POS printer"

    def __init__(self, *, paper: str = "ok", boot_chinese: bool = True, realtime_in_data: bool = True,
                 unsupported_status: set[int] | frozenset[int] = frozenset()) -> None:
        if paper not in PAPER:
            raise ValueError(f"paper must be one of {PAPER}, not {paper!r}")
        self.state = EscPosSimState(paper=paper, boot_chinese=boot_chinese, realtime_in_data=realtime_in_data,
                                    unsupported_status=set(unsupported_status))
        self.faults = StatusFaults()
        self.jobs: list[PrintedJob] = []
        self.current = PrintedJob()
        self.received = bytearray()
        self.commands: Counter[Op] = Counter()
        self._chinese = boot_chinese
        self._line = ""
        self._line_started = False
        self._raster_open = False  # the last command was a raster: the next band continues the image
        self._transports: list[PtyEndpoint | TcpEndpoint] = []
        self._timers: set[asyncio.TimerHandle] = set()

    # -- what a person does ----------------------------------------------------------------------

    def set_paper(self, paper: str) -> None:
        """"ok" (a fresh roll), "near_end" or "out"."""
        if paper not in PAPER:
            raise ValueError(f"paper must be one of {PAPER}, not {paper!r}")
        self.state.paper = paper

    def open_cover(self) -> None:
        self.state.cover_open = True

    def close_cover(self) -> None:
        self.state.cover_open = False

    def set_offline(self, offline: bool = True) -> None:
        self.state.offline = offline

    def set_error(self, *, cutter: bool | None = None, unrecoverable: bool | None = None,
                  head_overheat: bool | None = None) -> None:
        if cutter is not None:
            self.state.cutter_error = cutter
        if unrecoverable is not None:
            self.state.unrecoverable_error = unrecoverable
        if head_overheat is not None:
            self.state.head_overheat = head_overheat

    def unplug(self) -> None:
        """Pull the cable: every connection drops and new ones are refused."""
        self.state.unplugged = True
        for transport in self._transports:
            transport.unplug()

    # -- faults ----------------------------------------------------------------------------------

    def drop_status_replies(self, n: int = 1) -> None:
        self.faults.drop += n

    def garbage_before_status(self, data: bytes = b"\xff\x00", n: int = 1) -> None:
        self.faults.garbage.extend([bytes(data)] * n)

    def delay_status_replies(self, seconds: float, n: int = 1) -> None:
        self.faults.delay = seconds
        self.faults.delay_count = n

    # -- status ----------------------------------------------------------------------------------

    def status_flags(self, n: int) -> escpos.StatusByte:
        s = self.state
        errors = s.cutter_error or s.unrecoverable_error or s.head_overheat
        if n == 1:
            return escpos.PrinterState(offline=not s.can_print)
        if n == 2:
            return escpos.OfflineCause(cover_open=s.cover_open, paper_end_stop=s.paper == "out", error=errors)
        if n == 3:
            return escpos.ErrorCause(cutter_error=s.cutter_error, unrecoverable_error=s.unrecoverable_error,
                                     auto_recoverable_error=s.head_overheat)
        if n == 4:
            # an empty roll leaves the near-end sensor uncovered too
            return escpos.PaperSensor(near_end=s.paper != "ok", paper_end=s.paper == "out")
        raise ValueError(f"DLE EOT takes n = 1..4, not {n}")

    def status_byte(self, n: int) -> int:
        return escpos.encode_status(self.status_flags(n))

    def _answer_status(self, n: int, write: Write) -> None:
        if n not in (1, 2, 3, 4):
            return
        self.state.status_requests += 1
        if n in self.state.unsupported_status:
            return
        f = self.faults
        if f.drop:
            f.drop -= 1
            return
        reply = bytes([self.status_byte(n)])
        if f.garbage:
            reply = f.garbage.popleft() + reply
        if f.delay_count:
            f.delay_count -= 1
            loop = asyncio.get_running_loop()

            def send() -> None:
                self._timers.discard(handle)
                write(reply)

            handle = loop.call_later(f.delay, send)
            self._timers.add(handle)
            return
        write(reply)

    # -- paper -----------------------------------------------------------------------------------

    def _execute(self, command: Command, write: Write) -> None:
        self.commands[command.op] += 1
        op = command.op
        if op is not Op.RASTER:
            self._raster_open = False
        if op is Op.TEXT:
            codec = "gb18030" if self._chinese else "cp437"
            self._line += command.data.decode(codec, errors="replace")
            self._line_started = True
        elif op is Op.LINE_FEED:
            self._put(self._line)
            self._line, self._line_started = "", False
        elif op is Op.INIT:
            self._line, self._line_started = "", False
            self._chinese = self.state.boot_chinese
        elif op is Op.CHINESE_ON:
            self._chinese = True
        elif op is Op.CHINESE_OFF:
            self._chinese = False
        elif op is Op.FEED:
            self._flush_line()
            if self.state.can_print:
                self.current.feed_lines += command.args[0]
        elif op is Op.CUT:
            self._flush_line()
            if self.state.can_print:
                self.current.cut = "partial" if command.partial_cut else "full"
                self.jobs.append(self.current)
                self.current = PrintedJob()
            else:
                self.state.lost_items += 1
        elif op is Op.RASTER:
            self._flush_line()
            self._raster(command.image())
        elif op is Op.STATUS_REQUEST and not self.state.realtime_in_data:
            self._answer_status(command.args[0], write)

    def _flush_line(self) -> None:
        if self._line_started:
            self._put(self._line)
            self._line, self._line_started = "", False

    def _put(self, item: str | Image.Image) -> None:
        if self.state.can_print:
            self.current.items.append(item)
        else:
            self.state.lost_items += 1

    def _raster(self, image: Image.Image) -> None:
        if not self.state.can_print:
            self.state.lost_items += 1
            self._raster_open = False
            return
        items = self.current.items
        if self._raster_open and items and isinstance(items[-1], Image.Image) and items[-1].width == image.width:
            joined = np.vstack([np.asarray(items[-1], dtype=bool), np.asarray(image, dtype=bool)])
            items[-1] = Image.fromarray(joined)
        else:
            items.append(image)
        self._raster_open = True

    # -- transports ------------------------------------------------------------------------------

    def _connect(self, write: Write, name: str) -> _Session | None:
        return None if self.state.unplugged else _Session(self, write, name)

    async def serve_pty(self) -> PtyEndpoint:
        return await self._serve(PtyEndpoint(self.NAME, self._connect))

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> TcpEndpoint:
        return await self._serve(TcpEndpoint(self.NAME, self._connect, host, port))

    async def _serve(self, transport: PtyEndpoint | TcpEndpoint) -> PtyEndpoint | TcpEndpoint:
        await transport.start()
        self._transports.append(transport)
        return transport

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        transports, self._transports = self._transports, []
        for transport in transports:
            await transport.close()


class _Session:
    """One connected host: real-time requests answered as bytes arrive, commands decoded in order."""

    def __init__(self, sim: EscPosPrinterSimulator, write: Write, name: str) -> None:
        self.sim = sim
        self.name = name
        self.write = write
        self._buf = bytearray()
        self._tail = b""  # the last bytes, in case a DLE EOT n is split between two reads

    def feed(self, data: bytes) -> None:
        self.sim.received += data
        if self.sim.state.realtime_in_data:
            window = self._tail + data
            start = 0
            while (i := window.find(b"\x10\x04", start)) >= 0 and i + 2 < len(window):
                self.sim._answer_status(window[i + 2], self.write)
                start = i + 3
            self._tail = window[max(start, len(window) - 2):]
        self._buf += data
        while self._buf:
            consumed, command = escpos.decode(self._buf)
            if not consumed:
                break
            del self._buf[:consumed]
            if command is not None:
                self.sim._execute(command, self.write)

    async def close(self) -> None:
        pass


@dataclass
class RunningEscPosSim:
    """A started printer simulator: hosts open :attr:`url`; :meth:`close` stops it."""

    sim: EscPosPrinterSimulator
    transport: PtyEndpoint | TcpEndpoint = field(repr=False)

    @property
    def url(self) -> str:
        return self.transport.url

    async def close(self) -> None:
        await self.sim.close()


async def run_escpos_printer_sim(transport: str = "pty", **options: object) -> RunningEscPosSim:
    """Start an ESC/POS printer simulator on ``transport``: "pty", or "tcp", "tcp:PORT",
    "tcp:HOST:PORT". ``options`` go to :class:`EscPosPrinterSimulator`."""
    sim = EscPosPrinterSimulator(**options)  # type: ignore[arg-type]
    return RunningEscPosSim(sim, await serve(sim, transport))


async def serve(sim: EscPosPrinterSimulator, transport: str) -> PtyEndpoint | TcpEndpoint:
    kind, _, where = transport.partition(":")
    if kind == "pty" and not where:
        return await sim.serve_pty()
    if kind == "tcp":
        host, _, port = where.rpartition(":") if ":" in where else ("", "", where)
        return await sim.serve_tcp(host or "127.0.0.1", int(port or 0))
    raise ValueError(f"transport must be 'pty' or 'tcp:HOST:PORT', not {transport!r}")
