"""Wire-level simulator of a bus of Modbus RTU relay/IO lock boards (hardware-protocols.md §1.7, §1.8).

The Modbus slave is pymodbus's own server (``ModbusSerialServer`` / ``ModbusTcpServer`` with the
RTU framer) built from ``pymodbus.simulator.SimDevice`` boards, so the production driver talks to
a real Modbus stack. Waveshare Relay (D) behaviour is added on top; the wall's state lives in
:class:`SimState`, and the SimDevice registers are rendered from it on every read.

* FC05 is replaced by this module's own PDU class (the server's ``custom_pdu=``): pymodbus's
  built-in one reads any non-zero value as ON and echoes FF00, which hides the flash count.
  Decoded FC05 requests are handled in :meth:`ModbusRelaySimulator._write_coil`:

  ==================  ================================================  ========================
  address             value                                             effect
  ==================  ================================================  ========================
  0x0000 + ch         FF00 / 0000                                       relay ch on / off
  0x00FF              FF00 / 0000                                       every relay on / off
  0x0200 + ch         n > 0                                             relay on, off after n x 100 ms
  0x0400 + ch         n > 0                                             relay off, on after n x 100 ms
  other / bad value   --                                                exception 02 / 03
  ==================  ================================================  ========================

  The reply echoes the request, like the board. 5500 (toggle) is not modelled [UNVERIFIED].
* FC01/FC02 read coils / discrete inputs through the SimDevice ``action=`` hook, which writes
  the current relays / door sensors into the registers first. FC15 writes go through the same
  hook. Reading past the configured channels answers exception 02 (illegal address).
* A relay switching on energises the solenoid: that is one pulse for the door, and a closed
  door that is not jammed springs open. The door sensor reads ``closed == closed_is_1``.
* A board that does not exist or was told to :meth:`~ModbusRelaySimulator.stop_answering` is
  silent (``NoSuchIdException`` with ``ignore_missing_devices=True``) and nothing it is sent
  takes effect.
* Faults on replies (drop, corrupt, garbage first, wrong address) are applied in the server's
  ``trace_packet`` hook, which sees every reply frame as it is written; delays are awaited in
  the request handlers before the reply. This works the same on both transports, so no byte
  proxy is needed.

Transports: :class:`PtyNullModem` (two ptys joined in-process; the server opens one slave path,
clients open :attr:`PtyTransport.url`, the other) and TCP with RTU framing (clients use
``socket://127.0.0.1:PORT``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import struct
import tty
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators._device_sim import RunningSim, parse_transport, serve_transport

log = logging.getLogger(__name__)

MAX_CHANNELS = 32
ALL_RELAYS = 0x00FF
FLASH_ON_BASE = 0x0200
FLASH_OFF_BASE = 0x0400
ON, OFF = 0xFF00, 0x0000


@dataclass
class SimDoor:
    closed: bool = True
    jammed: bool = False  # a pulse does not open it
    pulses: int = 0  # times this channel's solenoid was energised


@dataclass
class SimBoard:
    address: int
    doors: list[SimDoor]
    relays: list[bool]
    pulses: int = 0  # every solenoid pulse on this board


@dataclass
class SimState:
    """The wall. ``closed_is_1``: a discrete input reads 1 when its door is closed."""

    boards: dict[int, SimBoard]
    closed_is_1: bool = True


@dataclass
class Faults:
    """Misbehaviour for the next replies. Counters go down by one per reply they affect."""

    drop: int = 0  # replies swallowed (the request still takes effect)
    corrupt: int = 0  # replies with bit 0 of byte ``corrupt_index`` flipped (CRC fails)
    corrupt_index: int = 3
    garbage: deque[bytes] = field(default_factory=deque)  # sent in front of the next replies, one each
    delay: float = 0.0  # seconds before each of the next ``delay_count`` replies
    delay_count: int = 0
    wrong_address: int = 0  # replies sent as if from slave (address % 247) + 1
    wrong_address_then_correct: bool = False  # ...followed by the right reply
    silent_boards: set[int] = field(default_factory=set)  # boards that ignore everything


@dataclass(frozen=True)
class SimRequest:
    """One request as the server decoded it (also those to silent or missing boards)."""

    board: int
    function_code: int
    address: int
    value: int | None = None  # FC05: the raw 16-bit value
    count: int = 1


class _CoilWrite(ModbusPDU):
    """FC05 on the server, keeping the raw value. Bound to one simulator by a subclass."""

    function_code = 5
    rtu_frame_size = 8
    sim: ModbusRelaySimulator

    def __init__(self, address: int = 0, value: int = 0, dev_id: int = 0, transaction_id: int = 0) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id, address=address)
        self.value = value

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.value)

    def decode(self, data: bytes) -> None:
        self.address, self.value = struct.unpack(">HH", data[:4])

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        return await self.sim._write_coil(device_id, self)


class ModbusRelaySimulator:
    """A bus of simulated Waveshare-style relay boards. ``boards``: slave ids (1..247) that exist."""

    def __init__(
        self,
        boards: Iterable[int] = (1,),
        channels: int = 8,
        *,
        closed_is_1: bool = True,
        baudrate: int = 9600,
        log_size: int = 2000,
    ) -> None:
        if not 1 <= channels <= MAX_CHANNELS:
            raise ValueError(f"channels must be 1..{MAX_CHANNELS}, not {channels}")
        addresses = sorted(set(boards))
        for address in addresses:
            if not 1 <= address <= 247:
                raise ValueError(f"slave id must be 1..247, not {address}")
        self.channels = channels
        self.state = SimState(
            boards={
                a: SimBoard(a, [SimDoor() for _ in range(channels)], [False] * channels) for a in addresses
            },
            closed_is_1=closed_is_1,
        )
        self.faults = Faults()
        self.baudrate = baudrate
        self.requests: deque[SimRequest] = deque(maxlen=log_size)
        self.version = 0  # goes up on every state change
        self._listeners: list[Callable[[ModbusRelaySimulator], None]] = []
        self._timers: dict[tuple[int, int], asyncio.TimerHandle] = {}
        self._transports: list[PtyTransport | TcpTransport] = []
        self._closing = asyncio.Event()
        self._coil_write = type("CoilWrite", (_CoilWrite,), {"sim": self})

    # -- observers ---------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[ModbusRelaySimulator], None]) -> Callable[[], None]:
        """Call ``callback(sim)`` after every state change; returns the unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _changed(self) -> None:
        self.version += 1
        for callback in list(self._listeners):
            try:
                callback(self)
            except Exception:
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

    def door_inputs(self, board: int) -> list[bool]:
        """What the board's discrete inputs read now (index = channel)."""
        return [d.closed == self.state.closed_is_1 for d in self.board(board).doors]

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data (items are always absent: no item sensors)."""
        return {
            "version": self.version,
            "closed_is_1": self.state.closed_is_1,
            "silent_boards": sorted(self.faults.silent_boards),
            "boards": [
                {
                    "address": b.address,
                    "pulses": b.pulses,
                    "doors": [
                        {"channel": i, "closed": d.closed, "item": False, "jammed": d.jammed,
                         "pulses": d.pulses, "relay": b.relays[i]}
                        for i, d in enumerate(b.doors)
                    ],
                }
                for b in self.state.boards.values()
            ],
        }

    def _set_relay(self, board: int, channel: int, on: bool) -> None:
        """Switch one relay. Switching on energises the solenoid: a pulse, never gated on the sensor."""
        sim_board = self.state.boards[board]
        was_on, sim_board.relays[channel] = sim_board.relays[channel], on
        if on and not was_on:
            sim_board.pulses += 1
            door = sim_board.doors[channel]
            door.pulses += 1
            if door.closed and not door.jammed:
                door.closed = False

    def _cancel_timer(self, board: int, channel: int) -> None:
        handle = self._timers.pop((board, channel), None)
        if handle is not None:
            handle.cancel()

    def _later(self, seconds: float, board: int, channel: int, on: bool) -> None:
        def fire() -> None:
            self._timers.pop((board, channel), None)
            self._set_relay(board, channel, on)
            self._changed()

        self._cancel_timer(board, channel)
        self._timers[(board, channel)] = asyncio.get_running_loop().call_later(seconds, fire)

    # -- hand actions: what a person at the wall does ----------------------------------------

    def open_door(self, board: int, channel: int) -> None:
        """Pull a door open by hand (after an unlock, or with the service key)."""
        self.door(board, channel).closed = False
        self._changed()

    def close_door(self, board: int, channel: int) -> None:
        self.door(board, channel).closed = True
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
        """Flip bit 0 of byte ``index`` in the next ``n`` replies (the CRC no longer matches)."""
        self.faults.corrupt += n
        self.faults.corrupt_index = index

    def garbage_before_reply(self, data: bytes = b"\x00", n: int = 1) -> None:
        """Send ``data`` right before each of the next ``n`` replies (default: a turnaround glitch)."""
        self.faults.garbage.extend([bytes(data)] * n)

    def delay_replies(self, seconds: float, n: int = 1) -> None:
        self.faults.delay = seconds
        self.faults.delay_count = n

    def answer_from_wrong_address(self, n: int = 1, *, then_correct: bool = False) -> None:
        """Make the next ``n`` replies carry slave id board+1; ``then_correct`` also sends the right one."""
        self.faults.wrong_address += n
        self.faults.wrong_address_then_correct = then_correct

    def stop_answering(self, board: int | None = None) -> None:
        """``board`` (or every board) ignores all requests, as if unpowered: no reply, no effect."""
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

    # -- the board firmware ------------------------------------------------------------------

    def _require_answering(self, board: int) -> SimBoard:
        if board not in self.state.boards or board in self.faults.silent_boards:
            raise NoSuchIdException(f"slave {board} is silent")
        return self.state.boards[board]

    async def _before_reply(self) -> None:
        f = self.faults
        if f.delay_count:
            f.delay_count -= 1
            try:
                await asyncio.wait_for(self._closing.wait(), timeout=f.delay)
            except TimeoutError:
                pass

    async def _write_coil(self, board: int, request: _CoilWrite) -> ModbusPDU:
        sim_board = self._require_answering(board)
        n = len(sim_board.relays)
        address, value = request.address, request.value
        if address == ALL_RELAYS or address < n:
            if value not in (ON, OFF):
                return ExceptionResponse(5, ExcCodes.ILLEGAL_VALUE)
            for channel in range(n) if address == ALL_RELAYS else (address,):
                self._cancel_timer(board, channel)
                self._set_relay(board, channel, value == ON)
        elif FLASH_ON_BASE <= address < FLASH_ON_BASE + n or FLASH_OFF_BASE <= address < FLASH_OFF_BASE + n:
            if value == 0:
                return ExceptionResponse(5, ExcCodes.ILLEGAL_VALUE)  # [guess] what the board does
            flash_on = address < FLASH_OFF_BASE
            channel = address - (FLASH_ON_BASE if flash_on else FLASH_OFF_BASE)
            self._set_relay(board, channel, flash_on)
            self._later(value * 0.1, board, channel, not flash_on)
        else:
            return ExceptionResponse(5, ExcCodes.ILLEGAL_ADDRESS)
        self._changed()
        await self._before_reply()
        return self._coil_write(address, value, dev_id=board, transaction_id=request.transaction_id)

    async def _access(
        self,
        board: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """SimDevice ``action=`` hook of every board (and of the catch-all device 0)."""
        sim_board = self._require_answering(board)
        if function_code == 15 and values:
            for offset, on in enumerate(values):
                if address + offset < len(sim_board.relays):
                    self._cancel_timer(board, address + offset)
                    self._set_relay(board, address + offset, bool(on))
            self._changed()
        elif function_code in (1, 2):
            bits = sim_board.relays if function_code == 1 else self.door_inputs(board)
            # bit blocks are 16-bit registers, bit 0 first; the last register is pymodbus's end marker
            for reg in range(len(registers) - 1):
                chunk = bits[reg * 16 : reg * 16 + 16]
                registers[reg] = sum(1 << i for i, bit in enumerate(chunk) if bit)
        await self._before_reply()
        return None

    def _device(self, board: int) -> SimDevice:
        def bits() -> list[SimData]:
            return [SimData(0, count=self.channels, values=False, datatype=DataType.BITS)]

        def regs() -> list[SimData]:
            return [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]

        return SimDevice(
            id=board,
            simdata=(bits(), bits(), regs(), regs()),
            action=functools.partial(self._access, board),
        )

    def _devices(self) -> list[SimDevice]:
        # id 0 is pymodbus's catch-all for every other slave id: it stays silent.
        return [self._device(board) for board in self.state.boards] + [self._device(0)]

    def _log_request(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            if isinstance(pdu, _CoilWrite):
                request = SimRequest(pdu.dev_id, pdu.function_code, pdu.address, value=pdu.value)
            else:
                request = SimRequest(pdu.dev_id, pdu.function_code, pdu.address, count=pdu.count)
            self.requests.append(request)
        return pdu

    def _faulty(self, sending: bool, data: bytes) -> bytes:
        """Server ``trace_packet`` hook: applies the pending faults to each reply frame."""
        if not sending or not data:
            return data
        f = self.faults
        if f.drop:
            f.drop -= 1
            return b""
        chunks: list[bytes] = []
        if f.wrong_address:
            f.wrong_address -= 1
            chunks.append(_readdress(data, data[0] % 247 + 1))
            if not f.wrong_address_then_correct:
                data = b""
        if f.corrupt and data:
            f.corrupt -= 1
            corrupted = bytearray(data)
            corrupted[f.corrupt_index % len(corrupted)] ^= 0x01
            data = bytes(corrupted)
        chunks.append(data)
        if f.garbage:
            chunks.insert(0, f.garbage.popleft())
        return b"".join(chunks)

    # -- transports ----------------------------------------------------------------------------

    def _server_kw(self) -> dict[str, Any]:
        return dict(
            framer=FramerType.RTU,
            ignore_missing_devices=True,
            custom_pdu=[self._coil_write],
            trace_packet=self._faulty,
            trace_pdu=self._log_request,
        )

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
        """Stop every transport and pending relay timer; cut delayed replies short."""
        self._closing.set()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        transports, self._transports = self._transports, []
        for transport in transports:
            await transport.close()
        for _ in range(3):  # let request handlers woken by _closing finish
            await asyncio.sleep(0)

    async def __aenter__(self) -> ModbusRelaySimulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _readdress(frame: bytes, slave: int) -> bytes:
    body = bytes([slave]) + frame[1:-2]
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


class PtyNullModem:
    """Two ptys joined in-process: bytes written to :attr:`a` come out of :attr:`b` and back.

    Both slave ends stay open here too, so neither master sees EIO while a client reopens.
    """

    def __init__(self) -> None:
        self.a = ""
        self.b = ""
        self._fds: list[int] = []

    def start(self) -> None:
        fds: list[int] = []
        try:
            for _ in range(2):
                master, slave = os.openpty()
                fds += [master, slave]
                tty.setraw(master)
                tty.setraw(slave)
                os.set_blocking(master, False)
            self.a, self.b = os.ttyname(fds[1]), os.ttyname(fds[3])
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        self._fds = fds
        loop = asyncio.get_running_loop()
        loop.add_reader(fds[0], self._copy, fds[0], fds[2])
        loop.add_reader(fds[2], self._copy, fds[2], fds[0])

    def _copy(self, src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
            os.write(dst, data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            log.warning("pty null modem: %s", err)

    def close(self) -> None:
        if not self._fds:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._fds[0])
        loop.remove_reader(self._fds[2])
        for fd in self._fds:
            os.close(fd)
        self._fds = []


class PtyTransport:
    """The simulated bus on a pty: pymodbus's serial server on one end, clients open :attr:`url`."""

    def __init__(self, sim: ModbusRelaySimulator) -> None:
        self.sim = sim
        self.modem = PtyNullModem()
        self.server: ModbusSerialServer | None = None

    @property
    def url(self) -> str:
        return self.modem.b

    async def start(self) -> None:
        self.modem.start()
        try:
            server = ModbusSerialServer(
                self.sim._devices(), port=self.modem.a, baudrate=self.sim.baudrate, **self.sim._server_kw()
            )
            await server.serve_forever(background=True)
        except BaseException:
            self.modem.close()
            raise
        self.server = server
        log.info("Modbus relay simulator on %s", self.url)

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.shutdown()
        self.modem.close()


