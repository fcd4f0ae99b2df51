"""What every lock-board protocol must do, whatever its bytes: the shared contract.

Each protocol has an adapter module in ``tests/hal/protocols/`` with ``PROTOCOL``, ``BOARDS``,
``CHANNELS``, ``HAS_ITEM_SENSORS`` and ``async start(transport, polarity) -> SimHandle`` that starts
its wire-level simulator ("pty" or "tcp"); ``test_lockbank_contract.py`` runs the same tests on all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class SimHandle:
    """Uniform control of a simulated wall: what a person does, and what the bus does wrong."""

    url: str
    close: Callable[[], Awaitable[None]]
    open_door: Callable[[int, int], None]
    close_door: Callable[[int, int], None]
    put_item: Callable[[int, int], None] | None
    remove_item: Callable[[int, int], None] | None
    set_jammed: Callable[[int, int, bool], None]
    pulses: Callable[[int, int], int]
    drop_replies: Callable[[int], None]
    garbage_before_reply: Callable[[], None]
    answer_from_wrong_address: Callable[[int], None]
    stop_answering: Callable[[int], None]
    resume_answering: Callable[[int], None]
