"""Wire-level simulator of a barcode/QR scanner in serial or USB-CDC mode (hardware-protocols.md §3).

A person holding a code under the scanner is :meth:`LineScannerSimulator.scan`: the line the scanner
would send (optional AIM identifier, UTF-8 data, suffix) goes to every connected host, built with
``firmware_bridge.scanner_lines.encode``. Hosts open :attr:`RunningLineScannerSim.url`: the slave side
of a pty, or ``socket://127.0.0.1:PORT``.

Why not ``simulators._serial_sim``'s transports: those are request/reply sessions bound to a lock
bus; a scanner speaks first and unprompted, so it needs only "write to whoever is connected", which
the two small transports below do.

Bytes the host sends (a Honeywell trigger ``16 54 0D``, menu commands) are recorded in
:attr:`LineScannerSimulator.received` and not answered (the simulated scanner is in presentation
mode). Faults: :meth:`~LineScannerSimulator.send_raw` (garbage, bytes that are not UTF-8, a code
split in parts) and :meth:`~LineScannerSimulator.unplug` (the USB cable is pulled: the pty master or
the TCP connections close, so the host's next read fails).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from dataclasses import dataclass, field

from firmware_bridge.scanner_lines import encode

log = logging.getLogger(__name__)

SUFFIXES = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n", "none": b""}
_LITERAL = {"\r": b"\r", "\n": b"\n", "\r\n": b"\r\n", "": b""}
QR = "]Q1"


@dataclass
class ScannerSimState:
    suffix: bytes = b"\r"
    aim_ids: bool = False
    unplugged: bool = False
    scans: int = 0


class LineScannerSimulator:
    """A simulated line scanner. ``suffix``: "cr", "lf", "crlf" or "none" (or the bytes);
    ``aim_ids``: prefix every code with its AIM symbology identifier (QR ``]Q1`` by default)."""

    NAME = "line scanner"

    def __init__(self, *, suffix: str | bytes = "cr", aim_ids: bool = False) -> None:
        self.state = ScannerSimState(suffix=_suffix(suffix), aim_ids=aim_ids)
        self.received = bytearray()
        self.sent: list[bytes] = []
        self._transports: list[_PtyScanner | _TcpScanner] = []

    def scan(self, text: str, symbology: str | None = None, suffix: str | bytes | None = None) -> bytes:
        """A person holds a code reading ``text`` under the scanner. ``symbology`` is sent only when
        AIM ids are on (default ``]Q1``); ``suffix`` overrides the configured one for this code.
        Returns the bytes sent."""
        if self.state.aim_ids:
            symbology = symbology or QR
        else:
            symbology = None
        data = encode(text, symbology=symbology, suffix=self.state.suffix if suffix is None else _suffix(suffix))
        self.state.scans += 1
        self.send_raw(data)
        return data

    def send_raw(self, data: bytes) -> None:
        """Put ``data`` on the wire as is (garbage, undecodable bytes, half a code)."""
        if self.state.unplugged:
            log.info("%s is unplugged: %d bytes go nowhere", self.NAME, len(data))
            return
        self.sent.append(bytes(data))
        for transport in self._transports:
            transport.write(bytes(data))

    def unplug(self) -> None:
        """Pull the cable: every connection drops and nothing is sent any more."""
        self.state.unplugged = True
        for transport in self._transports:
            transport.unplug()

    def _received(self, data: bytes) -> None:
        self.received += data

    async def serve_pty(self) -> _PtyScanner:
        transport = _PtyScanner(self)
        await transport.start()
        self._transports.append(transport)
        return transport

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> _TcpScanner:
        transport = _TcpScanner(self, host, port)
        await transport.start()
        self._transports.append(transport)
        return transport

    async def close(self) -> None:
        transports, self._transports = self._transports, []
        for transport in transports:
            await transport.close()


def _suffix(suffix: str | bytes) -> bytes:
    if isinstance(suffix, bytes):
        return suffix
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix in _LITERAL:
        return _LITERAL[suffix]
    raise ValueError(f"suffix must be one of {', '.join(SUFFIXES)}, not {suffix!r}")


class _PtyScanner:
    """The scanner on the master side of a pty; the host opens :attr:`url` (the slave path)."""

    def __init__(self, sim: LineScannerSimulator) -> None:
        self.sim = sim
        self.url = ""
        self._master = -1
        self._slave = -1

    async def start(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(master)
            tty.setraw(slave)
            os.set_blocking(master, False)
            self.url = os.ttyname(slave)
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        # The slave stays open here too, so the master never sees EIO between host sessions.
        self._master, self._slave = master, slave
        asyncio.get_running_loop().add_reader(master, self._readable)
        log.info("%s simulator on %s", self.sim.NAME, self.url)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            log.warning("pty %s: %s", self.url, err)
            return
        if data:
            self.sim._received(data)

    def write(self, data: bytes) -> None:
        if self._master < 0:
            return
        try:
            written = os.write(self._master, data)
        except OSError as err:
            log.warning("pty %s: %s", self.url, err)
            return
        if written != len(data):
            log.warning("pty %s: wrote only %d of %d bytes", self.url, written, len(data))

    def unplug(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._master < 0:
            return
        asyncio.get_running_loop().remove_reader(self._master)
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1

    async def close(self) -> None:
        self._release()


class _TcpScanner:
    """The scanner as a TCP server; hosts use ``socket://HOST:PORT`` (see :attr:`url`)."""

    def __init__(self, sim: LineScannerSimulator, host: str, port: int) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("%s simulator on %s", self.sim.NAME, self.url)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.sim.state.unplugged:
            writer.close()
            return
        self._clients[task] = writer
        try:
            while data := await reader.read(4096):
                self.sim._received(data)
        except (ConnectionError, OSError) as err:
            log.info("tcp %s: %s", writer.get_extra_info("peername"), err)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            self._clients.pop(task, None)

    def write(self, data: bytes) -> None:
        for writer in self._clients.values():
            if not writer.is_closing():
                writer.write(data)

    def unplug(self) -> None:
        for writer in self._clients.values():
            writer.close()

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        clients = dict(self._clients)
        for writer in clients.values():
            writer.close()
        if clients:
            _, stuck = await asyncio.wait(clients, timeout=2.0)
            for task in stuck:
                task.cancel()
        await self._server.wait_closed()
        self._server = None


@dataclass
class RunningLineScannerSim:
    """A started scanner simulator: hosts connect to :attr:`url`; :meth:`close` stops it."""

    sim: LineScannerSimulator
    transport: _PtyScanner | _TcpScanner = field(repr=False)

    @property
    def url(self) -> str:
        return self.transport.url

    def scan(self, text: str, symbology: str | None = None, suffix: str | bytes | None = None) -> bytes:
        return self.sim.scan(text, symbology, suffix)

    async def close(self) -> None:
        await self.sim.close()


async def run_line_scanner_sim(transport: str = "pty", *, suffix: str | bytes = "cr",
                               aim_ids: bool = False) -> RunningLineScannerSim:
    """Start a scanner simulator on ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT"."""
    sim = LineScannerSimulator(suffix=suffix, aim_ids=aim_ids)
    kind, _, where = transport.partition(":")
    if kind == "pty" and not where:
        served: _PtyScanner | _TcpScanner = await sim.serve_pty()
    elif kind == "tcp":
        host, _, port = where.rpartition(":") if ":" in where else ("", "", where)
        served = await sim.serve_tcp(host or "127.0.0.1", int(port or 0))
    else:
        raise ValueError(f"transport must be 'pty' or 'tcp:HOST:PORT', not {transport!r}")
    return RunningLineScannerSim(sim, served)