class TcpTransport:
    """The simulated bus as RTU over TCP; clients use ``socket://HOST:PORT`` (see :attr:`url`)."""

    def __init__(self, sim: ModbusRelaySimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self.server: ModbusTcpServer | None = None

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    async def start(self) -> None:
        server = ModbusTcpServer(self.sim._devices(), address=(self.host, self.port), **self.sim._server_kw())
        await server.serve_forever(background=True)
        if not server.transport:
            raise OSError(f"could not listen on {self.host}:{self.port}")
        self.server = server
        self.port = server.transport.sockets[0].getsockname()[1]
        log.info("Modbus relay simulator on %s", self.url)

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.shutdown()


@dataclass
class RunningModbusSim(RunningSim[ModbusRelaySimulator]):
    """A started simulator: clients connect to :attr:`url`; call :meth:`close` to stop it."""

    transport: PtyTransport | TcpTransport


async def run_modbus_sim(
    boards: Iterable[int] = (1,),
    channels: int = 8,
    polarity: Any = "closed_is_1",
    transport: str = "pty",
    *,
    baudrate: int = 9600,
) -> RunningModbusSim:
    """Start a simulated Modbus relay bus for the demo or a test.

    ``polarity``: "closed_is_1" or "closed_is_0" (or ``hal.lockbank.Polarity``).
    ``transport``: "pty", or "tcp", "tcp:PORT", "tcp:HOST:PORT" (PORT 0 picks a free one).
    """
    polarity_name = str(getattr(polarity, "value", polarity))
    if polarity_name not in ("closed_is_1", "closed_is_0"):
        raise ValueError(f"polarity must be closed_is_1 or closed_is_0, not {polarity!r}")
    parse_transport(transport)  # refused before anything starts
    sim = ModbusRelaySimulator(boards, channels, closed_is_1=polarity_name == "closed_is_1", baudrate=baudrate)
    return RunningModbusSim(sim, await serve_transport(sim, transport))
