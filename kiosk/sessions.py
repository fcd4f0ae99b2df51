"""Staff sessions on the kiosk: a random token per login, ended after ``idle_seconds`` without use.

Kept in memory on purpose: a restart logs everyone out, which is the safe side for a public terminal.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from lockers.accounts import Courier


@dataclass
class Session:
    token: str
    courier: Courier
    role: str
    last_used: float


class Sessions:
    def __init__(self, idle_seconds: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, courier: Courier, role: str = "courier") -> Session:
        session = Session(secrets.token_urlsafe(32), courier, role, self._clock())
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token``, touching it; None if unknown or idle too long."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_used > self.idle_seconds:
            del self._sessions[token]
            return None
        session.last_used = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
