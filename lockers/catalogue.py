"""Prohibited items (rule R15): the national guide catalogue, the item categories the kiosk offers, and the
check of one posting's declaration.

Why a data file: the catalogue (《禁止寄递物品指导目录》, annex of 《禁止寄递物品管理规定》, SPB/MPS/MSS 2016)
is public text the station must display (Art. 6) and that changes by government notice, not by code
review. ``lockers/data/prohibited_items.toml`` holds its 19 classes with the catalogue's Chinese wording
and our English translation; the file header says where the text was checked. :func:`load_catalogue`
reads and validates it on first use (nothing is read at import time).

Why categories in code: which kiosk choice maps to which catalogue class is this station's policy, and a
test holds every mapping against the catalogue. The resident picks a category (:data:`ITEM_CATEGORIES`)
and confirms the self-declaration; :func:`check_item` answers with a reason code. Categories a resident
might take for ordinary goods (a lighter, fireworks, paint, aerosols) are offered on purpose, so that the
refusal names the catalogue class at the kiosk rather than at the counter.

Two refusals rest on no catalogue class, so their ``prohibited_class`` is None:

* ``needs_counter_inspection``: loose lithium batteries and power banks. The catalogue lists lithium
  *metal* (class 6) and storage batteries (class 11) but not lithium-ion cells; carriers treat them as
  restricted (air transport) rather than banned [S, carrier notices]. How China Post handles them in
  domestic mail was not found [U], so the kiosk sends the resident to the counter.
* ``not_accepted``: cash. Not in the national catalogue (only forged currency is, class 15); carriers'
  own terms refuse 现金及货币 [S, a JD-affiliated service agreement], and the Postal Law's implementing
  rules are recalled to ban currency in mail [U]. The station does not take it.

No user-facing sentences live here (``kiosk/`` translates the codes); titles and examples are data.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lockers.errors import CustodyError

__all__ = [
    "CatalogueError", "ITEM_CATEGORIES", "ItemCategory", "ItemCheck", "MAX_QUANTITY", "MIN_QUANTITY",
    "ProhibitedClass", "REASON_CODES", "check_item", "load_catalogue",
]

MIN_QUANTITY = 1
MAX_QUANTITY = 99  # pieces of one category in one posting; more goes to the counter

#: every ``ItemCheck.reason_code`` and what it means (for kiosk message tables and technicians)
REASON_CODES: Mapping[str, str] = MappingProxyType({
    "prohibited": "the category is a class of the prohibited-items catalogue",
    "needs_counter_inspection": "the category may be accepted only after inspection at the counter",
    "not_accepted": "the station does not accept this category (not a catalogue class)",
    "unknown_category": "the category id is not one of ITEM_CATEGORIES (a stale or forged screen)",
    "quantity": f"the quantity is not between {MIN_QUANTITY} and {MAX_QUANTITY}",
    "declaration_missing": "the sender did not declare that the item holds nothing prohibited",
})


class CatalogueError(CustodyError, ValueError):
    """The catalogue data file is missing or malformed: a packaging defect, not a resident's error."""

    code = "catalogue"


@dataclass(frozen=True)
class ProhibitedClass:
    """One class of the guide catalogue. ``number`` is its ordinal in the catalogue (1-19);
    ``examples_zh[i]`` and ``examples_en[i]`` name the same item."""

    id: str
    number: int
    title_zh: str
    title_en: str
    examples_zh: tuple[str, ...]
    examples_en: tuple[str, ...]


@dataclass(frozen=True)
class ItemCategory:
    """A choice on the kiosk's "what are you sending" screen.

    ``prohibited_class`` is a :class:`ProhibitedClass` id when the choice is refused under the
    catalogue; ``refusal`` is the reason code for a refused choice (None when it may be posted).
    ``conditions`` are keys of what staff check at inspection (收寄验视) for an accepted choice, e.g.
    ``battery_installed``; the kiosk may show them as hints.
    """

    id: str
    title_zh: str
    title_en: str
    prohibited_class: str | None = None
    refusal: str | None = None
    conditions: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class ItemCheck:
    """The answer to one declaration: ``ok``, else a :data:`REASON_CODES` key and, for a catalogue
    refusal, the class id."""

    ok: bool
    reason_code: str | None = None
    prohibited_class: str | None = None


def _category(key: str, zh: str, en: str, **kw: Any) -> tuple[str, ItemCategory]:
    return key, ItemCategory(key, zh, en, **kw)


def _prohibited(key: str, zh: str, en: str, cls: str) -> tuple[str, ItemCategory]:
    return _category(key, zh, en, prohibited_class=cls, refusal="prohibited")


