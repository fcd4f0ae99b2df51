"""The kiosk screen's flow state. It lives here, in the service; the browser only shows it.

A browser that reloads, crashes or opens a second window renders the same screen again from
``GET /``. While a door flow is active every page shows it, so nobody walks away from an open door
because a page was reloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import Any

from lockers.custody import Custody, DoorTicket, FlowEvent

#: flow event kind -> (result key, tone). Result keys name the message shown on the result screen.
RESULTS: dict[str, tuple[str, str]] = {
    "deposit.stored": ("deposit_stored", "ok"),
    "deposit.cancelled": ("deposit_cancelled", "warn"),
    "pickup.collected": ("collected", "ok"),
    "pickup.not_taken": ("not_taken", "warn"),
    "pickup.door_not_opened": ("door_not_opened", "error"),
    "pickup.lock_bus_error": ("door_not_opened", "error"),
    "pickup.refused": ("refused", "ok"),
    "retrieve.returned": ("returned", "ok"),
    "retrieve.not_taken": ("retrieve_not_taken", "warn"),
    "retrieve.door_not_opened": ("door_not_opened", "error"),
    "posting.stored": ("posted", "ok"),
    "posting.cancelled": ("dropoff_cancelled", "warn"),
    "collect.dispatched": ("dispatched", "ok"),
    "collect.not_taken": ("retrieve_not_taken", "warn"),
    "collect.door_not_opened": ("door_not_opened", "error"),
    "collect.lock_bus_error": ("door_not_opened", "error"),
}


@dataclass(frozen=True)
class Screen:
    name: str = "home"  # home | door | result
    flow: str | None = None  # deposit | pickup | retrieve | posting | collect
    refusing: bool = False  # the resident chose to refuse the parcel on screen
    large_print: bool = False  # a resident of 60 or more (from the ID card of a posting)
    compartment: str | None = None
    parcel_id: int | None = None
    door: str = "unknown"  # live door state of the compartment on screen
    result: str | None = None
    tone: str = "ok"
    detail: dict[str, Any] | None = None
    version: int = 0

    def public(self) -> dict[str, Any]:
        """What any page may see (no personal data is ever part of a screen)."""
        return {"name": self.name, "flow": self.flow, "compartment": self.compartment, "door": self.door,
                "result": self.result, "tone": self.tone, "detail": self.detail or {}, "version": self.version,
                "refusing": self.refusing, "large_print": self.large_print}


class Terminal:
    """Follows custody events for the flow on screen. ``result_seconds``: how long a result stays."""

    def __init__(self, custody: Custody, *, result_seconds: float = 10.0) -> None:
        self.custody = custody
        self.result_seconds = result_seconds
        self.screen = Screen()
        self._subscribers: set[asyncio.Queue[tuple[str, dict[str, Any]]]] = set()
        # listening pages, in the order they connected: the last one is the page on show
        self._pages: dict[asyncio.Queue[tuple[str, dict[str, Any]]], str] = {}
        self._task: asyncio.Task[None] | None = None
        self._home_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        queue = self.custody.subscribe()
        self._task = asyncio.create_task(self._follow(queue), name="terminal")

    async def stop(self) -> None:
        if self._home_timer:
            self._home_timer.cancel()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, page: str | None = None) -> asyncio.Queue[tuple[str, dict[str, Any]]]:
        """A queue of ``(event, data)``. ``page`` names the page that listens (``kiosk.scans.PAGES``):
        the page that subscribed last and still listens is :attr:`page`, where scans are routed."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=256)
        self._subscribers.add(queue)
        if page is not None:
            self._pages[queue] = page
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        self._subscribers.discard(queue)
        self._pages.pop(queue, None)

    @property
    def page(self) -> str | None:
        """The page the kiosk's browser shows (the last one to connect), None when no page listens."""
        return next(reversed(self._pages.values()), None)

    def publish_to_page(self, page: str, event: str, data: dict[str, Any]) -> int:
        """Send an event only to the listeners of ``page`` (a scanned waybill for the deposit page);
        returns how many got it."""
        sent = 0
        for queue, name in list(self._pages.items()):
            if name != page:
                continue
            if queue.full():
                self.unsubscribe(queue)
            else:
                queue.put_nowait((event, data))
                sent += 1
        return sent

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to every listening page (the posting flow's changes)."""
        self._publish(event, data)

    def _publish(self, event: str, data: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():  # a stalled browser must not grow memory; it reloads and catches up
                self.unsubscribe(queue)
            else:
                queue.put_nowait((event, data))

    def _show(self, screen: Screen) -> None:
        if self._home_timer:
            self._home_timer.cancel()
            self._home_timer = None
        self.screen = replace(screen, version=self.screen.version + 1)
        if screen.name == "result":
            self._home_timer = asyncio.get_running_loop().call_later(self.result_seconds, self.go_home)
        self._publish("screen", self.screen.public())

    @property
    def busy(self) -> bool:
        """A door flow is on screen: new flows must wait for it."""
        return self.screen.name == "door"

    def go_home(self) -> None:
        if self.screen.name == "result":
            self._show(Screen())

    def dismiss(self) -> None:
        """A person tapped "done" on a result screen."""
        self.go_home()

    def door_flow(self, flow: str, ticket: DoorTicket, *, large_print: bool = False) -> None:
        self._show(Screen(name="door", flow=flow, compartment=ticket.compartment, parcel_id=ticket.parcel_id,
                          door=self.custody.door_of(ticket.compartment), large_print=large_print))

    def show_result(self, result: str, tone: str, flow: str | None = None, compartment: str | None = None,
                    *, large_print: bool = False, **detail: Any) -> None:
        self._show(Screen(name="result", flow=flow, compartment=compartment, result=result, tone=tone,
                          detail=detail, large_print=large_print))

    async def _follow(self, queue: asyncio.Queue[FlowEvent]) -> None:
        while True:
            self.on_event(await queue.get())

    def on_event(self, event: FlowEvent) -> None:
        screen = self.screen
        if event.kind == "door.changed":
            self._publish("door", {"compartment": event.compartment, "door": event.detail.get("door")})
            if screen.name == "door" and screen.compartment == event.compartment:
                self.screen = replace(screen, door=event.detail.get("door", "unknown"))
            return
        if event.kind.startswith("alarm."):
            self._publish("alarm", {"kind": event.kind, "compartment": event.compartment})
            return
        if screen.name != "door" or event.parcel_id != screen.parcel_id:
            return
        if event.kind == "pickup.refusing":
            self._show(replace(screen, refusing=True))
        elif event.kind.endswith(".door_open"):
            self.screen = replace(screen, door="open")
            self._publish("screen", self.screen.public())
        elif event.kind in RESULTS:
            result, tone = RESULTS[event.kind]
            self.show_result(result, tone, flow=screen.flow, compartment=screen.compartment,
                             large_print=screen.large_print, **event.detail)
