"""Shared plumbing of the lock banks that talk request/reply through ``firmware_bridge.bus``.

:class:`BusLockBank` owns the :class:`~firmware_bridge.link.SerialLink` and the
:class:`~firmware_bridge.bus.Bus`, translates link errors into ``hal.errors`` and maps raw status
bits to door states through the profile's polarity. It is used by the Kerong CU12, CU48 and
generic 8A/80 backends.

Subclasses must override:
    ``_unlock(board, channel)`` and ``_read_status(board)`` (from :class:`LockBank`), built on
    :meth:`BusLockBank._send_once` and :meth:`BusLockBank._query`; and :attr:`MODEL`.
Subclasses may override:
    ``describe()``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from firmware_bridge.bus import Bus, BusStats, Decoder
from firmware_bridge.errors import LinkError, LinkOpenError, LinkTimeout
from firmware_bridge.link import SerialLink
from hal.errors import DeviceIOError, DeviceOpenError, DeviceTimeout
from hal.lockbank import BankProfile, DoorState, LockBank, Polarity, StatusByteOrder, UnlockReply

log = logging.getLogger(__name__)

#: keys of :attr:`BusLockBank.outcomes`, for the technician page
UNLOCK_ACKNOWLEDGED = "unlock_acknowledged"  # the board confirmed it took the command
UNLOCK_REFUSED = "unlock_refused"  # the board answered "failure" (or another error code)
UNLOCK_UNANSWERED = "unlock_unanswered"  # no reply in the settle window: outcome unknown
STATUS_REFUSED = "status_refused"  # a status read answered with an error code: doors unknown


class BusLockBank(LockBank):
    """A bus of boards of one request/reply protocol on one serial link.

    ``unlock_settle`` (seconds) is how long the bus listens after an unlock for the board's
    acknowledgement before the next request may go out; a missing acknowledgement is logged and
    counted, never an error, and the unlock is never sent again.
    """

    MODEL: ClassVar[str] = ""
    #: whether this protocol's boards answer an unlock; a missing answer is only worth a warning if so
    UNLOCK_REPLY_EXPECTED: ClassVar[bool] = True

    def __init__(self, profile: BankProfile, *, unlock_settle: float = 0.1) -> None:
        super().__init__(profile)
        self.unlock_settle = unlock_settle
        self._link: SerialLink | None = None
        self._bus: Bus | None = None
        self._stats = BusStats()  # kept across reopen so the technician page sees the history
        #: what boards answered to unlocks and status reads (keys: the module constants)
        self.outcomes: Counter[str] = Counter()

    @property
    def stats(self) -> BusStats:
        """Traffic counters of this bus (frames, replies, timeouts, skipped bytes, latencies)."""
        return self._stats

    @property
    def _first_byte_first(self) -> bool:
        return self.profile.status_byte_order is StatusByteOrder.FIRST_BYTE_FIRST

    async def _open(self) -> None:
        link = SerialLink(self.profile.url, self.profile.baudrate)
        try:
            await link.open()
        except LinkOpenError as err:
            raise DeviceOpenError(f"{self.MODEL} bus {self.profile.url}: {err}") from err
        self._link = link
        self._bus = Bus(link, reply_timeout=self.profile.reply_timeout, stats=self._stats,
                        checksum_error=self._checksum_error)

    async def _close(self) -> None:
        link, self._link, self._bus = self._link, None, None
        if link is not None:
            await link.close()

    def _checksum_error(self, buf: bytearray) -> bool:
        """Whether ``buf`` starts with a complete reply whose checksum alone is wrong (the protocol's
        codec knows; counted in the bus statistics)."""
        return False

    def _require_bus(self) -> Bus:
        if self._bus is None:
            raise DeviceIOError(f"{self.MODEL} bus is not open")
        return self._bus

    async def _send_once(self, request: bytes, decoder: Decoder, what: str) -> list[Any]:
        """Write a command with a physical effect exactly once; return the frames heard after it."""
        bus = self._require_bus()
        try:
            return await bus.send(request, settle=self.unlock_settle, decoder=decoder)
        except LinkTimeout as err:
            raise DeviceTimeout(f"{what}: outcome unknown: {err}") from err
        except LinkError as err:
            raise DeviceIOError(f"{what}: outcome unknown: {err}") from err

    async def _query(self, request: bytes, decoder: Decoder, expect: Callable[[Any], bool], board: int) -> Any:
        """Send a query (retried on timeout per the profile) and return the expected reply."""
        bus = self._require_bus()
        try:
            return await bus.transact(
                request,
                decoder,
                expect=expect,
                timeout=self.profile.reply_timeout,
                retries=self.profile.query_retries,
                board=board,
            )
        except LinkTimeout as err:
            raise DeviceTimeout(f"{self.MODEL} board {board} on {self.profile.url} did not answer: {err}") from err
        except LinkError as err:
            raise DeviceIOError(f"{self.MODEL} board {board} on {self.profile.url}: {err}") from err

    def _record_unlock(self, board: int, channel: int, ack: Any | None, ok: bool) -> UnlockReply:
        """Log and count what the board said to an unlock. Never proof that the door opened."""
        if ack is None:
            self.outcomes[UNLOCK_UNANSWERED] += 1
            log.log(logging.WARNING if self.UNLOCK_REPLY_EXPECTED else logging.DEBUG,
                    "%s board %d channel %d: no acknowledgement; outcome unknown, not resent",
                    self.MODEL, board, channel)
            return UnlockReply.UNANSWERED
        if ok:
            self.outcomes[UNLOCK_ACKNOWLEDGED] += 1
            log.info("%s board %d acknowledged unlock of channel %d: %r", self.MODEL, board, channel, ack)
            return UnlockReply.ACKNOWLEDGED
        self.outcomes[UNLOCK_REFUSED] += 1
        log.warning("%s board %d refused unlock of channel %d: %r", self.MODEL, board, channel, ack)
        return UnlockReply.REFUSED

    def _doors(self, bits: Sequence[bool]) -> tuple[DoorState, ...]:
        """Door states of channels ``0..channels_per_board-1`` from raw status bits."""
        closed_bit = self.profile.polarity is Polarity.CLOSED_IS_1
        channels = self.profile.channels_per_board
        if len(bits) < channels:
            raise DeviceIOError(f"{self.MODEL} status carries {len(bits)} channels, profile says {channels}")
        return tuple(DoorState.CLOSED if bits[ch] == closed_bit else DoorState.OPEN for ch in range(channels))

    def _unknown_doors(self) -> tuple[DoorState, ...]:
        return (DoorState.UNKNOWN,) * self.profile.channels_per_board

    def describe(self) -> dict[str, str]:
        info = super().describe()
        info.update(
            {
                "model": self.MODEL,
                "baudrate": str(self.profile.baudrate),
                "boards": ",".join(str(b) for b in self.profile.boards),
                "polarity": self.profile.polarity.value,
                "status_byte_order": self.profile.status_byte_order.value,
                "link": "open" if self._link is not None else "closed",
            }
        )
        if self._bus is not None:
            info["gap_ms"] = f"{self._bus.gap * 1000:g}"
        info.update({f"bus.{key}": str(value) for key, value in self.stats.as_dict().items()})
        info.update({f"board.{key}": str(value) for key, value in sorted(self.outcomes.items())})
        return info
