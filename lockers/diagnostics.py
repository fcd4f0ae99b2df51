"""What a technician sees of a running station: devices, doors, bus traffic, a self-test, the journal
and a support bundle. Read-only, except for :meth:`Diagnostics.pulse_door` (one door, journaled).

Personal data never leaves this module unmasked: the journal is passed through :func:`scrub`,
compartments through ``Custody.compartments()`` with no courier (masked tracking numbers, no
phones), and the support bundle is built from those same masked views.

Devices other than lock banks (scanner, printer, ID-card reader, scale, camera) are handed in as
``name -> device``; a device is described by its ``describe()`` and, when it has one, an async
``health()`` returning a dict with at least ``ok``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import platform
import re
import shutil
import sqlite3
import time
import zipfile
from collections.abc import Callable
from typing import Any

from hal.lockbank import DoorState
from lockers import journal
from lockers.custody import Custody
from lockers.errors import InvalidInput
from lockers.invariants import integrity_check

#: words of 7 or more letters and digits with at least 6 digits (phones, pickup and payment codes,
#: ID numbers, tracking numbers) and pickup tokens: what :func:`scrub` masks wherever it finds them
_WORD = re.compile(r"PK1-[A-Z2-7]{26}|[0-9A-Za-z]{7,}", re.IGNORECASE)


def _mask_word(match: re.Match[str]) -> str:
    word = match.group(0)
    if word.upper().startswith("PK1-") or sum(ch.isdigit() for ch in word) >= 6:
        return "…" + word[-4:]
    return word

#: disk space below which the self-test fails: the journal and backups need room
MIN_FREE_BYTES = 200 * 1024 * 1024


def scrub(text: str) -> str:
    """``text`` with every number-like word and pickup token masked to its last 4 characters."""
    return _WORD.sub(_mask_word, text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    return value


class Diagnostics:
    """The technician's view of ``custody`` and the station's other ``devices``."""

    def __init__(self, custody: Custody, *, devices: dict[str, Any] | None = None,
                 config_summary: Callable[[], dict[str, Any]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.custody = custody
        self.devices = devices or {}
        self.config_summary = config_summary or (lambda: {})
        self._clock = clock
        self.started_at = clock()

    # ------------------------------------------------------------------ station and devices

    async def station(self) -> dict[str, Any]:
        """Every configured device with its health, model or firmware where it reports one."""
        doors = self.custody.doors
        banks = []
        for name, bank in doors.banks.items():
            info = bank.describe()
            boards = {str(b): doors.failures.get((name, b), 0) == 0 for b in bank.profile.boards}
            banks.append({
                "name": name, "kind": "lock bank", "protocol": info.get("protocol"), "model": info.get("model"),
                "url": info.get("url"), "firmware": info.get("firmware"), "boards": boards,
                "ok": all(boards.values()),
                "detail": {k: v for k, v in info.items() if not k.startswith(("bus.", "board."))},
            })
        others = []
        for name, device in self.devices.items():
            others.append({"name": name, **await self._device_health(device)})
        return {"station": self.config_summary().get("station", ""), "uptime_s": round(self._clock() - self.started_at),
                "banks": banks, "devices": others, "database": await self._database_info()}

    async def _device_health(self, device: Any) -> dict[str, Any]:
        info: dict[str, Any] = {"kind": type(device).__name__}
        try:
            info.update({k: str(v) for k, v in device.describe().items()})
        except Exception as err:  # a broken describe() must not hide the rest of the page
            info["describe_error"] = type(err).__name__
        health = getattr(device, "health", None)
        if health is None:
            info["ok"] = bool(getattr(device, "is_open", True))
            return info
        try:
            report = await asyncio.wait_for(health(), timeout=5.0)
        except Exception as err:
            info.update(ok=False, error=f"{type(err).__name__}: {err}")
            return info
        info.update(_scrub_value(dict(report)))
        info["ok"] = bool(report.get("ok"))
        return info

    async def _database_info(self) -> dict[str, Any]:
        path = self.custody.db.path

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            return {"schema": conn.execute("PRAGMA user_version").fetchone()[0],
                    "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                    "events": conn.execute("SELECT count(*) FROM events").fetchone()[0]}

        info = await self.custody.db.read(read)
        info["file"] = path.name
        info["size_bytes"] = path.stat().st_size if path.exists() else 0
        return info

    # ------------------------------------------------------------------ doors and bus

    async def doors(self) -> list[dict[str, Any]]:
        """Every door: where its lock is, door and item sensor, compartment state, last command."""
        rows = {row["label"]: row for row in await self.custody.compartments(None)}
        out = []
        for label, spec in sorted(self.custody.layout.items()):
            row = rows.get(label, {})
            reading = self.custody.doors.reading(spec.address)
            last = self.custody.doors.last_commands.get(spec.address)
            parcel = row.get("parcel")
            out.append({
                "label": label, "bank": spec.bank, "board": spec.board, "channel": spec.channel, "size": spec.size,
                "door": reading.door.value, "item": reading.item, "state": row.get("state", "unknown"),
                "parcel": {"state": parcel["state"], "tracking": parcel["tracking"]} if parcel else None,
                "last_command": {"at": last[0], "what": last[1]} if last else None,
            })
        return out

    def bus(self) -> list[dict[str, Any]]:
        """Per bank: frames per second, timeouts, checksum errors, bytes dropped (garbage and bad
        frames), retries, unlock outcomes, and per board the reply latency histogram."""
        loop_now = asyncio.get_running_loop().time()
        out = []
        for name, bank in self.custody.doors.banks.items():
            stats = getattr(bank, "stats", None)
            entry: dict[str, Any] = {"bank": name, "protocol": bank.profile.protocol,
                                     "unlocks": dict(getattr(bank, "outcomes", {}))}
            if stats is None:  # e.g. Modbus through pymodbus: no frame-level counters
                entry["available"] = False
                out.append(entry)
                continue
            counters = stats.as_dict()
            entry.update(available=True, frames_per_second=stats.frames_per_second(loop_now),
                         frames_sent=counters["frames_sent"], replies=counters["replies"],
                         timeouts=counters["timeouts"], retries=counters["retries"],
                         checksum_errors=counters["checksum_errors"],
                         dropped_bytes=counters["skipped_bytes"], unexpected_frames=counters["unexpected_frames"],
                         link_errors=counters["link_errors"], latency=stats.latency_summary(),
                         boards={str(b): stats.board(b).as_dict() for b in bank.profile.boards})
            out.append(entry)
        return out

    async def pulse_door(self, technician: str, label: str, reason: str) -> None:
        """The door test: one unlock pulse of one door, journaled with who and why."""
        if label not in self.custody.layout:
            raise InvalidInput("compartment", f"no compartment {label}")
        await self.custody.technician_open(f"technician:{technician}", label, f"door test: {reason}")

    # ------------------------------------------------------------------ self-test

    async def selftest(self) -> dict[str, Any]:
        """Every check a technician runs on arrival; ``ok`` only if all pass."""
        checks: list[dict[str, Any]] = []

        def check(name: str, ok: bool, detail: str) -> None:
            checks.append({"check": name, "ok": bool(ok), "detail": detail})

        doors = self.custody.doors
        for name, bank in doors.banks.items():
            for board in bank.profile.boards:
                failures = doors.failures.get((name, board))
                check(f"bank {name} board {board} answers", failures == 0,
                      "answering" if failures == 0 else ("never polled yet" if failures is None
                                                        else f"{failures} polls unanswered in a row"))
        unknown = [label for label, spec in self.custody.layout.items()
                   if doors.reading(spec.address).door is DoorState.UNKNOWN]
        check("every door state known", not unknown,
              "all known" if not unknown else f"unknown: {', '.join(sorted(unknown)[:20])}")
        for name, device in self.devices.items():
            health = await self._device_health(device)
            detail = health.get("error") or health.get("detail") or ("ok" if health["ok"] else "not ok")
            check(f"{name}", health["ok"], str(detail))

        def db_checks(conn: sqlite3.Connection) -> tuple[str, journal.Verification | None, float | None]:
            try:
                quick = integrity_check(conn, "quick_check")
            except sqlite3.DatabaseError as err:  # damaged beyond what quick_check can describe
                return f"{type(err).__name__}: {err}", None, None
            try:
                last = conn.execute("SELECT max(at) FROM events").fetchone()[0]
                return quick, journal.verify(conn), last
            except sqlite3.DatabaseError as err:
                return quick if quick != "ok" else f"{type(err).__name__}: {err}", None, None

        quick, chain, last_event = await self.custody.db.read(db_checks)
        check("database integrity", quick == "ok", quick)
        check("journal hash chain", chain is not None and chain.ok,
              "cannot be read" if chain is None else f"{chain.rows} rows intact" if chain.ok
              else f"broken at row {chain.first_bad_id}: {chain.reason}")
        usage = shutil.disk_usage(self.custody.db.path.parent)
        check("disk space", usage.free >= MIN_FREE_BYTES,
              f"{usage.free // (1024 * 1024)} MB free of {usage.total // (1024 * 1024)} MB")
        now = self._clock()
        clock_ok = time.gmtime(now).tm_year >= 2024 and (last_event is None or now + 300 >= last_event)
        check("clock", clock_ok, time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now))
              + ("" if clock_ok else " (behind the journal, or unset: check NTP and the RTC)"))
        return {"ok": all(c["ok"] for c in checks), "at": now, "checks": checks}

    # ------------------------------------------------------------------ journal and bundle

    async def logs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent journal events, newest first, personal data masked."""
        limit = max(1, min(int(limit), 1000))
        rows = await self.custody.db.read(lambda c: c.execute(
            "SELECT id, at, kind, actor, compartment, parcel_id, detail FROM events ORDER BY id DESC LIMIT ?",
            (limit,)).fetchall())
        out = []
        for row in rows:
            try:
                detail = json.loads(row["detail"])
            except ValueError:
                detail = row["detail"]
            out.append(_scrub_value({"id": row["id"], "at": row["at"], "kind": row["kind"], "actor": row["actor"],
                                     "compartment": row["compartment"], "parcel_id": row["parcel_id"],
                                     "detail": detail}))
        return out

    async def support_bundle(self) -> bytes:
        """A zip for the vendor's support: configuration summary, devices, doors, bus, self-test,
        the last 1000 journal events, software versions. No personal data (masked views only)."""
        parts = {
            "config.json": self.config_summary(),
            "station.json": await self.station(),
            "doors.json": await self.doors(),
            "bus.json": self.bus(),
            "selftest.json": await self.selftest(),
            "journal.json": await self.logs(1000),
            "versions.json": _versions(),
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, data in parts.items():
                bundle.writestr(name, json.dumps(_scrub_value(data), ensure_ascii=False, indent=2, default=str))
        return buf.getvalue()


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform(), "pid": str(os.getpid())}
    for dist in ("postkiosk", "pyserial", "pymodbus", "fastapi", "uvicorn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
