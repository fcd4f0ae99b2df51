"""Modbus RTU relay/IO lock boards (Waveshare Modbus RTU Relay (D) and alikes) through pymodbus.

hardware-protocols.md §1.7-§1.9. One board per Modbus slave id (the board address, 1..247); per
board, channel ``ch`` (0-based) is relay/coil ``ch`` (the lock solenoid) and discrete input ``ch``
(the door sensor). The function codes this driver sends::

    what                     FC  address         value / count          reply
    unlock (flash ON pulse)  05  0x0200 + ch     pulse in 100 ms units  echo of the request
    all relays off (open())  05  0x00FF          0x0000                 echo of the request
    door sensors             02  0x0000          count = channels       bitmap, bit ch = DI ch

    unlock board 1, ch 0, 200 ms:   01 05 02 00 00 02 4D B3
    read 8 door sensors of board 1: 01 02 00 00 00 08 79 CC  ->  01 02 01 BB CRC CRC

The unlock is the board-timed Waveshare flash: the board switches the relay on and off by itself,
so a crash of ours can never leave a solenoid energised (never a software ON followed by OFF).
pymodbus's ``write_coil`` can only send FF00/0000, so the flash uses its own PDU class
(:class:`RawCoilWrite`) sent with ``client.execute``; the same class decodes the echo, so the
raw value can be checked.

Transport is pymodbus's own (this backend does not use ``firmware_bridge.bus``): ``socket://HOST:PORT``
is RTU framing over TCP (``AsyncModbusTcpClient(framer=RTU)``, for serial-to-Ethernet gateways
and the simulator); anything else is a pyserial URL for ``AsyncModbusSerialClient`` (a device
path, ``spy://...``, ``rfc2217://...``). The line is 8N1 at ``profile.baudrate``.

Door polarity (``profile.polarity``): a discrete input reads 1 while its input is driven. With a
normally-open reed switch wired from DI ch to the input common, a closed door (magnet at the
switch) drives the input: DI 1 = closed, :attr:`Polarity.CLOSED_IS_1`, the profile default. Use
:attr:`Polarity.CLOSED_IS_0` for normally-closed switches or lock feedback contacts that close
when the lock is open. Which one a wall has is settled by the §1.10 acceptance test.

Errors and retries (§1.9 and STYLE "Errors"):

* pymodbus runs with ``retries=0``; this driver retries only queries (``profile.query_retries``
  times, on a timeout, a garbled or unexpected reply). An unlock is written exactly once.
* A read that never gets its answer raises :class:`DeviceTimeout`; a link that is down raises
  :class:`DeviceIOError`. A board that answers a Modbus exception (e.g. 02 illegal address: fewer
  channels than configured) raises :class:`DeviceIOError` naming the exception code: the board
  is there but the configuration is wrong, which retrying does not fix.
* An unlock without an echo, or with an echo that does not match, is an unknown outcome: it is
  logged and ``unlock`` returns, and the door is learned from ``read_status`` (the contract). An
  unlock answered with a Modbus exception raises :class:`DeviceIOError`: the board said it did
  not pulse.
* pymodbus 3.16's RTU framer discards the whole receive buffer when a frame fails its CRC, so a
  reply with even one noise byte in front of it is lost; a query then costs one retry.

At :meth:`open` every board gets "all relays off" (not a pulse, moves no lock). A board that does
not answer then gets it before its next request instead; a board answering it with a Modbus
exception fails ``open()`` (it is not a Waveshare-compatible board). These boards have no item
sensors: ``BoardStatus.items`` is all ``None``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import ReadDiscreteInputsResponse

from firmware_bridge.bus import silent_gap
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout
from hal.lockbank import BankProfile, BoardStatus, DoorState, LockBank, Polarity, UnlockReply

log = logging.getLogger(__name__)

MAX_CHANNELS = 32  # Waveshare Relay (D) has 8; the flash block 0x0200.. is sized for up to 32 here
FLASH_ON_BASE = 0x0200  # FC05 address of channel 0's flash-ON pulse
ALL_RELAYS = 0x00FF  # FC05 address switching every relay of a board
UNIT_MS = 100  # the flash value counts 100 ms steps
MAX_UNITS = 0xFFFF

#: a tap on the raw bytes: ``tap(sending, data)``; received data is the receive buffer as
#: pymodbus hands it to its framer (a partial frame may show up once per arriving chunk)
WireTap = Callable[[bool, bytes], None]


class RawCoilWrite(ModbusPDU):
    """FC05 write single coil with any 16-bit value (the Waveshare flash count, or 0x0000/0xFF00).

    Used as request and, registered on the client, as the decoder of the echo, so ``value`` holds
    what the board sent back.
    """

    function_code = 5
    rtu_frame_size = 8

    def __init__(self, address: int = 0, value: int = 0, dev_id: int = 0, transaction_id: int = 0) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id, address=address)
        self.value = value

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.value)

    def decode(self, data: bytes) -> None:
        self.address, self.value = struct.unpack(">HH", data[:4])

    def __str__(self) -> str:
        return f"RawCoilWrite(dev_id={self.dev_id}, address=0x{self.address:04X}, value=0x{self.value:04X})"


def pulse_units(pulse_ms: int) -> int:
    """Flash value for a pulse of ``pulse_ms`` milliseconds: 100 ms steps, rounded up, at least 1."""
    return min(MAX_UNITS, max(1, math.ceil(pulse_ms / UNIT_MS)))


def flash_on_request(board: int, channel: int, pulse_ms: int) -> RawCoilWrite:
    """The unlock: relay ``channel`` on for ``pulse_units(pulse_ms)`` x 100 ms, timed by the board."""
    return RawCoilWrite(FLASH_ON_BASE + channel, pulse_units(pulse_ms), dev_id=board)


def all_relays_off_request(board: int) -> RawCoilWrite:
    return RawCoilWrite(ALL_RELAYS, 0x0000, dev_id=board)


def _exception_text(reply: ModbusPDU) -> str:
    code = reply.exception_code
    try:
        name = ExcCodes(code).name
    except ValueError:
        name = "unknown"
    return f"Modbus exception {code:02X} ({name}) to function {reply.function_code & 0x7F:02X}"


class _BadReply(Exception):
    """A reply arrived but is not the answer (wrong type or size): treated like garbage."""


class ModbusRelayBank(LockBank):
    """A bus of Modbus RTU relay/IO boards; the board address is the Modbus slave id (1..247).

    ``wire_tap`` (optional) sees every frame sent and every receive buffer, for commissioning
    logs and golden-byte tests.
    """

    def __init__(self, profile: BankProfile, *, wire_tap: WireTap | None = None) -> None:
        if not 1 <= profile.channels_per_board <= MAX_CHANNELS:
            raise ValueError(f"a Modbus relay board has 1..{MAX_CHANNELS} channels, not {profile.channels_per_board}")
        for board in profile.boards:
            if not 1 <= board <= 247:
                raise ValueError(f"Modbus slave ids are 1..247, not {board}")
        if profile.pulse_ms <= 0:
            raise ValueError(f"pulse_ms must be positive, not {profile.pulse_ms}")
        super().__init__(profile)
        self.wire_tap = wire_tap
        self.gap = silent_gap(profile.baudrate)
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._line_free_at = 0.0
        self._relays_unknown: set[int] = set()  # boards that missed "all relays off" at open()

    # -- life cycle ------------------------------------------------------------------------------

    def _make_client(self) -> AsyncModbusSerialClient | AsyncModbusTcpClient:
        p = self.profile
        common: dict[str, Any] = dict(
            framer=FramerType.RTU,
            timeout=p.reply_timeout,
            retries=0,  # queries are retried here; an unlock never is
            trace_packet=self._trace,
        )
        if p.url.startswith("socket://"):
            parts = urlsplit(p.url)
            if not parts.hostname or parts.port is None:
                raise DeviceOpenError(f"Modbus bus {p.url}: expected socket://HOST:PORT")
            return AsyncModbusTcpClient(parts.hostname, port=parts.port, **common)
        return AsyncModbusSerialClient(
            p.url, baudrate=p.baudrate, bytesize=8, parity="N", stopbits=1, **common
        )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if self.wire_tap is not None:
            try:
                self.wire_tap(sending, bytes(data))
            except Exception:  # a broken tap must not break the bus
                log.exception("wire tap failed")
        return data

    async def _open(self) -> None:
        client = self._make_client()
        client.register(RawCoilWrite)  # decode FC05 echoes with their raw value (this client only)
        # One dead board must not make pymodbus drop the link to the others (it closes a TCP link
        # after retries+3 unanswered requests in a row); a broken link shows as ConnectionException.
        client.set_max_no_responses(1_000_000)
        try:
            connected = await client.connect()
        except (OSError, ModbusException) as err:
            client.close()
            raise DeviceOpenError(f"Modbus bus {self.profile.url}: {err}") from err
        if not connected:
            client.close()
            raise DeviceOpenError(f"Modbus bus {self.profile.url} could not be opened")
        self._client = client
        self._relays_unknown = set(self.profile.boards)
        try:
            for board in self.profile.boards:
                await self._all_relays_off(board)
        except BaseException as err:
            self._client = None
            client.close()
            if isinstance(err, DeviceIOError):
                raise DeviceOpenError(str(err)) from err
            raise

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _all_relays_off(self, board: int) -> None:
        """Switch every relay of ``board`` off (retried like a query: it moves no lock).

        A board that does not answer is remembered and tried again before its next request.
        """
        request = all_relays_off_request(board)
        try:
            reply = await self._query(request, RawCoilWrite, f"all relays off, board {board}")
        except DeviceTimeout as err:
            log.warning("board %d did not confirm all relays off; trying again later: %s", board, err)
            return
        if reply.address != request.address or reply.value != request.value:
            log.warning("board %d answered all relays off with %s", board, reply)
            return
        self._relays_unknown.discard(board)

    # -- transactions ----------------------------------------------------------------------------

    async def _exchange(self, make: Callable[[Any], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """One transaction, alone on the bus and after the inter-frame silence (§1.9)."""
        client = self._client
        if client is None:
            raise DeviceIOError(f"Modbus bus {self.profile.url} is not open")
        loop = asyncio.get_running_loop()
        async with self._lock:
            wait = self._line_free_at + self.gap - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await make(client)
            except ModbusIOException as err:  # pymodbus's "no response received"
                raise DeviceTimeout(str(err)) from err
            except ConnectionException as err:
                raise DeviceIOError(f"Modbus bus {self.profile.url}: link down: {err}") from err
            except ModbusException as err:
                raise DeviceIOError(f"Modbus bus {self.profile.url}: {err}") from err
            finally:
                self._line_free_at = loop.time()

    async def _query(self, request: ModbusPDU | None, expect: type, what: str, **read: Any) -> Any:
        """Send a request without physical effect, retrying on silence or a wrong reply.

        ``request`` None means FC02 read discrete inputs with ``read`` as keyword arguments.
        """
        last: Exception | None = None
        for attempt in range(self.profile.query_retries + 1):
            try:
                if request is None:
                    reply = await self._exchange(lambda c: c.read_discrete_inputs(0, **read))
                else:
                    reply = await self._exchange(lambda c: c.execute(False, request))
            except DeviceTimeout as err:
                last = err
                log.debug("%s: no reply (attempt %d)", what, attempt + 1)
                continue
            if reply.isError():
                raise DeviceIOError(f"{what} on {self.profile.url}: board answered {_exception_text(reply)}")
            if not isinstance(reply, expect):
                last = _BadReply(f"unexpected reply {reply}")
                log.info("%s: %s (attempt %d)", what, last, attempt + 1)
                continue
            return reply
        if isinstance(last, _BadReply):
            raise DeviceIOError(f"{what} on {self.profile.url}: {last}") from last
        raise DeviceTimeout(f"{what} on {self.profile.url}: no answer") from last

    # -- LockBank hooks --------------------------------------------------------------------------

    async def _unlock(self, board: int, channel: int) -> UnlockReply:
        if board in self._relays_unknown:
            await self._all_relays_off(board)
        request = flash_on_request(board, channel, self.profile.pulse_ms)
        try:
            reply = await self._exchange(lambda c: c.execute(False, request))
        except DeviceTimeout as err:
            log.warning("unlock board %d channel %d: no echo, outcome unknown: %s", board, channel, err)
            return UnlockReply.UNANSWERED
        if reply.isError():  # the board says it did not pulse: a returned "no", not a link failure
            log.warning("unlock board %d channel %d refused: board answered %s", board, channel,
                        _exception_text(reply))
            return UnlockReply.REFUSED
        if not (isinstance(reply, RawCoilWrite) and (reply.address, reply.value) == (request.address, request.value)):
            log.warning("unlock board %d channel %d: echo %s does not match, outcome unknown", board, channel, reply)
            return UnlockReply.UNANSWERED
        return UnlockReply.ACKNOWLEDGED

    async def _read_status(self, board: int) -> BoardStatus:
        if board in self._relays_unknown:
            await self._all_relays_off(board)
        n = self.profile.channels_per_board
        reply = await self._query(
            None, ReadDiscreteInputsResponse, f"door sensors of board {board}", count=n, device_id=board
        )
        if len(reply.bits) < n:
            raise DeviceIOError(f"board {board} sent {len(reply.bits)} door bits, expected {n}")
        closed_bit = self.profile.polarity is Polarity.CLOSED_IS_1
        doors = tuple(DoorState.CLOSED if bool(bit) == closed_bit else DoorState.OPEN for bit in reply.bits[:n])
        return BoardStatus(board=board, doors=doors, items=(None,) * n)

    def describe(self) -> dict[str, str]:
        info = super().describe()
        info.update(
            {
                "model": "Modbus RTU relay/IO board (Waveshare Relay (D) flash commands)",
                "baudrate": str(self.profile.baudrate),
                "boards": ",".join(str(b) for b in self.profile.boards),
                "polarity": self.profile.polarity.value,
                "pulse": f"{pulse_units(self.profile.pulse_ms) * UNIT_MS} ms",
                "gap_ms": f"{self.gap * 1000:g}",
                "link": "open" if self._client is not None and self._client.connected else "closed",
            }
        )
        if self._relays_unknown:
            info["relays_unconfirmed"] = ",".join(str(b) for b in sorted(self._relays_unknown))
        return info
