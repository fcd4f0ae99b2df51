"""Wire-level simulator of a weighing-scale indicator that streams ``ST,GS,+  1.234kg`` lines
(hardware-protocols.md §8), over a pty or TCP (``simulators._endpoints``).

It sends one line every ``1 / rate_hz`` seconds to every connected host, built with
``firmware_bridge.scale_lines.encode``, whether anyone listens or not (like the real thing).
:meth:`ScaleSimulator.put_weight` is a parcel put on the platter: the next ``settle_lines`` lines
are unstable (``US``), moving from the old weight towards the new one with a little jitter, then
the scale sends the weight as stable (``ST``). :meth:`~ScaleSimulator.remove` takes it off again. A
load over ``capacity_g`` gives overload lines (``OL``, dashes for digits).

Faults and odd behaviour: :meth:`~ScaleSimulator.hold_unstable` (someone leaning on the platter:
``US`` lines for ever), :meth:`~ScaleSimulator.stop_streaming` (silence), :meth:`~ScaleSimulator.send_raw`
and :meth:`~ScaleSimulator.send_reading` (injected bytes or lines; pause streaming first for exact
sequences), :meth:`~ScaleSimulator.unplug`.

Bytes a host sends are recorded in :attr:`ScaleSimulator.received` and not answered. A pty whose
slave nobody reads fills up; writes then fail, and the simulator stops writing to that endpoint for
a second each time rather than log every line.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from firmware_bridge.scale_lines import GRAMS_PER_UNIT, Kind, ScaleReading, Stability, Unit, encode
from simulators._device_sim import ByteStreamSim, RunningSim, Session, serve_transport
from simulators._endpoints import PtyEndpoint, TcpEndpoint

log = logging.getLogger(__name__)

BACKOFF = 1.0  # seconds without writing to an endpoint after a failed write


@dataclass
class ScaleSimState:
    grams: int = 0  # what lies on the platter
    capacity_g: int = 30000
    unit: Unit = Unit.KG
    decimals: int = 3
    kind: Kind = Kind.GROSS
    unstable_left: int = 0
    held_unstable: bool = False
    streaming: bool = True
    unplugged: bool = False
    lines_sent: int = 0


class ScaleSimulator(ByteStreamSim):
    """A simulated streaming scale. ``rate_hz``: lines a second; ``settle_lines``: unstable lines
    after each change; ``unit`` "kg", "g" or "lb" with ``decimals`` shown; ``seed`` for the jitter."""

    NAME = "scale"

    def __init__(self, *, rate_hz: float = 20.0, settle_lines: int = 5, capacity_g: int = 30000,
                 unit: str = "kg", decimals: int | None = None, kind: str = "GS", seed: int = 0) -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        super().__init__()
        unit_ = Unit(unit)
        if decimals is None:
            decimals = {Unit.KG: 3, Unit.G: 0, Unit.LB: 3}[unit_]
        self.rate_hz = rate_hz
        self.settle_lines = settle_lines
        self.state = ScaleSimState(capacity_g=capacity_g, unit=unit_, decimals=decimals, kind=Kind(kind))
        self.received = bytearray()
        self.sent: deque[bytes] = deque(maxlen=1000)  # the latest lines, for tests
        self._from_grams = 0
        self._random = random.Random(seed)
        self._quiet_until: dict[int, float] = {}
        self._streamer: asyncio.Task[None] | None = None

    # -- what a person does ----------------------------------------------------------------------

    def put_weight(self, grams: int) -> None:
        """The load on the platter becomes ``grams``; the reading settles after ``settle_lines`` lines."""
        self._from_grams = self.state.grams
        self.state.grams = int(grams)
        self.state.unstable_left = self.settle_lines

    def remove(self) -> None:
        """Take everything off the platter."""
        self.put_weight(0)

    def hold_unstable(self, held: bool = True) -> None:
        """Someone leans on the platter: only unstable lines until released."""
        self.state.held_unstable = held

    def stop_streaming(self) -> None:
        self.state.streaming = False

    def resume_streaming(self) -> None:
        self.state.streaming = True

    # -- lines -----------------------------------------------------------------------------------

    def reading(self, grams: int | None, stability: Stability) -> ScaleReading:
        """What the display shows for ``grams`` (None: no digits, as on overload)."""
        s = self.state
        if grams is None:
            return ScaleReading(stability, s.kind, None, s.unit)
        quantum = Decimal(1).scaleb(-s.decimals)
        value = (Decimal(grams) / GRAMS_PER_UNIT[s.unit]).quantize(quantum, rounding=ROUND_HALF_UP)
        return ScaleReading(stability, s.kind, value, s.unit)

    def next_reading(self) -> ScaleReading:
        """The line the scale sends next (advances the settling)."""
        s = self.state
        if s.grams > s.capacity_g:
            return self.reading(None, Stability.OVERLOAD)
        if s.held_unstable or s.unstable_left > 0:
            if s.unstable_left > 0:
                s.unstable_left -= 1
            done = 1 - s.unstable_left / max(self.settle_lines, 1)
            moving = self._from_grams + (s.grams - self._from_grams) * done
            jitter = self._random.choice((-1, 1)) * self._random.randint(3, 40)
            return self.reading(round(moving) + jitter, Stability.UNSTABLE)
        return self.reading(s.grams, Stability.STABLE)

    def send_reading(self, reading: ScaleReading) -> bytes:
        return self.send_raw(encode(reading))

    def send_raw(self, data: bytes) -> bytes:
        """Put ``data`` on the wire as is, to every connected host."""
        if self.state.unplugged:
            return data
        self.sent.append(bytes(data))
        loop = asyncio.get_running_loop()
        for transport in self._transports:
            key = id(transport)
            if self._quiet_until.get(key, 0.0) > loop.time():
                continue
            if not transport.write(bytes(data)):
                self._quiet_until[key] = loop.time() + BACKOFF
        return data

    async def _stream(self) -> None:
        period = 1.0 / self.rate_hz
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self.state.streaming and not self.state.unplugged:
                self.send_reading(self.next_reading())
                self.state.lines_sent += 1

    # -- transports ------------------------------------------------------------------------------

    def _feed(self, session: Session, data: bytes) -> None:
        self.received += data

    async def _serve(self, transport: PtyEndpoint | TcpEndpoint) -> PtyEndpoint | TcpEndpoint:
        await super()._serve(transport)
        if self._streamer is None:
            self._streamer = asyncio.get_running_loop().create_task(self._stream(), name="scale-sim")
        return transport

    async def close(self) -> None:
        if self._streamer is not None:
            self._streamer.cancel()
            try:
                await self._streamer
            except asyncio.CancelledError:
                pass
            self._streamer = None
        await super().close()


class RunningScaleSim(RunningSim[ScaleSimulator]):
    """A started scale simulator: hosts connect to :attr:`url`; :meth:`close` stops it."""


async def run_scale_sim(transport: str = "pty", **options: object) -> RunningScaleSim:
    """Start a scale simulator on ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT".
    ``options`` go to :class:`ScaleSimulator`."""
    sim = ScaleSimulator(**options)  # type: ignore[arg-type]
    return RunningScaleSim(sim, await serve_transport(sim, transport))
