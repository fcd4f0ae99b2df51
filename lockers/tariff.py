"""Pricing an item to post: first weight plus additional weight, by destination zone.

The station's tariff lives in the configuration (``[posting.tariff]``) so it can follow the carrier's
price list without a release; :data:`DEFAULT_TARIFF` is a starting point for a station in 浙江省.
Money is integer fen and weight integer grams throughout, so no rounding happens anywhere except the
one the tariff defines: the weight beyond the first weight is rounded up to whole steps.

Province names are compared by their short form (``浙江省`` and ``浙江``, ``新疆维吾尔自治区`` and
``新疆`` are one province), so the tariff accepts what the address parser returns and what a person types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lockers.errors import InvalidInput

LOCAL_ZONE = "local"
_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")
_PRICE_KEYS = ("first_weight_g", "first_fen", "step_g", "step_fen")
_TARIFF_KEYS = {"origin_province", "zones", "prices", "max_weight_g"}


def province_key(name: str) -> str:
    """The short form a province is compared by: ``浙江省`` -> ``浙江``, ``内蒙古自治区`` -> ``内蒙古``."""
    name = name.strip()
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class ZonePrice:
    """First weight (grams) for ``first_fen``, then each started ``step_g`` grams for ``step_fen``."""

    first_weight_g: int
    first_fen: int
    step_g: int
    step_fen: int

    def __post_init__(self) -> None:
        for key in _PRICE_KEYS:
            _check_int(getattr(self, key), key, minimum=0 if key.endswith("_fen") else 1)


@dataclass(frozen=True)
class Quote:
    """The price shown to the resident before anything is charged, with the arithmetic behind it."""

    zone: str
    weight_g: int
    charged_weight_g: int
    price_fen: int
    first_fen: int
    extra_steps: int
    step_fen: int


@dataclass(frozen=True)
class Tariff:
    """Zones of destination provinces and a price per zone. The origin province is zone ``local``
    unless the configuration lists it in another zone."""

    origin_province: str
    zones: dict[str, tuple[str, ...]]
    prices: dict[str, ZonePrice]
    max_weight_g: int = 30000
    _zone_by_key: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int(self.max_weight_g, "tariff.max_weight_g", minimum=1)
        if not isinstance(self.origin_province, str) or not province_key(self.origin_province):
            raise ValueError("tariff.origin_province must name a province")
        index = _zone_index(self.zones)
        index.setdefault(province_key(self.origin_province), LOCAL_ZONE)
        for zone in sorted(set(index.values()) - set(self.prices)):
            raise ValueError(f"tariff.prices.{zone} is missing: zone {zone!r} has no price")
        for zone in sorted(set(self.prices) - set(index.values())):
            raise ValueError(f"tariff.prices.{zone} prices a zone that no province belongs to")
        object.__setattr__(self, "_zone_by_key", index)

    @classmethod
    def from_config(cls, data: Mapping[str, Any], known_provinces: Iterable[str] | None = None) -> Tariff:
        """Build from the ``[posting.tariff]`` TOML table; ValueError names the offending key.

        ``known_provinces`` (for example :func:`lockers.address.province_names`) also catches a
        misspelt province, which would otherwise only show when someone posts there.
        """
        if not isinstance(data, Mapping):
            raise ValueError("tariff must be a table")
        for key in sorted(set(data) - _TARIFF_KEYS):
            raise ValueError(f"tariff.{key} is not a tariff setting (expected one of {sorted(_TARIFF_KEYS)})")
        for key in ("origin_province", "zones", "prices"):
            if key not in data:
                raise ValueError(f"tariff.{key} is missing")
        zones = _zones_from_config(data["zones"])
        prices = _prices_from_config(data["prices"])
        tariff = cls(
            origin_province=data["origin_province"],
            zones=zones,
            prices=prices,
            max_weight_g=data.get("max_weight_g", 30000),
        )
        if known_provinces is not None:
            tariff._check_known(known_provinces)
        return tariff

    def zone_of(self, province: str) -> str:
        """The zone a destination province belongs to; InvalidInput("province") if the tariff has none."""
        zone = self._zone_by_key.get(province_key(province or ""))
        if zone is None:
            raise InvalidInput("province", f"no tariff zone for destination province {province!r}")
        return zone

    def quote(self, weight_g: int, province: str) -> Quote:
        """The price for ``weight_g`` grams to ``province``; InvalidInput("weight") outside 1..max_weight_g."""
        if isinstance(weight_g, bool) or not isinstance(weight_g, int):
            raise InvalidInput("weight", "the weight is a whole number of grams")
        if weight_g <= 0:
            raise InvalidInput("weight", "the weight must be more than 0 g")
        if weight_g > self.max_weight_g:
            raise InvalidInput("weight", f"the weight is over the limit of {self.max_weight_g} g")
        zone = self.zone_of(province)
        price = self.prices[zone]
        extra_steps = max(0, math.ceil((weight_g - price.first_weight_g) / price.step_g))
        return Quote(
            zone=zone,
            weight_g=weight_g,
            charged_weight_g=price.first_weight_g + extra_steps * price.step_g,
            price_fen=price.first_fen + extra_steps * price.step_fen,
            first_fen=price.first_fen,
            extra_steps=extra_steps,
            step_fen=price.step_fen,
        )

    def _check_known(self, known_provinces: Iterable[str]) -> None:
        known = {province_key(name) for name in known_provinces}
        if province_key(self.origin_province) not in known:
            raise ValueError(f"tariff.origin_province: {self.origin_province!r} is not a province")
        for zone, provinces in self.zones.items():
            for name in provinces:
                if province_key(name) not in known:
                    raise ValueError(f"tariff.zones.{zone}: {name!r} is not a province")


def _check_int(value: Any, key: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number, not {value!r}")
    if value < minimum:
        raise ValueError(f"{key} must be at least {minimum}, not {value}")


def _zone_index(zones: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    index: dict[str, str] = {}
    for zone, provinces in zones.items():
        for name in provinces:
            key = province_key(name)
            if key in index:
                raise ValueError(f"tariff.zones.{zone}: {name!r} is already in zone {index[key]!r}")
            index[key] = zone
    return index


def _zones_from_config(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        raise ValueError("tariff.zones must be a table of zone name = [provinces]")
    zones: dict[str, tuple[str, ...]] = {}
    for zone, provinces in raw.items():
        if isinstance(provinces, str) or not isinstance(provinces, (list, tuple)) or not provinces:
            raise ValueError(f"tariff.zones.{zone} must be a non-empty list of province names")
        for name in provinces:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"tariff.zones.{zone} holds {name!r}, which is not a province name")
        zones[str(zone)] = tuple(name.strip() for name in provinces)
    return zones


def _prices_from_config(raw: Any) -> dict[str, ZonePrice]:
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError("tariff.prices must be a table with one sub-table per zone")
    prices: dict[str, ZonePrice] = {}
    for zone, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"tariff.prices.{zone} must be a table of {', '.join(_PRICE_KEYS)}")
        for key in sorted(set(entry) - set(_PRICE_KEYS)):
            raise ValueError(f"tariff.prices.{zone}.{key} is not a price setting")
        for key in _PRICE_KEYS:
            if key not in entry:
                raise ValueError(f"tariff.prices.{zone}.{key} is missing")
            _check_int(entry[key], f"tariff.prices.{zone}.{key}", minimum=0 if key.endswith("_fen") else 1)
        prices[str(zone)] = ZonePrice(**{key: entry[key] for key in _PRICE_KEYS})
    return prices


DEFAULT_TARIFF: dict[str, Any] = {
    "origin_province": "浙江省",
    "max_weight_g": 30000,
    "zones": {
        "neighbours": ["上海市", "江苏省", "安徽省"],
        "mainland": [
            "北京市", "天津市", "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省", "福建省", "江西省",
            "山东省", "河南省", "湖北省", "湖南省", "广东省", "广西壮族自治区", "海南省", "重庆市",
            "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "宁夏回族自治区",
        ],
        "remote": ["内蒙古自治区", "西藏自治区", "青海省", "新疆维吾尔自治区"],
    },
    # Typical counter prices for a private parcel from Zhejiang (yuan: 8+2, 10+3, 12+5, 20+12 per kg).
    "prices": {
        "local": {"first_weight_g": 1000, "first_fen": 800, "step_g": 1000, "step_fen": 200},
        "neighbours": {"first_weight_g": 1000, "first_fen": 1000, "step_g": 1000, "step_fen": 300},
        "mainland": {"first_weight_g": 1000, "first_fen": 1200, "step_g": 1000, "step_fen": 500},
        "remote": {"first_weight_g": 1000, "first_fen": 2000, "step_g": 1000, "step_fen": 1200},
    },
}
"""The default ``[posting.tariff]`` table. Hong Kong, Macao and Taiwan are not in it: posting there is
international-style (customs declaration) and is refused with a clear error until a zone is added."""


def sample_toml() -> str:
    """:data:`DEFAULT_TARIFF` as the ``[posting.tariff]`` TOML text for the example configuration."""
    lines = [
        "# Price = first_fen for the first first_weight_g grams, then step_fen for each started step_g.",
        "# Money in fen (1 yuan = 100 fen), weight in grams. The origin province is zone \"local\".",
        "[posting.tariff]",
        f"origin_province = {_toml_str(DEFAULT_TARIFF['origin_province'])}",
        f"max_weight_g = {DEFAULT_TARIFF['max_weight_g']}",
        "",
        "[posting.tariff.zones]",
    ]
    for zone, provinces in DEFAULT_TARIFF["zones"].items():
        lines.append(f"{zone} = [{', '.join(_toml_str(name) for name in provinces)}]")
    for zone, price in DEFAULT_TARIFF["prices"].items():
        lines += ["", f"[posting.tariff.prices.{zone}]"]
        lines += [f"{key} = {price[key]}" for key in _PRICE_KEYS]
    return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
