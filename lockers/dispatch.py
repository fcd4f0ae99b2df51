"""Dispatch promises shown to a resident who posts an item (service plan §1).

The plan promises: collections 3 times a day (morning, noon, evening); items posted before 11:00 leave
the same day; items posted before 17:00 reach the regional sorting centre by 10:00 the next day. The
collection times are not in the plan, so the defaults here are this project's choice: **09:30, 12:30
and 17:30**. 12:30 is after the 11:00 cut-off (so the same-day promise holds with room for the morning
queue) and before the 14:00 report to the post office (plan §5); 17:30 is after the 17:00 regional
cut-off, so the evening collection carries everything the next-morning promise covers. All times are
configurable (:meth:`DispatchSchedule.from_config`).

Definitions (the station's wall clock, ``tz``, whatever zone ``posted_at`` is in):

* ``next_collection``: the first collection at or after the posting instant (a collection at 12:30
  takes an item posted at 12:30:00); after the last one of the day, the next day's first. This is the
  timetable, not a promise.
* ``leaves_same_day``: the promise, i.e. posted strictly before ``same_day_cutoff`` (10:59:59 yes,
  11:00:00 no). An item posted after the cut-off counts as posted the next day, so ``leaves_on`` is the
  next day. It may still catch a later collection today (12:30); that is not promised.
* ``regional_centre_by``: posted strictly before ``regional_cutoff``: the next day at ``regional_by``.
  After the cut-off the item counts as posted the next day, so the answer is the day after next at
  ``regional_by``. It is computed, never None, so the screen always has a date to show.

Not modelled: days without collections (Sundays, public holidays); the plan does not say there are any.
The arithmetic works on local calendar dates and wall-clock times, which are given the zone last.
Asia/Shanghai has had no daylight-saving time since 1991; in a zone with DST the answers stay wall-clock
times, but a collection inside a skipped or repeated hour and :meth:`DispatchSchedule.max_wait` would be
off by that hour.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_COLLECTIONS", "DispatchPromise", "DispatchSchedule", "STATION_TZ", "parse_hhmm"]

STATION_TZ = ZoneInfo("Asia/Shanghai")
DEFAULT_COLLECTIONS = (dt.time(9, 30), dt.time(12, 30), dt.time(17, 30))
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)
_CONFIG_KEYS = frozenset({"collections", "same_day_cutoff", "regional_cutoff", "regional_by", "timezone"})


def parse_hhmm(value: str | dt.time, what: str) -> dt.time:
    """A wall-clock time from ``"HH:MM"`` (24-hour, two digits each) or a ``datetime.time`` (TOML's
    local-time values arrive as one). ``what`` names the setting in the error message."""
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise ValueError(f"{what}: give a wall-clock time without a time zone, got {value.isoformat()}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a time as \"HH:MM\", got {type(value).__name__}")
    match = _HHMM.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{what}: expected a time as \"HH:MM\" (00:00 to 23:59), got {value!r}")
    return dt.time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class DispatchPromise:
    """What the screen tells a resident about one posting. Datetimes are aware, in the station's zone."""

    posted_at: dt.datetime
    next_collection: dt.datetime
    leaves_same_day: bool
    leaves_on: dt.date
    regional_centre_by: dt.datetime


