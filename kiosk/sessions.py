"""Staff sessions on the kiosk: a random token per login, ended after ``idle_seconds`` without use.

Kept in memory on purpose: a restart logs everyone out, which is the safe side for a public terminal.
The idle limit is at most 120 s (T-D2): the terminal stands in a public place.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from fastapi.responses import JSONResponse

from kiosk.errors import SessionRequired, StaffLoginFailed
from lockers.accounts import Account

MAX_IDLE_SECONDS = 120.0
SESSION_COOKIE = "pk_session"  # one session cookie for the app: a kiosk serves one person at a time


@dataclass
class Session:
    token: str
    account: Account
    last_used: float

    @property
    def role(self) -> str:
        return self.account.role

    @property
    def courier(self) -> Account:
        """The courier of a courier session (the custody calls that act for a courier take it)."""
        if self.account.role != "courier":
            raise PermissionError("not a courier session")
        return self.account


class Sessions:
    def __init__(self, idle_seconds: float = MAX_IDLE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < idle_seconds <= MAX_IDLE_SECONDS:
            raise ValueError(f"a staff session may stay idle at most {MAX_IDLE_SECONDS:g} s")
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, account: Account) -> Session:
        session = Session(secrets.token_urlsafe(32), account, self._clock())
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None, *, roles: tuple[str, ...] | None = None, touch: bool = True) -> Session | None:
        """The live session for ``token`` (with one of ``roles`` when given); None if unknown, of
        another role, or idle too long. ``touch``: this use counts as activity (a person did
        something), which restarts the idle time; a page polling for data does not."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_used > self.idle_seconds:
            del self._sessions[token]
            return None
        if roles is not None and session.role not in roles:
            return None
        if touch:
            session.last_used = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def live(self) -> int:
        """How many sessions are live now (expired ones are dropped)."""
        now = self._clock()
        for token in [t for t, s in self._sessions.items() if now - s.last_used > self.idle_seconds]:
            del self._sessions[token]
        return len(self._sessions)


class RequireRole:
    """Dependency that admits a live session (cookie or ``Authorization: Bearer``) with one of
    ``roles``; the route-table test reads ``roles``."""

    def __init__(self, *roles: str) -> None:
        self.roles = roles

    def __call__(self, request: Request) -> Session:
        sessions: Sessions = request.app.state.kiosk.sessions
        token = request.cookies.get(SESSION_COOKIE)
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        # Reads (a page polling the doors every second) do not keep a session alive: only actions
        # and page loads do, so a technician page left open still ends after the idle time.
        session = sessions.get(token, roles=self.roles, touch=request.method not in ("GET", "HEAD"))
        if session is None:
            raise SessionRequired()
        return session


async def log_in(request: Request, kiosk: object, login: str, password: str, role: str) -> JSONResponse:
    """Log a named person in with ``role``: the session cookie and, for API clients, the token
    (``Authorization: Bearer``) under the role's name. A wrong login or password (or an account of
    another role) is ``StaffLoginFailed``; failures count towards the account's lock."""
    from lockers.errors import LoginFailed

    try:
        account = await kiosk.custody.login(login.strip(), password, roles=(role,))  # type: ignore[attr-defined]
    except LoginFailed:
        raise StaffLoginFailed() from None
    sessions = kiosk.sessions  # type: ignore[attr-defined]
    session = sessions.create(account)
    response = JSONResponse({"token": session.token, role: {"login": account.login, "name": account.name},
                             "idle_timeout": sessions.idle_seconds})
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def log_out(kiosk: object, session: Session) -> JSONResponse:
    """End ``session`` and clear its cookie."""
    kiosk.sessions.end(session.token)  # type: ignore[attr-defined]
    response = JSONResponse({"ok": True})
    response.delete_cookie(SESSION_COOKIE)
    return response
