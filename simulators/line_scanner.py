"""Wire-level simulator of a barcode/QR scanner in serial or USB-CDC mode (hardware-protocols.md §3).

A person holding a code under the scanner is :meth:`LineScannerSimulator.scan`: the line the scanner
would send (optional AIM identifier, UTF-8 data, suffix) goes to every connected host, built with
``firmware_bridge.scanner_lines.encode``. Hosts open :attr:`RunningLineScannerSim.url`: the slave side
of a pty, or ``socket://127.0.0.1:PORT``.

It serves on the same pty and TCP endpoints as the lock simulators (``simulators._endpoints``); a
scanner speaks first and unprompted, so it writes through the endpoints rather than answering.

Bytes the host sends (a Honeywell trigger ``16 54 0D``, menu commands) are recorded in
:attr:`LineScannerSimulator.received` and not answered (the simulated scanner is in presentation
mode). Faults: :meth:`~LineScannerSimulator.send_raw` (garbage, bytes that are not UTF-8, a code
split in parts) and :meth:`~LineScannerSimulator.unplug` (the USB cable is pulled: the pty master or
the TCP connections close, so the host's next read fails).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from firmware_bridge.scanner_lines import encode
from simulators._device_sim import ByteStreamSim, RunningSim, Session, serve_transport
from simulators._endpoints import Write

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


class LineScannerSimulator(ByteStreamSim):
    """A simulated line scanner. ``suffix``: "cr", "lf", "crlf" or "none" (or the bytes);
    ``aim_ids``: prefix every code with its AIM symbology identifier (QR ``]Q1`` by default)."""

    NAME = "line scanner"

    def __init__(self, *, suffix: str | bytes = "cr", aim_ids: bool = False) -> None:
        super().__init__()
        self.state = ScannerSimState(suffix=_suffix(suffix), aim_ids=aim_ids)
        self.received = bytearray()
        self.sent: list[bytes] = []
        self.connections = 0  # hosts that connected so far (a pty counts once, at start)

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

    def _received(self, data: bytes) -> None:
        """Bytes a host sends the scanner (triggers, menu commands): recorded, never answered."""
        self.received += data

    def _feed(self, session: Session, data: bytes) -> None:
        self._received(data)

    def _connect(self, write: Write, name: str) -> Session | None:
        session = super()._connect(write, name)
        if session is not None:
            self.connections += 1
        return session


def _suffix(suffix: str | bytes) -> bytes:
    if isinstance(suffix, bytes):
        return suffix
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix in _LITERAL:
        return _LITERAL[suffix]
    raise ValueError(f"suffix must be one of {', '.join(SUFFIXES)}, not {suffix!r}")


class RunningLineScannerSim(RunningSim[LineScannerSimulator]):
    """A started scanner simulator: hosts connect to :attr:`url`; :meth:`close` stops it."""

    def scan(self, text: str, symbology: str | None = None, suffix: str | bytes | None = None) -> bytes:
        return self.sim.scan(text, symbology, suffix)


async def run_line_scanner_sim(transport: str = "pty", *, suffix: str | bytes = "cr",
                               aim_ids: bool = False) -> RunningLineScannerSim:
    """Start a scanner simulator on ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT"."""
    return await serve_scanner(LineScannerSimulator(suffix=suffix, aim_ids=aim_ids), transport)


async def serve_scanner(sim: LineScannerSimulator, transport: str = "pty") -> RunningLineScannerSim:
    """Start ``sim`` (this simulator or a subclass) on ``transport``: "pty", or "tcp:HOST:PORT"."""
    return RunningLineScannerSim(sim, await serve_transport(sim, transport))