@dataclass(frozen=True)
class DispatchSchedule:
    """The station's collection timetable and promise cut-offs. ``collections`` are wall-clock times in
    ``tz``; they are sorted on construction and must be distinct. The last collection must not be
    before ``same_day_cutoff``, or the same-day promise could not be kept."""

    collections: tuple[dt.time, ...] = DEFAULT_COLLECTIONS
    same_day_cutoff: dt.time = dt.time(11, 0)
    regional_cutoff: dt.time = dt.time(17, 0)
    regional_by: dt.time = dt.time(10, 0)
    tz: ZoneInfo = field(default=STATION_TZ)

    def __post_init__(self) -> None:
        times = tuple(self.collections)
        if not times:
            raise ValueError("collections: at least one collection time is needed")
        for name in ("same_day_cutoff", "regional_cutoff", "regional_by"):
            if not isinstance(getattr(self, name), dt.time) or getattr(self, name).tzinfo is not None:
                raise ValueError(f"{name}: must be a datetime.time without a time zone")
        if not all(isinstance(t, dt.time) and t.tzinfo is None for t in times):
            raise ValueError("collections: every entry must be a datetime.time without a time zone")
        ordered = tuple(sorted(times))
        repeated = sorted({t.strftime("%H:%M:%S") for t in ordered if ordered.count(t) > 1})
        if repeated:
            raise ValueError(f"collections: repeated times {', '.join(repeated)}")
        if ordered[-1] < self.same_day_cutoff:
            raise ValueError(f"collections: the last one ({ordered[-1]:%H:%M}) is before the same-day cut-off "
                             f"({self.same_day_cutoff:%H:%M}), so items posted just before the cut-off "
                             "could not leave the same day")
        if not isinstance(self.tz, dt.tzinfo):
            raise ValueError("tz: must be a time zone (zoneinfo.ZoneInfo)")
        object.__setattr__(self, "collections", ordered)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DispatchSchedule:
        """A schedule from a configuration table; missing keys keep the defaults.

        Keys: ``collections`` (list of "HH:MM"), ``same_day_cutoff``, ``regional_cutoff``,
        ``regional_by`` ("HH:MM"), ``timezone`` (an IANA name, default "Asia/Shanghai"). Unknown keys
        are refused so that a misspelt setting is not silently ignored.
        """
        if not isinstance(config, Mapping):
            raise ValueError("dispatch configuration must be a table")
        unknown = sorted(set(config) - _CONFIG_KEYS)
        if unknown:
            raise ValueError(f"dispatch configuration: unknown keys {', '.join(map(str, unknown))} "
                             f"(known: {', '.join(sorted(_CONFIG_KEYS))})")
        kwargs: dict[str, Any] = {}
        if "collections" in config:
            kwargs["collections"] = _collections(config["collections"])
        for key in ("same_day_cutoff", "regional_cutoff", "regional_by"):
            if key in config:
                kwargs[key] = parse_hhmm(config[key], key)
        if "timezone" in config:
            kwargs["tz"] = _zone(config["timezone"])
        return cls(**kwargs)

    def promise(self, posted_at: dt.datetime) -> DispatchPromise:
        """The promise for an item posted at ``posted_at`` (an aware datetime, any zone)."""
        if not isinstance(posted_at, dt.datetime):
            raise TypeError("posted_at must be a datetime")
        if posted_at.tzinfo is None or posted_at.utcoffset() is None:
            raise ValueError("posted_at must be timezone-aware (a naive time is ambiguous)")
        local = posted_at.astimezone(self.tz)
        day, clock = local.date(), local.time().replace(tzinfo=None)
        same_day = clock < self.same_day_cutoff
        regional_day = day + dt.timedelta(days=1 if clock < self.regional_cutoff else 2)
        return DispatchPromise(
            posted_at=local,
            next_collection=self._next_collection(local),
            leaves_same_day=same_day,
            leaves_on=day if same_day else day + dt.timedelta(days=1),
            regional_centre_by=self._at(regional_day, self.regional_by),
        )

    def _at(self, day: dt.date, clock: dt.time) -> dt.datetime:
        # wall-clock time on a local date; fold=0 picks the first of a repeated hour (DST zones only)
        return dt.datetime.combine(day, clock, tzinfo=self.tz)

    def _next_collection(self, local: dt.datetime) -> dt.datetime:
        day = local.date()
        for clock in self.collections:
            candidate = self._at(day, clock)
            if candidate >= local:
                return candidate
        return self._at(day + dt.timedelta(days=1), self.collections[0])

    def max_wait(self) -> dt.timedelta:
        """The longest possible time from posting to the next collection: the largest gap between
        consecutive collections, counting the overnight gap (24 h for a single daily collection)."""
        minutes = [t.hour * 60 + t.minute + t.second / 60 for t in self.collections]
        gaps = [b - a for a, b in zip(minutes, minutes[1:])] + [minutes[0] + 24 * 60 - minutes[-1]]
        return dt.timedelta(minutes=max(gaps))


def _collections(value: Any) -> tuple[dt.time, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError("collections: expected a list of times as \"HH:MM\"")
    return tuple(parse_hhmm(v, f"collections[{i}]") for i, v in enumerate(value))


def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("timezone: expected an IANA zone name such as \"Asia/Shanghai\"")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"timezone: unknown zone {name!r}") from err