#: the kiosk's choices in display order: what may be posted first, then what looks like it but is not
ITEM_CATEGORIES: Mapping[str, ItemCategory] = MappingProxyType(dict((
    _category("documents", "文件", "Documents"),
    _category("clothing", "衣物", "Clothing"),
    _category("books", "书籍", "Books"),
    _category("daily_goods", "日用品", "Daily goods"),
    _category("electronics", "电子产品（电池装在设备内）", "Electronics (batteries installed in the device)",
              conditions=("battery_installed",)),
    _category("food", "食品（密封包装、不易腐坏）", "Food (sealed, not perishable)",
              conditions=("sealed", "not_perishable")),
    _category("local_produce", "土特产", "Local produce", conditions=("not_perishable",)),
    _category("medicine", "药品（完整销售包装）", "Medicine (in complete retail packaging)",
              conditions=("retail_packaging",)),
    _category("cosmetics", "化妆品（非喷雾）", "Cosmetics (no aerosols)", conditions=("no_aerosol",)),
    _category("other", "其他", "Other"),
    _prohibited("lighter_gas", "打火机、气罐", "Lighters and gas canisters", "gases"),
    _prohibited("aerosols", "喷雾剂（发胶、杀虫喷雾等）", "Aerosol sprays (hairspray, insect spray ...)", "gases"),
    _prohibited("fireworks", "烟花爆竹", "Fireworks and firecrackers", "explosives"),
    _prohibited("paint_solvents", "油漆、溶剂、酒精", "Paint, solvents, alcohol", "flammable_liquids"),
    _prohibited("matches", "火柴", "Matches", "flammable_solids"),
    _prohibited("car_battery", "蓄电池（汽车、电动车）", "Storage batteries (car, e-bike)", "corrosive"),
    _prohibited("knives", "管制刀具、弩、电击器", "Restricted knives, crossbows, stun devices",
                "controlled_instruments"),
    _prohibited("toxic_pesticides", "剧毒农药、鼠药", "Highly toxic pesticides, rat poison", "toxic"),
    _prohibited("ivory_wildlife", "象牙、犀牛角等濒危动物制品", "Ivory, rhino horn and other endangered-wildlife products",
                "endangered_wildlife"),
    _category("lithium_batteries", "散装锂电池、充电宝", "Loose lithium batteries, power banks",
              refusal="needs_counter_inspection"),
    _category("cash", "现金", "Cash", refusal="not_accepted"),
)))


def _data_text(path: Path | None) -> bytes:
    try:
        if path is not None:
            return path.read_bytes()
        return resources.files("lockers").joinpath("data/prohibited_items.toml").read_bytes()
    except OSError as err:
        raise CatalogueError(f"prohibited-items catalogue not readable: {err}") from err


def _strings(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not isinstance(value, list) or not value:
        raise CatalogueError(f"{where}: {key} must be a non-empty list of strings")
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise CatalogueError(f"{where}: {key} holds an empty or non-string entry")
    return tuple(v.strip() for v in value)


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _parse_class(raw: Any, index: int) -> ProhibitedClass:
    where = f"class #{index + 1}"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where} is not a table")
    number = raw.get("number")
    if number != index + 1 or isinstance(number, bool):
        raise CatalogueError(f"{where}: number must be {index + 1} (classes are listed in catalogue order)")
    examples_zh = _strings(raw, "examples_zh", where)
    examples_en = _strings(raw, "examples_en", where)
    if len(examples_zh) != len(examples_en):
        raise CatalogueError(f"{where}: examples_zh has {len(examples_zh)} entries, examples_en {len(examples_en)}")
    return ProhibitedClass(id=_text(raw, "id", where), number=number, title_zh=_text(raw, "title_zh", where),
                           title_en=_text(raw, "title_en", where), examples_zh=examples_zh, examples_en=examples_en)


def parse_catalogue(data: bytes) -> tuple[ProhibitedClass, ...]:
    """The classes in a catalogue TOML document; :class:`CatalogueError` says what is wrong with it."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise CatalogueError(f"prohibited-items catalogue is not valid UTF-8 TOML: {err}") from err
    raw_classes = doc.get("class")
    if not isinstance(raw_classes, list) or not raw_classes:
        raise CatalogueError("prohibited-items catalogue has no [[class]] entries")
    classes = tuple(_parse_class(raw, i) for i, raw in enumerate(raw_classes))
    ids = [c.id for c in classes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CatalogueError(f"prohibited-items catalogue repeats class ids: {', '.join(duplicates)}")
    return classes


@functools.lru_cache(maxsize=1)
def _packaged() -> tuple[ProhibitedClass, ...]:
    return parse_catalogue(_data_text(None))


def load_catalogue(path: Path | None = None) -> tuple[ProhibitedClass, ...]:
    """The guide catalogue's classes in catalogue order. ``path`` None reads the packaged file (once;
    later calls reuse the result, which is immutable); another path is read on every call."""
    if path is None:
        return _packaged()
    return parse_catalogue(_data_text(path))


def check_item(category_id: str, quantity: int, declared_none_prohibited: bool) -> ItemCheck:
    """Whether one declared item may go on to staff inspection.

    Order of the answers: a refused category first (the resident learns the catalogue class whatever
    else they entered), then the quantity (:data:`MIN_QUANTITY`..:data:`MAX_QUANTITY`), then the
    self-declaration. ``ok`` means only "no reason to refuse at the kiosk": staff still inspect (R14).
    An unknown ``category_id`` answers ``unknown_category`` (it comes from a screen, which may be stale);
    a quantity that is not an int, or a declaration that is not a bool, is a caller's bug: TypeError.
    """
    category = ITEM_CATEGORIES.get(category_id)
    if category is None:
        return ItemCheck(False, "unknown_category")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError("quantity must be an int")
    if not isinstance(declared_none_prohibited, bool):
        raise TypeError("declared_none_prohibited must be a bool")
    if category.refusal is not None:
        return ItemCheck(False, category.refusal, category.prohibited_class)
    if not MIN_QUANTITY <= quantity <= MAX_QUANTITY:
        return ItemCheck(False, "quantity")
    if not declared_none_prohibited:
        return ItemCheck(False, "declaration_missing")
    return ItemCheck(True)
