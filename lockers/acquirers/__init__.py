"""Payment acquirers: one backend per acquirer protocol, one answer shape for the state machine.

The payment state machine (``lockers/payments.py``) talks to every channel through the three
coroutines below and only ever sees :class:`AcquirerAnswer` / :class:`ReverseAnswer`. A backend
maps its protocol's codes onto these few outcomes; the rule that matters is that it answers
``"paid"`` only on a definite, authenticated success, and ``"unknown"`` whenever it cannot tell
(network error, timeout, bad signature), so the machine queries and, if need be, reverses.

Backends must implement::

    channel: str                       # "wechat", "alipay", "ecny"
    endpoint: str                      # the gateway's base URL (the network check dials its host)
    async def pay(order_no, amount_fen, auth_code, subject) -> AcquirerAnswer
    async def query(order_no) -> AcquirerAnswer
    async def reverse(order_no) -> ReverseAnswer
    async def aclose() -> None
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Self

PAY_OUTCOMES = frozenset({"paid", "user_paying", "failed", "unknown"})
REVERSE_OUTCOMES = frozenset({"reversed", "refunded", "retry", "unknown"})


@dataclass(frozen=True)
class AcquirerAnswer:
    """What the gateway said about a charge.

    ``outcome``: ``"paid"`` (definite, authenticated success), ``"user_paying"`` (not final yet:
    query again), ``"failed"`` (definite: nothing was charged, ``reason`` says why), ``"unknown"``
    (no trustworthy answer: query, then reverse). ``reason`` is a protocol code such as
    ``"NOTENOUGH"`` or ``"network"``, never personal data.
    """

    outcome: str
    reason: str | None = None
    transaction_id: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in PAY_OUTCOMES:
            raise ValueError(f"unknown pay outcome {self.outcome!r}")


@dataclass(frozen=True)
class ReverseAnswer:
    """What the gateway said about a reverse (撤销) / cancel.

    ``"reversed"``: the order is closed and was never paid; ``"refunded"``: it had been paid and the
    money goes back; ``"retry"``: call again with identical parameters; ``"unknown"``: no
    trustworthy or no final answer (staff must look, ``reason`` says why).
    """

    outcome: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in REVERSE_OUTCOMES:
            raise ValueError(f"unknown reverse outcome {self.outcome!r}")


class Acquirer(Protocol):
    """The interface every backend provides (structural; backends need not inherit)."""

    channel: str
    endpoint: str

    async def pay(
        self, order_no: str, amount_fen: int, auth_code: str, subject: str
    ) -> AcquirerAnswer: ...

    async def query(self, order_no: str) -> AcquirerAnswer: ...

    async def reverse(self, order_no: str) -> ReverseAnswer: ...

    async def aclose(self) -> None: ...


class HttpAcquirer:
    """What every HTTP backend shares: the gateway URL it talks to (``endpoint``, which the payment
    network check dials) and the ``httpx.AsyncClient`` it owns (closed by :meth:`aclose`) or was
    given (left open). Subclasses set ``_endpoint``, ``_client`` and ``_owns_client``."""

    _endpoint: str
    _client: Any
    _owns_client: bool

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def mask_code(auth_code: str) -> str:
    """The only form of a payment code that may reach a log: its last 4 characters."""
    return "…" + auth_code[-4:] if len(auth_code) > 4 else "…"


__all__ = ["AcquirerAnswer", "ReverseAnswer", "Acquirer", "HttpAcquirer", "mask_code"]
