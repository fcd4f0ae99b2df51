"""Is the payment network up? A small background check, so no paid flow starts offline (T-F2).

Micropay has no offline mode: a payment code scanned with no way to the acquirer can only end in
"outcome unknown". So before a paid flow starts the kiosk asks :meth:`Reachability.online`, which
answers from the last check of the acquirers' endpoints (a TCP connection to each host and port,
every ``interval`` seconds, in the background; the check itself never blocks a resident).

Online means: at least one endpoint answered within the last ``stale_after`` seconds. The first
answer comes from a check made at :meth:`start`, so a station that boots without network starts
offline, and one that loses it goes offline within ``interval + timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


def endpoint(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


class Reachability:
    """Background TCP reachability of a few endpoints; :meth:`online` answers at once."""

    def __init__(self, endpoints: Iterable[tuple[str, int]], *, interval: float = 15.0, timeout: float = 3.0,
                 stale_after: float | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.endpoints = sorted(set(endpoints))
        if not self.endpoints:
            raise ValueError("nothing to check: give at least one endpoint")
        self.interval = interval
        self.timeout = timeout
        self.stale_after = stale_after if stale_after is not None else 2 * interval + timeout
        self._mono = monotonic
        self._last_ok: float | None = None
        self._was_online: bool | None = None
        self._task: asyncio.Task[None] | None = None

    def online(self) -> bool:
        return self._last_ok is not None and self._mono() - self._last_ok <= self.stale_after

    async def check(self) -> bool:
        """Check now; True when some endpoint accepted a connection."""
        for host, port in self.endpoints:
            try:
                _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
            except (OSError, TimeoutError):
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self._last_ok = self._mono()
            break
        now_online = self.online()
        if now_online != self._was_online:
            log.log(logging.INFO if now_online else logging.WARNING, "payment network %s",
                    "reachable" if now_online else "unreachable: no paid flow starts")
            self._was_online = now_online
        return now_online

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._run(), name="payment-network-check")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # a bug here must not stop the checks for good
                log.exception("network check failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
