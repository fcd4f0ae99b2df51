"""Lock banks: one RS-485 bus with one or more lock-control boards of one protocol.

``LockBank`` is the only way the rest of postkiosk moves a lock or reads a door sensor.

Subclasses must override:
    ``_open()``, ``_close()``, ``_unlock(board, channel)``, ``_read_status(board)``.
Subclasses may override:
    ``describe()`` to report model or firmware details for diagnostics.

Policy that lives here, not in backends: argument checks, the never-retry rule for unlocks, and
translating link errors into ``hal.errors``. Backends live in :data:`BACKENDS` and are imported
lazily, so a vendor dependency is needed only when its protocol is configured.
"""

from __future__ import annotations

import abc
import enum
import importlib
import logging
from dataclasses import dataclass, field

from hal.device import Device
from hal.errors import DeviceUnavailable

log = logging.getLogger(__name__)


class DoorState(enum.Enum):
    """What the door sensor says. ``UNKNOWN`` when the board did not answer or has no sensor."""

    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


class Polarity(enum.Enum):
    """How a board's lock/door status bit maps to a closed door (sources disagree per board)."""

    CLOSED_IS_1 = "closed_is_1"
    CLOSED_IS_0 = "closed_is_0"


class StatusByteOrder(enum.Enum):
    """Where channels 1-8 sit in a multi-byte status bitmap (the 8A/80 sources disagree)."""

    FIRST_BYTE_FIRST = "first_byte_first"  # channels 1-8 in the first status byte
    LAST_BYTE_FIRST = "last_byte_first"  # channels 1-8 in the last status byte


class UnlockReply(enum.Enum):
    """What a board said to an unlock. Never proof that the door opened: that comes from status."""

    ACKNOWLEDGED = "acknowledged"  # the board confirmed it took the command
    REFUSED = "refused"  # the board answered that it did not pulse (an error code or exception)
    UNANSWERED = "unanswered"  # no reply (some boards never reply): the outcome is unknown


@dataclass(frozen=True)
class BankProfile:
    """Everything a backend needs to drive one bus.

    ``url`` is anything ``serial.serial_for_url`` accepts: a device path, ``socket://host:port``,
    ``spy://...``. ``boards`` are the board addresses on this bus (DIP switches).
    Timeouts are in seconds.
    """

    protocol: str
    url: str
    boards: tuple[int, ...]
    channels_per_board: int
    baudrate: int = 19200
    polarity: Polarity = Polarity.CLOSED_IS_1
    status_byte_order: StatusByteOrder = StatusByteOrder.FIRST_BYTE_FIRST
    pulse_ms: int = 500
    reply_timeout: float = 0.3
    query_retries: int = 2
    has_item_sensors: bool = True


@dataclass(frozen=True)
class BoardStatus:
    """One status read of one board. Index 0 is channel 0 (the board's lock 1)."""

    board: int
    doors: tuple[DoorState, ...]
    items: tuple[bool | None, ...] = field(default=())  # True: item detected; None: no item sensor


class LockBank(Device):
    """One bus of lock boards. Open with ``await bank.open()`` or ``async with bank:``.

    ``unlock`` pulses one lock exactly once per call and is never retried: whether the door opened
    is learned from ``read_status``, never from the unlock reply. ``read_status`` may retry on its
    own, because a query has no physical effect.
    """

    def __init__(self, profile: BankProfile) -> None:
        super().__init__()
        self.profile = profile

    def _check(self, board: int, channel: int | None = None) -> None:
        if not self._is_open:
            raise RuntimeError("lock bank is not open")
        if board not in self.profile.boards:
            raise ValueError(f"board {board} is not on this bus {self.profile.boards}")
        if channel is not None and not 0 <= channel < self.profile.channels_per_board:
            raise ValueError(f"channel {channel} out of range 0..{self.profile.channels_per_board - 1}")

    async def unlock(self, board: int, channel: int) -> UnlockReply:
        """Send one unlock pulse to ``channel`` of ``board``. Never retried.

        Returns what the board answered (a board's "no" is a value, not an error). Raises
        ``DeviceIOError`` (or ``DeviceTimeout``) when the command could not be put on the wire;
        the caller then treats the outcome as unknown and polls the door.
        """
        self._check(board, channel)
        log.info("unlock board=%d channel=%d", board, channel)
        return await self._unlock(board, channel)

    async def read_status(self, board: int) -> BoardStatus:
        """Read door and item sensors of one board. Raises ``DeviceTimeout`` if it never answers."""
        self._check(board)
        return await self._read_status(board)

    def describe(self) -> dict[str, str]:
        """Model, firmware and link details for diagnostics."""
        return {"protocol": self.profile.protocol, "url": self.profile.url}

    @abc.abstractmethod
    async def _unlock(self, board: int, channel: int) -> UnlockReply: ...

    @abc.abstractmethod
    async def _read_status(self, board: int) -> BoardStatus: ...


#: protocol name -> "module:Class", imported only when configured (python-can's BACKENDS table).
BACKENDS: dict[str, str] = {
    "kerong-cu16": "hal.lockbank_kerong:KerongCU16Bank",
    "kerong-cu12": "hal.lockbank_cu12:KerongCU12Bank",
    "cu48": "hal.lockbank_cu48:CU48Bank",
    "generic-8a": "hal.lockbank_8a:Generic8ABank",
    "modbus-relay": "hal.lockbank_modbus:ModbusRelayBank",
}

#: the line speed a protocol's boards ship with, used when a bank does not set one
DEFAULT_BAUDRATE: dict[str, int] = {
    "kerong-cu16": 19200,
    "kerong-cu12": 19200,
    "cu48": 19200,
    "generic-8a": 9600,
    "modbus-relay": 9600,
}


def lock_bank(profile: BankProfile) -> LockBank:
    """Build the backend named by ``profile.protocol`` (not opened yet)."""
    try:
        target = BACKENDS[profile.protocol]
    except KeyError:
        raise DeviceUnavailable(
            f"unknown lock protocol {profile.protocol!r}; known: {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise DeviceUnavailable(f"backend for {profile.protocol!r} cannot be imported: {err}") from err
    return cls(profile)
