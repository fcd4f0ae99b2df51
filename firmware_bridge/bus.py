"""One scheduler per RS-485 bus: half duplex, one master, one transaction at a time.

Rules from hardware-protocols.md §1.9 and §7:

* transactions never overlap; commands with a physical effect (unlock) go before waiting queries;
* before every request the line has been silent for ``gap`` seconds,
  ``max(3.5 characters, 1.75 ms) + 1 ms`` rounded up to whole milliseconds (5 ms at 9600 baud);
  the silence is counted from the end of our own transmission (computed from the baud rate) or
  from the last byte received, whichever is later;
* stale input is flushed before each request, so a late reply to an earlier request is not taken
  for the answer to this one;
* a query is read back by length with the codec and retried up to ``retries`` times on timeout;
* a command with a physical effect is written exactly once (:meth:`Bus.send`): a missing reply
  means "outcome unknown", never "send again" (a delayed reply would open the door twice).

Timing uses the event loop's clock. The codec stays pure; this module does the waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from firmware_bridge.errors import LinkError, LinkTimeout
from firmware_bridge.link import SerialLink

log = logging.getLogger(__name__)

#: decoder signature shared by every codec: buf -> (consumed, frame | None)
Decoder = Callable[[bytearray], tuple[int, Any]]

PRIORITY_COMMAND = 0  # unlocks: served before waiting polls
PRIORITY_QUERY = 1


def char_time(baudrate: int, bits_per_char: int = 10) -> float:
    """Seconds one character takes on the wire (8N1 = 10 bits)."""
    return bits_per_char / baudrate


def wire_time(nbytes: int, baudrate: int, bits_per_char: int = 10) -> float:
    """Seconds ``nbytes`` take on the wire."""
    return nbytes * char_time(baudrate, bits_per_char)


async def sleep_until(deadline: float, now: Callable[[], float]) -> None:
    """Sleep until ``now() >= deadline`` without overshooting by a millisecond.

    asyncio's timers are only as fine as the selector's (epoll waits in whole milliseconds), so a
    plain ``asyncio.sleep`` ends up to 1 ms late; on a 19200-baud bus that stretches every silent
    gap by a third. Sleep to within 1.5 ms, then yield to the loop until the deadline.
    """
    remaining = deadline - now()
    if remaining > 0.0015:
        await asyncio.sleep(remaining - 0.0015)
    while now() < deadline:
        await asyncio.sleep(0)


def silent_gap(baudrate: int, bits_per_char: int = 10) -> float:
    """Inter-frame silence in seconds: ``max(3.5 chars, 1.75 ms) + 1 ms``, rounded up to whole ms.

    5 ms at 9600 baud, 3 ms at 19200 and above (§1.9, §7).
    """
    gap_ms = max(3.5 * char_time(baudrate, bits_per_char) * 1000, 1.75) + 1.0
    return math.ceil(round(gap_ms, 6)) / 1000


#: upper edges (ms) of the reply-latency histogram buckets; the last bucket is everything slower
LATENCY_BUCKETS_MS = (5, 10, 20, 50, 100, 200, 500)


@dataclass
class BoardStats:
    """What one board address did on the bus: answered queries, timeouts, reply latency histogram."""

    replies: int = 0
    timeouts: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    last_reply_at: float | None = None  # loop time

    def record(self, latency: float, at: float) -> None:
        self.replies += 1
        self.last_reply_at = at
        ms = latency * 1000
        index = next((i for i, edge in enumerate(LATENCY_BUCKETS_MS) if ms <= edge), len(LATENCY_BUCKETS_MS))
        self.histogram[index] += 1

    def as_dict(self) -> dict[str, Any]:
        labels = [f"<={edge}ms" for edge in LATENCY_BUCKETS_MS] + [f">{LATENCY_BUCKETS_MS[-1]}ms"]
        return {"replies": self.replies, "timeouts": self.timeouts, "latency_histogram": dict(zip(labels, self.histogram))}


@dataclass
class BusStats:
    """Counters of one bus since it was created, for the technician page. Latencies in seconds.

    ``boards`` is filled for queries that name their board (``Bus.transact(..., board=n)``);
    ``sent_times`` keeps recent transmission times for :meth:`frames_per_second`.
    """

    frames_sent: int = 0
    replies: int = 0  # frames accepted as the answer to a query
    unexpected_frames: int = 0  # valid frames that were not the answer (wrong address, late reply)
    settle_frames: int = 0  # frames seen in the settle window after a command
    timeouts: int = 0  # query attempts that got no acceptable answer in time
    retries: int = 0
    skipped_bytes: int = 0  # garbage, bad checksums, incomplete frames
    checksum_errors: int = 0  # complete frames whose checksum was wrong (their bytes are in skipped_bytes)
    stale_bytes: int = 0  # bytes flushed before a request
    link_errors: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    boards: dict[int, BoardStats] = field(default_factory=dict)
    sent_times: deque[float] = field(default_factory=lambda: deque(maxlen=2048))

    def board(self, address: int) -> BoardStats:
        return self.boards.setdefault(address, BoardStats())

    def frames_per_second(self, now: float, window: float = 10.0) -> float:
        """Frames sent per second over the last ``window`` seconds (loop time ``now``)."""
        recent = sum(1 for t in self.sent_times if now - t <= window)
        return round(recent / window, 2)

    def latency_summary(self) -> dict[str, float]:
        """``count``, and ``min``/``mean``/``max`` in milliseconds over the recent samples."""
        samples = list(self.latencies)
        if not samples:
            return {"count": 0}
        return {
            "count": len(samples),
            "min_ms": round(min(samples) * 1000, 2),
            "mean_ms": round(sum(samples) / len(samples) * 1000, 2),
            "max_ms": round(max(samples) * 1000, 2),
        }

    def as_dict(self) -> dict[str, int | float]:
        counters = {
            name: getattr(self, name)
            for name in (
                "frames_sent",
                "replies",
                "unexpected_frames",
                "settle_frames",
                "timeouts",
                "retries",
                "skipped_bytes",
                "checksum_errors",
                "stale_bytes",
                "link_errors",
            )
        }
        counters.update({f"latency_{k}": v for k, v in self.latency_summary().items()})
        return counters


class _PriorityLock:
    """A mutex granting waiters by (priority, arrival): FIFO within one priority."""

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    @property
    def locked(self) -> bool:
        return self._locked

    async def acquire(self, priority: int) -> None:
        if not self._locked:  # release() hands the lock over, so unlocked means nobody waits
            self._locked = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrival), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # ownership moves to that waiter; stays locked
                return
        self._locked = False


class Bus:
    """Serialises request/reply traffic on one link.

    ``baudrate`` defaults to the link's; ``reply_timeout`` (seconds) is counted from the end of the
    request's transmission. ``gap`` (seconds) overrides :func:`silent_gap`. Pass ``stats`` to keep
    counting into an existing :class:`BusStats` (across a reopen).
    """

    def __init__(
        self,
        link: SerialLink,
        *,
        baudrate: int | None = None,
        reply_timeout: float = 0.3,
        gap: float | None = None,
        bits_per_char: int = 10,
        stats: BusStats | None = None,
        checksum_error: Callable[[bytearray], bool] | None = None,
    ) -> None:
        """``checksum_error(buf)``: the protocol's test for "``buf`` starts with a complete frame whose
        checksum alone is wrong", so such frames are counted apart from other skipped bytes."""
        self.link = link
        self.checksum_error = checksum_error
        self.baudrate = baudrate or link.baudrate
        self.bits_per_char = bits_per_char
        self.reply_timeout = reply_timeout
        self.gap = silent_gap(self.baudrate, bits_per_char) if gap is None else gap
        self.stats = stats if stats is not None else BusStats()
        self._lock = _PriorityLock()
        self._quiet_since = -math.inf  # loop time from which the line is known to be silent

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    @asynccontextmanager
    async def _turn(self, priority: int) -> AsyncIterator[None]:
        await self._lock.acquire(priority)
        try:
            yield
        finally:
            self._lock.release()

    async def transact(
        self,
        request: bytes,
        decoder: Decoder,
        *,
        expect: Callable[[Any], bool] | None = None,
        timeout: float | None = None,
        retries: int = 0,
        priority: int = PRIORITY_QUERY,
        board: int | None = None,
    ) -> Any:
        """Send a query and return the first decoded frame for which ``expect(frame)`` is true.

        Only for requests without a physical effect: on a timeout the request is sent again, up to
        ``retries`` more times. Frames that do not satisfy ``expect`` (another board's reply, a late
        reply) are counted and ignored. ``timeout`` in seconds per attempt (default
        ``reply_timeout``). ``board``, when given, files the reply latency or the timeout under that
        board address in :class:`BusStats`. Raises ``LinkTimeout`` when every attempt timed out,
        ``LinkError`` when the link fails (not retried).
        """
        timeout = self.reply_timeout if timeout is None else timeout
        for attempt in range(retries + 1):
            if attempt:
                self.stats.retries += 1
                log.info("retrying %s (attempt %d of %d)", request.hex(" "), attempt + 1, retries + 1)
            async with self._turn(priority):
                frame = await self._exchange(request, decoder, expect, timeout, board)
            if frame is not None:
                return frame
        raise LinkTimeout(
            f"no valid reply to {request.hex(' ')} on {self.link.url} "
            f"after {retries + 1} attempt(s) of {timeout} s"
        )

    async def send(
        self,
        request: bytes,
        *,
        settle: float = 0.05,
        decoder: Decoder | None = None,
        priority: int = PRIORITY_COMMAND,
    ) -> list[Any]:
        """Write a command with a physical effect exactly once; never retried.

        Then listen for ``settle`` seconds (counted from the end of the transmission) so that any
        reply the board sends is taken off the line before the next request. Frames decoded with
        ``decoder`` are logged and returned; a reply is never required. Raises ``LinkError`` if the
        command could not be written: its outcome is then unknown.
        """
        async with self._turn(priority):
            sent_at = await self._write(request)
            frames: list[Any] = []
            buf = bytearray()
            deadline = sent_at + wire_time(len(request), self.baudrate, self.bits_per_char) + settle
            while (remaining := deadline - self._now()) > 0:
                data = await self._read(remaining)
                if not data:
                    break
                buf += data
                if decoder is None:
                    continue
                for frame in self._frames(buf, decoder):
                    self.stats.settle_frames += 1
                    frames.append(frame)
                    log.info("after %s the board sent %r", request.hex(" "), frame)
            if buf:
                self.stats.skipped_bytes += len(buf)
                log.info("after %s: %d undecoded byte(s) %s", request.hex(" "), len(buf), bytes(buf).hex(" "))
            return frames

    def _frames(self, buf: bytearray, decoder: Decoder) -> list[Any]:
        """Decode and remove every complete frame at the front of ``buf``; skipped bytes are counted."""
        frames = []
        while buf:
            consumed, frame = decoder(buf)
            if consumed == 0:
                break
            if frame is None:
                if self.checksum_error is not None and self.checksum_error(buf):
                    self.stats.checksum_errors += 1
                self.stats.skipped_bytes += consumed
                log.debug("skipped %d byte(s): %s", consumed, bytes(buf[:consumed]).hex(" "))
            else:
                frames.append(frame)
            del buf[:consumed]
        return frames

    async def _exchange(
        self,
        request: bytes,
        decoder: Decoder,
        expect: Callable[[Any], bool] | None,
        timeout: float,
        board: int | None = None,
    ) -> Any:
        sent_at = await self._write(request)
        deadline = sent_at + wire_time(len(request), self.baudrate, self.bits_per_char) + timeout
        buf = bytearray()
        while (remaining := deadline - self._now()) > 0:
            data = await self._read(remaining)
            if not data:
                break
            buf += data
            frames = self._frames(buf, decoder)
            for index, frame in enumerate(frames):
                if expect is None or expect(frame):
                    self.stats.replies += 1
                    now = self._now()
                    self.stats.latencies.append(now - sent_at)
                    if board is not None:
                        self.stats.board(board).record(now - sent_at, now)
                    # Whatever followed the answer belongs to no request: count it and drop it.
                    self.stats.unexpected_frames += len(frames) - index - 1
                    self.stats.skipped_bytes += len(buf)
                    return frame
                self.stats.unexpected_frames += 1
                log.warning("ignored %r while waiting for the reply to %s", frame, request.hex(" "))
        self.stats.timeouts += 1
        if board is not None:
            self.stats.board(board).timeouts += 1
        if buf:
            self.stats.skipped_bytes += len(buf)
        log.warning("no reply to %s within %.3f s", request.hex(" "), timeout)
        return None

    async def _wait_quiet(self) -> None:
        """Sleep until the line has been silent for ``gap``, flushing whatever arrives meanwhile."""
        for _ in range(3):
            await sleep_until(self._quiet_since + self.gap, self._now)
            stale = await self._guard(self.link.discard_input())
            if not stale:
                return
            self.stats.stale_bytes += len(stale)
            log.info("flushed %d stale byte(s): %s", len(stale), stale.hex(" "))
            self._quiet_since = max(self._quiet_since, self.link.last_rx or self._now())
        log.warning("%s keeps talking; sending anyway", self.link.url)

    async def _write(self, request: bytes) -> float:
        """Wait for silence, write, and return the loop time at which transmission began."""
        await self._wait_quiet()
        sent_at = self._now()
        await self._guard(self.link.write(request))
        self.stats.frames_sent += 1
        self.stats.sent_times.append(sent_at)
        self._quiet_since = sent_at + wire_time(len(request), self.baudrate, self.bits_per_char)
        return sent_at

    async def _read(self, timeout: float) -> bytes:
        data = await self._guard(self.link.read(timeout))
        if data:
            self._quiet_since = max(self._quiet_since, self.link.last_rx or self._now())
        return data

    async def _guard(self, op: Any) -> Any:
        try:
            return await op
        except LinkError:
            self.stats.link_errors += 1
            raise
