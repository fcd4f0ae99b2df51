"""Machinery shared by the wire-level lock-board simulators; each protocol adds only its firmware.

A protocol's simulator subclasses :class:`LockBusSimulator` and provides:

* :meth:`~LockBusSimulator.decode_request` (usually the codec's) and
  :meth:`~LockBusSimulator.handle` (request in, reply bytes or None out: the board firmware);
* :meth:`~LockBusSimulator._foreign_reply` (the same reply as if from another board), which the
  wrong-address fault uses.

Everything else lives here, the same for every protocol:

* state: :class:`SimState` (boards -> doors) and the hand actions a person at the wall performs;
* faults: :class:`Faults`, consumed reply by reply (drop, corrupt, garbage first, delay, split,
  wrong address, silence) by :meth:`~LockBusSimulator.reply_plan`;
* the wire log (:class:`WireEvent`) and observers for the wall page;
* transports: :class:`PtyTransport` (clients open ``transport.url``, the slave path) and
  :class:`TcpTransport` (clients open ``socket://127.0.0.1:PORT``), optionally paced at the baud rate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from firmware_bridge.bus import sleep_until
from simulators._device_sim import RunningSim, SimulatorBase, serve_transport
from simulators._endpoints import PtyEndpoint, TcpEndpoint, Write

log = logging.getLogger(__name__)


class SimActionRefused(ValueError):
    """A hand action that is physically impossible (a parcel into a closed compartment)."""


@dataclass
class SimDoor:
    closed: bool = True
    item: bool = False
    jammed: bool = False  # an unlock pulse does not open it
    pulses: int = 0  # unlock pulses this channel's solenoid received


@dataclass
class SimBoard:
    address: int
    doors: list[SimDoor]
    pulses: int = 0  # every solenoid pulse on this board
    pulse_ms: int = 500  # last value set by a pulse-time command


@dataclass
class SimState:
    """Everything the wall is.

    ``closed_is_1``: a lock bit 1 in a status bitmap means closed. ``first_byte_first``: channels
    1-8 sit in the first status byte (protocols whose bitmap layout is fixed ignore it).
    ``unlock_replies``: the boards answer unlock commands.
    """

    boards: dict[int, SimBoard]
    closed_is_1: bool = True
    unlock_replies: bool = False
    first_byte_first: bool = True


@dataclass
class Faults:
    """Misbehaviour for the next replies. Counters go down by one per reply they affect."""

    drop: int = 0  # replies swallowed (the command still takes effect)
    corrupt: int = 0  # replies with one bit flipped at ``corrupt_index``
    corrupt_index: int = 3
    garbage: deque[bytes] = field(default_factory=deque)  # sent before the next replies, one each
    delay: float = 0.0  # seconds before each of the next ``delay_count`` replies
    delay_count: int = 0
    split: int = 0  # replies sent in two parts, ``split_pause`` seconds apart
    split_pause: float = 0.005
    wrong_address: int = 0  # replies sent as if from another board (see ``_foreign_reply``)
    wrong_address_then_correct: bool = False  # ...followed by the right reply
    silent_boards: set[int] = field(default_factory=set)  # boards that ignore everything


@dataclass
class NoisyBus:
    """Random faults on every frame, each kind with probability ``rate`` (seeded, so a failing run
    can be replayed). Replies: dropped, duplicated, delayed by ``delay`` seconds (beyond the host's
    timeout), one bit flipped, truncated, or sent from another board. Requests on their way in:
    dropped, one bit flipped, or truncated. ``reset_rate``: the board reboots on a request (the
    request is lost and the board is deaf for ``reset_time`` seconds; its doors do not change)."""

    rate: float = 0.05
    seed: int = 0
    delay: float = 0.5
    reset_rate: float = 0.01
    reset_time: float = 0.05
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import random

        self.random = random.Random(self.seed)
        self.deaf_until = 0.0

    def hit(self, kind: str, rate: float | None = None) -> bool:
        if self.random.random() < (self.rate if rate is None else rate):
            self.counts[kind] = self.counts.get(kind, 0) + 1
            return True
        return False

    def flip(self, data: bytes) -> bytes:
        damaged = bytearray(data)
        damaged[self.random.randrange(len(damaged))] ^= 1 << self.random.randrange(8)
        return bytes(damaged)

    def cut(self, data: bytes) -> bytes:
        return data[: self.random.randrange(1, len(data))] if len(data) > 1 else b""


@dataclass(frozen=True)
class WireEvent:
    """Bytes on the simulated wire. ``direction`` "rx": host -> sim; "tx": sim -> host.

    Times are loop times in seconds: first and last byte seen (rx), or the start and end of the
    write including pacing (tx).
    """

    direction: str
    start: float
    end: float
    data: bytes


class LockBusSimulator(SimulatorBase):
    """A bus of simulated lock boards. ``boards``: the addresses that exist (others stay silent).

    Subclasses set :attr:`NAME`, :attr:`ADDRESSES`, :attr:`MAX_CHANNELS` and
    :attr:`DEFAULT_GARBAGE`, and implement :meth:`decode_request`, :meth:`handle` and
    :meth:`_foreign_reply`. ``baudrate`` only matters with ``pace=True``: each reply then takes
    ``len * 10 / baudrate`` seconds before it is written, like a real UART.

    Behaviour of the simulated wall: an unlock pulse on a closed door that is not jammed springs it
    open; it stays open until a person closes it. An unlock on an open door still counts a pulse.
    """

    NAME: ClassVar[str] = "lock board"
    ADDRESSES: ClassVar[range] = range(0, 16)
    MAX_CHANNELS: ClassVar[int] = 16
    DEFAULT_GARBAGE: ClassVar[bytes] = b"\xff\x00"

    def __init__(
        self,
        boards: Iterable[int],
        doors_per_board: int,
        *,
        closed_is_1: bool = True,
        unlock_replies: bool = False,
        first_byte_first: bool = True,
        baudrate: int = 19200,
        pace: bool = False,
        wire_log_size: int = 2000,
    ) -> None:
        if not 1 <= doors_per_board <= self.MAX_CHANNELS:
            raise ValueError(f"doors_per_board must be 1..{self.MAX_CHANNELS}, not {doors_per_board}")
        addresses = sorted(set(boards))
        for address in addresses:
            if address not in self.ADDRESSES:
                first, last = self.ADDRESSES[0], self.ADDRESSES[-1]
                raise ValueError(f"board address must be {first}..{last}, not {address}")
        super().__init__()
        self.state = SimState(
            boards={a: SimBoard(a, [SimDoor() for _ in range(doors_per_board)]) for a in addresses},
            closed_is_1=closed_is_1,
            unlock_replies=unlock_replies,
            first_byte_first=first_byte_first,
        )
        self.faults = Faults()
        self.baudrate = baudrate
        self.pace = pace
        self.wire: deque[WireEvent] = deque(maxlen=wire_log_size)
        self.requests: deque[Any] = deque(maxlen=wire_log_size)  # every decoded request
        self.skipped_bytes = 0  # undecodable bytes received
        self.version = 0  # goes up on every state change
        self._listeners: list[Callable[[Any], None]] = []

    # -- what a protocol provides ------------------------------------------------------------

    def decode_request(self, buf: bytearray) -> tuple[int, Any]:
        """Board-side decoder: ``(consumed, request | None)`` like every codec."""
        raise NotImplementedError

    def handle(self, request: Any) -> bytes | None:
        """Apply ``request`` to the state and return the reply bytes, or None for silence.

        Faults are not applied here (see :meth:`reply_plan`).
        """
        raise NotImplementedError

    def _foreign_reply(self, reply: bytes) -> bytes | None:
        """``reply`` re-encoded as if another board had sent it; None if it cannot be decoded."""
        raise NotImplementedError

    # -- observers ---------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(sim)`` after every state change; returns the unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _changed(self) -> None:
        self.version += 1
        for callback in list(self._listeners):
            try:
                callback(self)
            except Exception:  # a broken page must not break the bus
                log.exception("simulator listener failed")

    # -- state -------------------------------------------------------------------------------

    def board(self, address: int) -> SimBoard:
        try:
            return self.state.boards[address]
        except KeyError:
            raise KeyError(f"no simulated board {address}; have {sorted(self.state.boards)}") from None

    def door(self, board: int, channel: int) -> SimDoor:
        doors = self.board(board).doors
        if not 0 <= channel < len(doors):
            raise KeyError(f"board {board} has channels 0..{len(doors) - 1}, not {channel}")
        return doors[channel]

    def lock_bits(self, board: int) -> list[bool]:
        """Raw lock bits of ``board`` as its status bitmap carries them (polarity applied)."""
        closed_bit = self.state.closed_is_1
        return [d.closed == closed_bit for d in self.board(board).doors]

    def _answers(self, board: int) -> bool:
        """True when ``board`` exists and is powered (not silenced by a fault)."""
        return board in self.state.boards and board not in self.faults.silent_boards

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data."""
        return {
            "version": self.version,
            "closed_is_1": self.state.closed_is_1,
            "unlock_replies": self.state.unlock_replies,
            "silent_boards": sorted(self.faults.silent_boards),
            "boards": [
                {
                    "address": b.address,
                    "pulses": b.pulses,
                    "doors": [
                        {
                            "channel": i,
                            "closed": d.closed,
                            "item": d.item,
                            "jammed": d.jammed,
                            "pulses": d.pulses,
                        }
                        for i, d in enumerate(b.doors)
                    ],
                }
                for b in self.state.boards.values()
            ],
        }

    def _pulse(self, board: int, channel: int) -> None:
        """The solenoid of ``channel`` fires once. Never gated on the door sensor (§1.9)."""
        sim_board = self.state.boards[board]
        sim_board.pulses += 1
        if channel >= len(sim_board.doors):
            return  # a channel with no lock wired
        door = sim_board.doors[channel]
        door.pulses += 1
        if door.closed and not door.jammed:
            door.closed = False

    def _schedule(self, seconds: float, board: int, channel: int) -> None:
        """A delayed unlock: pulse ``channel`` after ``seconds`` (cancelled by :meth:`close`)."""

        def fire() -> None:
            self._pulse(board, channel)
            self._changed()

        self._call_later(seconds, fire)

    # -- hand actions: what a person at the wall does ----------------------------------------

    def open_door(self, board: int, channel: int) -> None:
        """Pull a door open by hand (after an unlock, or with the service key)."""
        self.door(board, channel).closed = False
        self._changed()

    def close_door(self, board: int, channel: int) -> None:
        self.door(board, channel).closed = True
        self._changed()

    def put_item(self, board: int, channel: int, *, force: bool = False) -> None:
        """Put a parcel in. Refused when the door is closed unless ``force``."""
        door = self.door(board, channel)
        if door.closed and not force:
            raise SimActionRefused(f"board {board} channel {channel} is closed")
        door.item = True
        self._changed()

    def remove_item(self, board: int, channel: int, *, force: bool = False) -> None:
        """Take the parcel out. Refused when the door is closed unless ``force``."""
        door = self.door(board, channel)
        if door.closed and not force:
            raise SimActionRefused(f"board {board} channel {channel} is closed")
        door.item = False
        self._changed()

    def set_jammed(self, board: int, channel: int, jammed: bool = True) -> None:
        self.door(board, channel).jammed = jammed
        self._changed()

    def set_polarity(self, closed_is_1: bool) -> None:
        self.state.closed_is_1 = closed_is_1
        self._changed()

    def set_byte_order(self, first_byte_first: bool) -> None:
        """Where channels 1-8 go in a multi-byte status bitmap (ignored by fixed layouts)."""
        self.state.first_byte_first = first_byte_first
        self._changed()

    # -- faults ------------------------------------------------------------------------------

    def drop_replies(self, n: int = 1) -> None:
        self.faults.drop += n

    def corrupt_replies(self, n: int = 1, index: int = 3) -> None:
        """Flip bit 0 of byte ``index`` in the next ``n`` replies (the checksum no longer matches)."""
        self.faults.corrupt += n
        self.faults.corrupt_index = index

    def garbage_before_reply(self, data: bytes | None = None, n: int = 1) -> None:
        """Send ``data`` (default: :attr:`DEFAULT_GARBAGE`, which holds a false header) before
        each of the next ``n`` replies."""
        chunk = self.DEFAULT_GARBAGE if data is None else bytes(data)
        self.faults.garbage.extend([chunk] * n)

    def delay_replies(self, seconds: float, n: int = 1) -> None:
        self.faults.delay = seconds
        self.faults.delay_count = n

    def split_replies(self, n: int = 1, pause: float = 0.005) -> None:
        self.faults.split += n
        self.faults.split_pause = pause

    def answer_from_wrong_address(self, n: int = 1, *, then_correct: bool = False) -> None:
        """Make the next ``n`` replies carry another board's address; ``then_correct`` also sends the right one."""
        self.faults.wrong_address += n
        self.faults.wrong_address_then_correct = then_correct

    def stop_answering(self, board: int | None = None) -> None:
        """``board`` (or every board) ignores all requests, as if unpowered: no reply, no pulse."""
        self.faults.silent_boards |= set(self.state.boards) if board is None else {board}
        self._changed()

    def resume_answering(self, board: int | None = None) -> None:
        if board is None:
            self.faults.silent_boards.clear()
        else:
            self.faults.silent_boards.discard(board)
        self._changed()

    def clear_faults(self) -> None:
        self.faults = Faults()
        self._changed()

    def noisy(self, noise: NoisyBus | None) -> None:
        """Switch random faults on (a :class:`NoisyBus`) or off (None)."""
        self.noise = noise

    def request_noise(self, data: bytes, now: float) -> bytes:
        """What of the host's bytes the boards receive on a noisy bus."""
        noise = getattr(self, "noise", None)
        if noise is None or not data:
            return data
        if now < noise.deaf_until:
            return b""
        if noise.hit("board_reset", noise.reset_rate):
            noise.deaf_until = now + noise.reset_time
            return b""
        if noise.hit("request_dropped"):
            return b""
        if noise.hit("request_bit_flip"):
            data = noise.flip(data)
        if noise.hit("request_truncated"):
            data = noise.cut(data)
        return data

    def reply_plan(self, reply: bytes | None) -> list[tuple[float, bytes]]:
        """Turn one reply into ``(pause_before, chunk)`` steps, consuming the pending faults."""
        if reply is None:
            return []
        noise = getattr(self, "noise", None)
        if noise is not None:
            return self._noisy_plan(reply, noise)
        f = self.faults
        if f.drop:
            f.drop -= 1
            return []
        chunks: list[bytes] = []
        if f.wrong_address:
            f.wrong_address -= 1
            foreign = self._foreign_reply(reply)
            if foreign is not None:
                chunks.append(foreign)
                if not f.wrong_address_then_correct:
                    reply = b""
        if f.corrupt and reply:
            f.corrupt -= 1
            corrupted = bytearray(reply)
            corrupted[f.corrupt_index % len(corrupted)] ^= 0x01
            reply = bytes(corrupted)
        if reply:
            chunks.append(reply)
        steps: list[tuple[float, bytes]] = []
        pause = 0.0
        if f.delay_count:
            f.delay_count -= 1
            pause = f.delay
        if f.garbage:
            steps.append((pause, f.garbage.popleft()))
            pause = 0.0
        for chunk in chunks:
            if f.split and len(chunk) > 1:
                f.split -= 1
                half = len(chunk) // 2
                steps += [(pause, chunk[:half]), (f.split_pause, chunk[half:])]
            else:
                steps.append((pause, chunk))
            pause = 0.0
        return steps

    def _noisy_plan(self, reply: bytes, noise: NoisyBus) -> list[tuple[float, bytes]]:
        if noise.hit("reply_dropped"):
            return []
        chunks = [reply]
        if noise.hit("reply_wrong_address"):
            foreign = self._foreign_reply(reply)
            chunks = [foreign] if foreign is not None else chunks
        if noise.hit("reply_bit_flip"):
            chunks = [noise.flip(c) for c in chunks]
        if noise.hit("reply_truncated"):
            chunks = [noise.cut(c) for c in chunks]
        if noise.hit("reply_duplicated"):
            chunks = chunks + chunks
        pause = noise.delay if noise.hit("reply_delayed") else 0.0
        return [(pause if i == 0 else 0.0, c) for i, c in enumerate(chunks) if c]

    # -- wire log ------------------------------------------------------------------------------

    def wire_gaps(self) -> list[float]:
        """For each request after the first: seconds of silence before it (since the last byte
        of whatever was on the wire before), as the simulator saw it."""
        gaps = []
        line_free: float | None = None
        for event in self.wire:
            if event.direction == "rx" and line_free is not None:
                gaps.append(event.start - line_free)
            line_free = event.end if line_free is None else max(line_free, event.end)
        return gaps

    # -- transports ----------------------------------------------------------------------------

    async def serve_pty(self) -> PtyTransport:
        return await self._serve(PtyTransport(self))

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> TcpTransport:
        return await self._serve(TcpTransport(self, host, port))

    async def __aenter__(self) -> LockBusSimulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Session:
    """One connected host: reassembles requests, lets the simulator answer, writes replies in order."""

    def __init__(self, sim: LockBusSimulator, write: Write, name: str) -> None:
        self.sim = sim
        self.name = name
        self._write = write
        self._buf = bytearray()
        self._arrivals: list[float] = []  # loop time each byte of _buf arrived
        self._plans: asyncio.Queue[tuple[float, list[tuple[float, bytes]]]] = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._send_replies(), name=f"sim-{name}")

    def feed(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        data = self.sim.request_noise(data, now)
        self._buf += data
        self._arrivals += [now] * len(data)
        while self._buf:
            consumed, request = self.sim.decode_request(self._buf)
            if consumed == 0:
                break
            if request is None:
                self.sim.skipped_bytes += consumed
                log.debug("%s: skipped %s", self.name, bytes(self._buf[:consumed]).hex(" "))
            else:
                raw = bytes(self._buf[:consumed])
                self.sim.wire.append(WireEvent("rx", self._arrivals[0], self._arrivals[consumed - 1], raw))
                plan = self.sim.reply_plan(self.sim.handle(request))
                if plan and self.sim.pace:
                    # over a pty the request arrives at once; on a wire the board can only start
                    # answering once the request's last bit is in, so pacing covers it too
                    pause, chunk = plan[0]
                    plan[0] = (pause + len(raw) * 10 / self.sim.baudrate, chunk)
                if plan:
                    self._plans.put_nowait((now, plan))
            del self._buf[:consumed]
            del self._arrivals[:consumed]

    async def _send_replies(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Times are reckoned from the request's arrival, on absolute deadlines, so the
            # simulator's own timer slack does not stretch what it pretends the wire does.
            arrived, plan = await self._plans.get()
            at = max(arrived, loop.time())
            for pause, chunk in plan:
                start = at + pause
                at = start + (len(chunk) * 10 / self.sim.baudrate if self.sim.pace else 0.0)
                await sleep_until(at, loop.time)
                if not self._write(chunk):
                    log.warning("%s: reply lost", self.name)
                    continue
                self.sim.wire.append(WireEvent("tx", start, loop.time(), chunk))
                at = max(at, loop.time())

    async def close(self) -> None:
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass


class PtyTransport(PtyEndpoint):
    """The simulator on the master side of a pty; the code under test opens :attr:`url` (the slave path)."""

    def __init__(self, sim: LockBusSimulator) -> None:
        super().__init__(sim.NAME, lambda write, name: _Session(sim, write, name))
        self.sim = sim


class TcpTransport(TcpEndpoint):
    """The simulator as a TCP server; clients use ``socket://HOST:PORT`` (see :attr:`url`)."""

    def __init__(self, sim: LockBusSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(sim.NAME, lambda write, name: _Session(sim, write, name), host, port)
        self.sim = sim


@dataclass
class RunningLockboardSim(RunningSim[LockBusSimulator]):
    """A started simulator: clients connect to :attr:`url`; call :meth:`close` to stop it."""

    transport: PtyTransport | TcpTransport


def closed_is_1(polarity: Any) -> bool:
    """``"closed_is_1"``/``"closed_is_0"`` (or ``hal.lockbank.Polarity``) -> True/False."""
    name = str(getattr(polarity, "value", polarity))
    if name not in ("closed_is_1", "closed_is_0"):
        raise ValueError(f"polarity must be closed_is_1 or closed_is_0, not {polarity!r}")
    return name == "closed_is_1"


def first_byte_first(byte_order: Any) -> bool:
    """``"first_byte_first"``/``"last_byte_first"`` (or ``hal.lockbank.StatusByteOrder``) -> True/False."""
    name = str(getattr(byte_order, "value", byte_order))
    if name not in ("first_byte_first", "last_byte_first"):
        raise ValueError(f"byte order must be first_byte_first or last_byte_first, not {byte_order!r}")
    return name == "first_byte_first"


async def serve(sim: LockBusSimulator, transport: str = "pty") -> RunningLockboardSim:
    """Start ``sim`` on ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT" (PORT 0 picks a free one)."""
    return RunningLockboardSim(sim, await serve_transport(sim, transport))
