"""Wire-level simulator of a bus of Kerong KR-CU16 lock boards (hardware-protocols.md §1.1).

It speaks the real bytes through the codec in ``firmware_bridge.kerong_cu16`` over a pty or TCP,
so the production driver is tested unchanged. Three parts, kept apart:

* state: :class:`SimState` (boards -> doors), changed by :meth:`KerongCU16Simulator.handle` (a
  request from the wire) and by hand actions (what a person at the wall does);
* faults: :class:`Faults`, consumed reply by reply (drop, corrupt, garbage first, delay, split,
  wrong address, silence);
* transports: :class:`PtyTransport` (clients open ``transport.url``, the slave path) and
  :class:`TcpTransport` (clients open ``socket://127.0.0.1:PORT``).

Behaviour of the simulated wall: an unlock pulse on a closed door that is not jammed springs it
open; it stays open until a person closes it. An unlock on an open door still counts a pulse.
Boards the simulator does not have stay silent, as on a real bus. Unlocks get no reply by
default (not established for the real board); with ``unlock_replies=True`` the board answers
with a 0x35 status reply, which is a guess. Status-of-all (0x32), pulse time (0x37/0x38) and
baud (0x40) are accepted without a reply, because their reply layouts are not known.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from firmware_bridge import kerong_cu16 as cu16

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
    pulse_ms: int = 500  # last value set with 0x37


@dataclass
class SimState:
    """Everything the wall is. ``closed_is_1``: a lock bit 1 in the status reply means closed."""

    boards: dict[int, SimBoard]
    closed_is_1: bool = True
    unlock_replies: bool = False


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
    wrong_address: int = 0  # replies sent as if from board (address + 1) % 16
    wrong_address_then_correct: bool = False  # ...followed by the right reply
    silent_boards: set[int] = field(default_factory=set)  # boards that ignore everything


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


class _Transport(Protocol):
    url: str

    async def close(self) -> None: ...


class KerongCU16Simulator:
    """A bus of simulated KR-CU16 boards. ``boards``: board addresses (0..15) that exist.

    ``baudrate`` only matters with ``pace=True``: each reply then takes ``len * 10 / baudrate``
    seconds before it is written, like a real UART.
    """

    def __init__(
        self,
        boards: Iterable[int] = (0,),
        doors_per_board: int = 16,
        *,
        closed_is_1: bool = True,
        unlock_replies: bool = False,
        baudrate: int = 19200,
        pace: bool = False,
        wire_log_size: int = 2000,
    ) -> None:
        if not 1 <= doors_per_board <= cu16.LOCKS_PER_BOARD:
            raise ValueError(f"doors_per_board must be 1..16, not {doors_per_board}")
        addresses = sorted(set(boards))
        for address in addresses:
            if not 0 <= address <= 0x0F:
                raise ValueError(f"board address must be 0..15, not {address}")
        self.state = SimState(
            boards={a: SimBoard(a, [SimDoor() for _ in range(doors_per_board)]) for a in addresses},
            closed_is_1=closed_is_1,
            unlock_replies=unlock_replies,
        )
        self.faults = Faults()
        self.baudrate = baudrate
        self.pace = pace
        self.wire: deque[WireEvent] = deque(maxlen=wire_log_size)
        self.requests: deque[cu16.Request] = deque(maxlen=wire_log_size)  # every decoded request
        self.skipped_bytes = 0  # undecodable bytes received
        self.version = 0  # goes up on every state change
        self._listeners: list[Callable[[KerongCU16Simulator], None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._transports: list[_Transport] = []

    # -- observers ---------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[KerongCU16Simulator], None]) -> Callable[[], None]:
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

    def status_reply(self, board: int) -> cu16.StatusReply:
        """What ``board`` would answer to a status request now."""
        doors = self.board(board).doors
        closed_bit = self.state.closed_is_1
        return cu16.StatusReply.from_bits(
            board,
            [d.closed == closed_bit for d in doors],
            [d.item for d in doors],
        )

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

    # -- faults ------------------------------------------------------------------------------

    def drop_replies(self, n: int = 1) -> None:
        self.faults.drop += n

    def corrupt_replies(self, n: int = 1, index: int = 3) -> None:
        """Flip bit 0 of byte ``index`` in the next ``n`` replies (the checksum no longer matches)."""
        self.faults.corrupt += n
        self.faults.corrupt_index = index

    def garbage_before_reply(self, data: bytes = b"\xff\x00\x02\x00\x35\x13", n: int = 1) -> None:
        """Send ``data`` before each of the next ``n`` replies. The default holds a false STX header."""
        self.faults.garbage.extend([bytes(data)] * n)

    def delay_replies(self, seconds: float, n: int = 1) -> None:
        self.faults.delay = seconds
        self.faults.delay_count = n

    def split_replies(self, n: int = 1, pause: float = 0.005) -> None:
        self.faults.split += n
        self.faults.split_pause = pause

    def answer_from_wrong_address(self, n: int = 1, *, then_correct: bool = False) -> None:
        """Make the next ``n`` status replies carry address board+1; ``then_correct`` also sends the right one."""
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

    # -- the board firmware: request in, reply out (no I/O) -----------------------------------

    def handle(self, request: cu16.Request) -> bytes | None:
        """Apply ``request`` to the state and return the reply bytes, or None for silence.

        Faults are not applied here (see :meth:`reply_plan`).
        """
        self.requests.append(request)
        command = request.command
        if command is cu16.Command.STATUS_ALL:
            return None  # 0x36 layout unknown: a silent broadcast
        if request.board not in self.state.boards or request.board in self.faults.silent_boards:
            return None
        board = request.board
        if command is cu16.Command.STATUS:
            return cu16.encode(self.status_reply(board))
        if command is cu16.Command.UNLOCK:
            self._pulse(board, request.lock)
            self._changed()
            return self._unlock_reply(board)
        if command is cu16.Command.UNLOCK_ALL:
            for channel in range(len(self.state.boards[board].doors)):
                self._pulse(board, channel)
            self._changed()
            return self._unlock_reply(board)
        if command is cu16.Command.DELAYED_UNLOCK:
            self._schedule(request.data[0], board, request.lock)
            return None
        if command is cu16.Command.PULSE_TIME:
            self.state.boards[board].pulse_ms = int.from_bytes(request.data, "big") * 10
            self._changed()
            return None
        return None  # QUERY_PULSE_TIME, SET_BAUD: reply layout unknown

    def _unlock_reply(self, board: int) -> bytes | None:
        return cu16.encode(self.status_reply(board)) if self.state.unlock_replies else None

    def _schedule(self, seconds: float, board: int, channel: int) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self._pulse(board, channel)
            self._changed()

        handle = loop.call_later(seconds, fire)
        self._timers.add(handle)

    def reply_plan(self, reply: bytes | None) -> list[tuple[float, bytes]]:
        """Turn one reply into ``(pause_before, chunk)`` steps, consuming the pending faults."""
        if reply is None:
            return []
        f = self.faults
        if f.drop:
            f.drop -= 1
            return []
        chunks: list[bytes] = []
        if f.wrong_address:
            f.wrong_address -= 1
            _, frame = cu16.decode_reply(reply)
            if frame is not None:
                wrong = cu16.StatusReply((frame.board + 1) % 16, frame.locks, frame.ir, frame.lock)
                chunks.append(cu16.encode(wrong))
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
        transport = PtyTransport(self)
        await transport.start()
        self._transports.append(transport)
        return transport

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> TcpTransport:
        transport = TcpTransport(self, host, port)
        await transport.start()
        self._transports.append(transport)
        return transport

    async def close(self) -> None:
        """Stop every transport and pending delayed unlock."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        transports, self._transports = self._transports, []
        for transport in transports:
            await transport.close()

    async def __aenter__(self) -> KerongCU16Simulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Session:
    """One connected host: reassembles requests, lets the simulator answer, writes replies in order."""

    def __init__(self, sim: KerongCU16Simulator, write: Callable[[bytes], None], name: str) -> None:
        self.sim = sim
        self.name = name
        self._write = write
        self._buf = bytearray()
        self._arrivals: list[float] = []  # loop time each byte of _buf arrived
        self._plans: asyncio.Queue[list[tuple[float, bytes]]] = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._send_replies(), name=f"sim-{name}")

    def feed(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        self._buf += data
        self._arrivals += [now] * len(data)
        while self._buf:
            consumed, request = cu16.decode_request(self._buf)
            if consumed == 0:
                break
            if request is None:
                self.sim.skipped_bytes += consumed
                log.debug("%s: skipped %s", self.name, bytes(self._buf[:consumed]).hex(" "))
            else:
                raw = bytes(self._buf[:consumed])
                self.sim.wire.append(WireEvent("rx", self._arrivals[0], self._arrivals[consumed - 1], raw))
                plan = self.sim.reply_plan(self.sim.handle(request))
                if plan:
                    self._plans.put_nowait(plan)
            del self._buf[:consumed]
            del self._arrivals[:consumed]

    async def _send_replies(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            plan = await self._plans.get()
            for pause, chunk in plan:
                if pause:
                    await asyncio.sleep(pause)
                start = loop.time()
                if self.sim.pace:
                    await asyncio.sleep(len(chunk) * 10 / self.sim.baudrate)
                try:
                    self._write(chunk)
                except OSError as err:
                    log.warning("%s: reply lost: %s", self.name, err)
                    continue
                self.sim.wire.append(WireEvent("tx", start, loop.time(), chunk))

    async def close(self) -> None:
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass


class PtyTransport:
    """The simulator on the master side of a pty; the code under test opens :attr:`url` (the slave path)."""

    def __init__(self, sim: KerongCU16Simulator) -> None:
        self.sim = sim
        self.url = ""
        self._master = -1
        self._slave = -1
        self._session: _Session | None = None

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
        # The slave stays open here too, so the master never sees EIO between client sessions.
        self._master, self._slave = master, slave
        self._session = _Session(self.sim, self._write, f"pty {self.url}")
        asyncio.get_running_loop().add_reader(master, self._readable)
        log.info("KR-CU16 simulator on %s", self.url)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            log.warning("pty %s: %s", self.url, err)
            return
        if data and self._session is not None:
            self._session.feed(data)

    def _write(self, data: bytes) -> None:
        written = os.write(self._master, data)
        if written != len(data):
            log.warning("pty %s: wrote only %d of %d bytes", self.url, written, len(data))

    async def close(self) -> None:
        if self._master < 0:
            return
        asyncio.get_running_loop().remove_reader(self._master)
        if self._session is not None:
            await self._session.close()
            self._session = None
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1


class TcpTransport:
    """The simulator as a TCP server; clients use ``socket://HOST:PORT`` (see :attr:`url`)."""

    def __init__(self, sim: KerongCU16Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
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
        log.info("KR-CU16 simulator on %s", self.url)

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        peer = writer.get_extra_info("peername")
        session = _Session(self.sim, writer.write, f"tcp {peer}")
        try:
            while data := await reader.read(4096):
                session.feed(data)
        except (ConnectionError, OSError) as err:
            log.info("tcp %s: %s", peer, err)
        finally:
            await session.close()
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            self._clients.pop(task, None)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # End each client's handler through EOF, not cancel(): asyncio's stream server logs a
        # cancelled handler task as an error.
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
class RunningLockboardSim:
    """A started simulator: clients connect to :attr:`url`; call :meth:`close` to stop it."""

    sim: KerongCU16Simulator
    transport: PtyTransport | TcpTransport

    @property
    def url(self) -> str:
        return self.transport.url

    async def close(self) -> None:
        await self.sim.close()


async def run_lockboard_sim(
    boards: Iterable[int] = (0,),
    doors_per_board: int = 16,
    polarity: Any = "closed_is_1",
    transport: str = "pty",
    *,
    baudrate: int = 19200,
    pace: bool = False,
    unlock_replies: bool = False,
) -> RunningLockboardSim:
    """Start a simulated KR-CU16 bus for the demo or a test.

    ``polarity``: "closed_is_1" or "closed_is_0" (or ``hal.lockbank.Polarity``).
    ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT" (PORT 0 picks a free one).
    """
    polarity_name = str(getattr(polarity, "value", polarity))
    if polarity_name not in ("closed_is_1", "closed_is_0"):
        raise ValueError(f"polarity must be closed_is_1 or closed_is_0, not {polarity!r}")
    sim = KerongCU16Simulator(
        boards,
        doors_per_board,
        closed_is_1=polarity_name == "closed_is_1",
        unlock_replies=unlock_replies,
        baudrate=baudrate,
        pace=pace,
    )
    kind, _, where = transport.partition(":")
    if kind == "pty" and not where:
        served: PtyTransport | TcpTransport = await sim.serve_pty()
    elif kind == "tcp":
        host, _, port = where.rpartition(":") if ":" in where else ("", "", where)
        served = await sim.serve_tcp(host or "127.0.0.1", int(port or 0))
    else:
        raise ValueError(f"transport must be 'pty' or 'tcp:HOST:PORT', not {transport!r}")
    return RunningLockboardSim(sim, served)
