"""A web page that draws the simulated locker wall and lets a person act on it.

``wall_router(sims)`` serves:

* ``GET /sim``: the wall (self-contained HTML, inline CSS/JS), refreshed every 500 ms;
* ``GET /sim/api/state``: the same state as JSON;
* ``POST /sim/api/{bank}/{board}/{channel}/{action}``: a hand action, ``action`` one of
  open | close | put | take | jam | unjam;
* with a ``scanner``: ``POST /sim/api/scan/{n}`` shows the QR code of inbox message ``n`` (0 is the
  newest) to the simulated scanner, and ``POST /sim/api/scan`` with ``{"text": ...}`` any code.

Each door element has ``id="door-BANK-BOARD-CHANNEL"`` and ``data-bank``/``data-board``/
``data-channel``/``data-door`` (open|closed)/``data-item`` (present|empty)/``data-jammed``;
its buttons carry ``data-action``. Browser tests tap those. An inbox message whose notice carries a
QR code (the text after "扫码：") has a button ``data-action="scan"``, ``data-testid="scan-N"``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import HTMLResponse

from simulators.kerong_cu16 import KerongCU16Simulator, SimActionRefused

log = logging.getLogger(__name__)

ACTIONS = ("open", "close", "put", "take", "jam", "unjam")
POLL_MS = 500

Labels = Callable[[str, int, int], str]
Inbox = Callable[[], list[dict[str, Any]]]

#: what the QR code of a pickup notice holds: the link (or bare token) after "扫码："
QR_IN_NOTICE = re.compile(r"扫码[：:]\s*(\S+)")


class Scanner(Protocol):
    def scan(self, text: str) -> Any: ...


def qr_of(text: str) -> str | None:
    """The QR code content a notice's text stands for, or None."""
    found = QR_IN_NOTICE.search(text)
    return found.group(1) if found else None


def _apply(sim: KerongCU16Simulator, board: int, channel: int, action: str) -> None:
    if action == "open":
        sim.open_door(board, channel)
    elif action == "close":
        sim.close_door(board, channel)
    elif action in ("put", "take"):
        method = getattr(sim, "put_item" if action == "put" else "remove_item", None)
        if method is None:
            raise SimActionRefused("this wall has no item sensors: just close the door")
        method(board, channel)
    elif action == "jam":
        sim.set_jammed(board, channel, True)
    elif action == "unjam":
        sim.set_jammed(board, channel, False)
    else:  # pragma: no cover - checked by the caller
        raise ValueError(action)


def wall_router(
    sims: dict[str, KerongCU16Simulator],
    inbox: Inbox | None = None,
    labels: Labels | None = None,
    scanner: Scanner | None = None,
) -> APIRouter:
    """Routes for the simulated wall. ``sims`` maps a bank name to its simulator.

    ``inbox()`` returns the messages sent to residents, newest first, each a dict with at least
    "to" (already masked) and "text"; the page lists them in that order. ``labels(bank, board,
    channel)`` gives a compartment's label such as "A05"; without it, or when it returns None or
    "", the page shows "bank board/channel". ``scanner.scan(text)``, when given, is what the "show QR to
    the scanner" buttons call (the simulated kiosk scanner).
    """
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),
    )
    router = APIRouter()

    def label(bank: str, board: int, channel: int) -> str:
        if labels is not None:
            try:
                text = labels(bank, board, channel)
            except Exception:
                log.exception("labels(%r, %d, %d) failed", bank, board, channel)
            else:
                if text:
                    return str(text)
        return f"{bank} {board}/{channel}"

    def messages() -> list[dict[str, str]]:
        if inbox is None:
            return []
        try:
            items = list(inbox())
        except Exception:
            log.exception("inbox() failed")
            return []
        return [
            {"to": str(m.get("to", "")), "text": str(m.get("text", "")),
             "qr": qr_of(str(m.get("text", ""))) if scanner is not None else None}
            for m in items
        ]

    def state() -> dict[str, Any]:
        banks = []
        for name, sim in sims.items():
            snap = sim.snapshot()
            for board in snap["boards"]:
                for door in board["doors"]:
                    door["label"] = label(name, board["address"], door["channel"])
            banks.append({"bank": name, **snap})
        return {
            "version": ".".join(str(sim.version) for sim in sims.values()),
            "banks": banks,
            "inbox": messages() if inbox is not None else None,
        }

    @router.get("/sim", response_class=HTMLResponse, name="sim_wall")
    async def wall_page(request: Request) -> HTMLResponse:
        html = env.get_template("wall.html").render(
            state=state(),
            state_url=request.url_for("sim_state").path,
            api_base=request.url_for("sim_wall").path + "/api",
            poll_ms=POLL_MS,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @router.get("/sim/api/state", name="sim_state")
    async def wall_state() -> dict[str, Any]:
        return state()

    def scan(text: str) -> dict[str, Any]:
        if scanner is None:
            raise HTTPException(404, "no simulated scanner")
        scanner.scan(text)
        log.info("wall: a code of %d chars shown to the scanner", len(text))  # never the code: it opens a door
        return {"scanned": True, "chars": len(text)}

    @router.post("/sim/api/scan/{n}", name="sim_scan_message")
    async def scan_message(n: int) -> dict[str, Any]:
        items = messages()
        if not 0 <= n < len(items) or not items[n]["qr"]:
            raise HTTPException(404, f"no message {n} with a QR code")
        return scan(items[n]["qr"])

    @router.post("/sim/api/scan", name="sim_scan")
    async def scan_text(text: str = Body(embed=True, min_length=1, max_length=4000)) -> dict[str, Any]:
        return scan(text)

    @router.post("/sim/api/{bank}/{board}/{channel}/{action}", name="sim_action")
    async def wall_action(bank: str, board: int, channel: int, action: str) -> dict[str, Any]:
        if action not in ACTIONS:
            raise HTTPException(400, f"action must be one of {', '.join(ACTIONS)}")
        sim = sims.get(bank)
        if sim is None:
            raise HTTPException(404, f"no bank {bank!r}")
        try:
            sim.door(board, channel)
        except KeyError as err:
            raise HTTPException(404, str(err.args[0])) from err
        try:
            _apply(sim, board, channel, action)
        except SimActionRefused as err:
            raise HTTPException(409, str(err)) from err
        log.info("wall: %s on %s %d/%d", action, bank, board, channel)
        door = sim.door(board, channel)
        return {
            "bank": bank,
            "board": board,
            "channel": channel,
            "label": label(bank, board, channel),
            "closed": door.closed,
            "item": getattr(door, "item", False),  # walls without item sensors: never anything seen
            "jammed": door.jammed,
            "pulses": door.pulses,
        }

    return router
