"""What every wire-level simulator shares around its device behaviour, so a simulator module holds
only its firmware and the hand actions of a person.

* :func:`parse_transport` and :func:`serve_transport`: the transport strings the runners, the demo
  and the CLI take ("pty", "tcp", "tcp:PORT", "tcp:HOST:PORT"; PORT 0 picks a free one).
* :class:`RunningSim`: what a runner returns: :attr:`~RunningSim.sim`, :attr:`~RunningSim.url`
  (what the host opens) and :meth:`~RunningSim.close`.
* :class:`SimulatorBase`: the endpoints a simulator serves on and its pending timers, both ended by
  :meth:`~SimulatorBase.close`.
* :class:`ByteStreamSim` and :class:`Session`: a simulator on the pty and TCP endpoints of
  ``simulators._endpoints``. Each host connection is a :class:`Session` (its write function and its
  input buffer) whose bytes go to the simulator's ``_feed(session, data)``; :func:`frames` cuts a
  buffer into frames with a codec's ``decode``.
* :class:`StatusReplySim`: a device that answers a status request with a status byte (the
  printers), and the faults on those replies (:class:`StatusFaults`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from simulators._endpoints import PtyEndpoint, TcpEndpoint, Write

TRANSPORTS = "'pty' or 'tcp:HOST:PORT'"


def parse_transport(transport: str) -> tuple[str, int] | None:
    """None for "pty"; ``(host, port)`` for "tcp", "tcp:PORT" or "tcp:HOST:PORT" (host 127.0.0.1 and
    port 0 when left out). Anything else is a ValueError."""
    kind, _, where = transport.partition(":")
    if kind == "pty" and not where:
        return None
    if kind == "tcp":
        host, _, port = where.rpartition(":") if ":" in where else ("", "", where)
        return host or "127.0.0.1", int(port or 0)
    raise ValueError(f"transport must be {TRANSPORTS}, not {transport!r}")


class Endpoint(Protocol):
    """Where hosts connect: a pty's slave path or ``socket://HOST:PORT``."""

    @property
    def url(self) -> str: ...

    async def close(self) -> None: ...


E = TypeVar("E", bound=Endpoint)


class Servable(Protocol[E]):
    async def serve_pty(self) -> E: ...

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> E: ...


async def serve_transport(sim: Servable[E], transport: str) -> E:
    """Start ``sim`` on ``transport`` (see :func:`parse_transport`); returns the endpoint."""
    where = parse_transport(transport)
    if where is None:
        return await sim.serve_pty()
    return await sim.serve_tcp(*where)


class Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


@dataclass
class RunningSim(Generic[S]):
    """A started simulator: hosts connect to :attr:`url`; :meth:`close` stops it."""

    sim: S
    transport: Endpoint = field(repr=False)

    @property
    def url(self) -> str:
        return self.transport.url

    async def close(self) -> None:
        await self.sim.close()


class SimulatorBase:
    """The endpoints a simulator serves on (:meth:`_serve`) and its timers (:meth:`_call_later`);
    :meth:`close` cancels the timers, then closes the endpoints. Subclasses that own more (a
    streaming task) end it in their own ``close`` before calling this one."""

    def __init__(self) -> None:
        self._transports: list[Any] = []
        self._timers: set[asyncio.TimerHandle] = set()

    async def _serve(self, transport: E) -> E:
        await transport.start()  # type: ignore[attr-defined]
        self._transports.append(transport)
        return transport

    def _call_later(self, delay: float, callback: Callable[[], object]) -> None:
        """Run ``callback`` in ``delay`` seconds, unless :meth:`close` comes first."""

        def fire() -> None:
            self._timers.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        transports, self._transports = self._transports, []
        for transport in transports:
            await transport.close()


class Session:
    """One connected host: :attr:`write` sends it bytes (False when they could not be sent);
    :attr:`buf` holds what it sent that is not a whole frame yet."""

    def __init__(self, sim: ByteStreamSim, write: Write, name: str) -> None:
        self.sim = sim
        self.write = write
        self.name = name
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.sim._feed(self, data)

    async def close(self) -> None:
        pass


class ByteStreamSim(SimulatorBase):
    """A simulator serving on :class:`PtyEndpoint` and :class:`TcpEndpoint`.

    Subclasses must set :attr:`NAME` and ``self.state`` (a dataclass with ``unplugged``) and
    implement :meth:`_feed`; they may set :attr:`SESSION` to a :class:`Session` subclass that keeps
    more per host. An unplugged simulator refuses hosts.
    """

    NAME: ClassVar[str] = "device"
    SESSION: ClassVar[type[Session]] = Session
    state: Any

    def _feed(self, session: Session, data: bytes) -> None:
        """``data`` arrived from the host of ``session``; answer through ``session.write``."""
        raise NotImplementedError

    def _connect(self, write: Write, name: str) -> Session | None:
        return None if self.state.unplugged else self.SESSION(self, write, name)

    def unplug(self) -> None:
        """Pull the cable: every host's connection drops and new ones are refused."""
        self.state.unplugged = True
        for transport in self._transports:
            transport.unplug()

    async def serve_pty(self) -> PtyEndpoint:
        return await self._serve(PtyEndpoint(self.NAME, self._connect))

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> TcpEndpoint:
        return await self._serve(TcpEndpoint(self.NAME, self._connect, host, port))


def frames(buf: bytearray, decode: Callable[[bytearray], tuple[int, Any]]) -> Iterator[Any]:
    """Cut whole frames off the front of ``buf`` with a codec's ``decode(buf) -> (consumed, frame |
    None)``, skipping what it throws away, until it needs more bytes. ``decode`` is called again
    after each frame is handled, so a frame that changes how the next one decodes takes effect."""
    while buf:
        consumed, frame = decode(buf)
        if not consumed:
            return
        del buf[:consumed]
        if frame is not None:
            yield frame


@dataclass
class StatusFaults:
    """Misbehaviour for the next status replies. Counters go down by one per reply they affect."""

    drop: int = 0  # status replies swallowed
    garbage: deque[bytes] = field(default_factory=deque)  # sent before the next replies, one each
    delay: float = 0.0  # seconds before each of the next ``delay_count`` replies
    delay_count: int = 0


class StatusReplySim(ByteStreamSim):
    """A :class:`ByteStreamSim` whose status replies go through :meth:`_send_status`, which applies
    :attr:`faults`. Subclasses may set :attr:`GARBAGE`, the default of :meth:`garbage_before_status`."""

    GARBAGE: ClassVar[bytes] = b"\xff"

    def __init__(self) -> None:
        super().__init__()
        self.faults = StatusFaults()

    def drop_status_replies(self, n: int = 1) -> None:
        self.faults.drop += n

    def garbage_before_status(self, data: bytes | None = None, n: int = 1) -> None:
        data = self.GARBAGE if data is None else data
        self.faults.garbage.extend([bytes(data)] * n)

    def delay_status_replies(self, seconds: float, n: int = 1) -> None:
        self.faults.delay = seconds
        self.faults.delay_count = n

    def _send_status(self, write: Write, reply: bytes) -> None:
        """Send ``reply`` (a status byte) unless dropped, after any garbage, perhaps late."""
        f = self.faults
        if f.drop:
            f.drop -= 1
            return
        if f.garbage:
            reply = f.garbage.popleft() + reply
        if f.delay_count:
            f.delay_count -= 1
            self._call_later(f.delay, lambda: write(reply))
            return
        write(reply)
