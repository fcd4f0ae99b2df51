"""The sender's identity for real-name posting (rules R11, R12; rules-and-identifiers.md §3.2).

What the posting flow needs from an ID document is small: the ID type and number (R11 records them),
the name and address (checked against the waybill), and whether the elderly window applies (service plan
§1, 60 years). The birth date is read to compute the age and then dropped: :class:`PostingIdentity` has
no birth-date field, and its repr masks everything else (name first character, last 4 of the number,
address cut to its district; helpers from :mod:`hal.idcard`).

Two ways in:

* :func:`identity_from_card`: a card read by the SAM reader (:class:`hal.idcard.IdCard`): resident ID
  card, HK/Macao/Taiwan residence permit (J) and foreign permanent resident ID card (I).
* :func:`manual_identity`: the other R12 types, typed in at the kiosk and then checked by staff (R12
  [inference]); also a resident card typed in when the reader is out of order.

Numbers of resident cards, temporary cards and J permits follow GB 11643; that check is
:func:`hal.codes.parse_resident_id`, not repeated here. Formats of the other documents are plausibility
checks only [U]: see :data:`ID_TYPES`.

A refusal is :class:`IdentityRefused` with a ``reason`` code; messages never hold the number, the name
or the birth date.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hal.codes import InvalidIdNumber, age_on, parse_resident_id
from hal.idcard import CardType, IdCard, Sex, mask_address, mask_id_number, mask_name
from lockers.errors import CustodyError

__all__ = [
    "DEFAULT_ELDERLY_AGE", "ID_TYPES", "IdType", "IdentityRefused", "PostingIdentity", "REFUSAL_REASONS",
    "identity_from_card", "manual_identity",
]

DEFAULT_ELDERLY_AGE = 60  # service plan §1: residents 60+ are served without queueing
MAX_NAME_LENGTH = 64  # characters; the longest names on foreign passports stay well under this

#: every ``IdentityRefused.reason`` and what it means
REFUSAL_REASONS: Mapping[str, str] = MappingProxyType({
    "format": "the number does not have the form of this document type",
    "check_character": "the GB 11643 check character does not match (misread or mistyped)",
    "birth_date": "the birth date is not a real date, or lies in the future",
    "mismatch": "the number's birth date or sex disagrees with what the card says",
    "expired": "the document's validity ended before today",
    "not_yet_valid": "the document's validity starts after today",
    "unreadable": "the card lacks the name or the number",
    "name": "the name is empty, too long or holds control characters",
})


class IdentityRefused(CustodyError):
    """The ID document cannot be accepted for real-name posting (R11: the posting is refused).
    ``reason`` is a :data:`REFUSAL_REASONS` key."""

    code = "identity_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(f"identity refused: {REFUSAL_REASONS.get(reason, reason)}")
        self.reason = reason


@dataclass(frozen=True)
class IdType:
    """One R12 document type. ``sam_readable``: the chip reader reads it (hardware-protocols.md §2.4);
    otherwise the number is typed in and staff check the document. ``gb11643``: its number is an
    18-character GB 11643 number (check character, birth date). ``pattern``: the plausibility check of a
    typed number (upper-cased, spaces removed) for the others [U: formats from background knowledge]."""

    id: str
    title_zh: str
    title_en: str
    sam_readable: bool
    gb11643: bool = False
    pattern: str | None = None
    card_type: CardType | None = None


#: the R12 types, in the order the posting flow offers them
ID_TYPES: Mapping[str, IdType] = MappingProxyType({t.id: t for t in (
    IdType("resident_id", "居民身份证", "Resident identity card", True, gb11643=True, card_type=CardType.RESIDENT),
    IdType("temporary_resident_id", "临时居民身份证", "Temporary resident identity card", False, gb11643=True),
    IdType("hk_mo_tw_residence_permit", "港澳台居民居住证", "Residence permit for Hong Kong, Macao and Taiwan residents",
           True, gb11643=True, card_type=CardType.HK_MO_TW_PERMIT),
    # I card: 2017 layout, 3-letter nationality + 12 digits (15); 2023 layout, 18 characters from "9" [U]
    IdType("foreign_permanent_resident_id", "外国人永久居留身份证", "Foreign permanent resident ID card", True,
           pattern=r"[A-Z]{3}\d{12}|9\d{16}[\dX]", card_type=CardType.FOREIGN_PERMANENT),
    # 军人身份证件 / 武警身份证件: numbers may hold a few Chinese characters (e.g. "军字第...号") [U]
    IdType("military_id", "中国人民解放军军人身份证件", "PLA military ID", False,
           pattern=r"[0-9A-Z\u4e00-\u9fff]{4,24}"),
    IdType("armed_police_id", "中国人民武装警察身份证件", "People's Armed Police ID", False,
           pattern=r"[0-9A-Z\u4e00-\u9fff]{4,24}"),
    # 港澳居民来往内地通行证: H (Hong Kong) or M (Macao) + 8 digits, older cards + 2 more digits [U]
    IdType("hk_mo_travel_permit", "港澳居民来往内地通行证", "Mainland travel permit for Hong Kong and Macao residents",
           False, pattern=r"[HM]\d{8}(\d{2})?"),
    # 台湾居民来往大陆通行证: 8 digits since 2015, older booklets 10 digits and a letter [U]
    IdType("tw_travel_permit", "台湾居民来往大陆通行证", "Mainland travel permit for Taiwan residents", False,
           pattern=r"\d{8}|\d{10}[A-Z]?"),
    # ICAO 9303 keeps 9 characters in the MRZ, but the visual zone of some passports is longer [U]
    IdType("foreign_passport", "外国护照", "Foreign passport", False, pattern=r"[0-9A-Z]{5,20}"),
)})

_CARD_TYPE_IDS = {t.card_type: t.id for t in ID_TYPES.values() if t.card_type is not None}
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, repr=False)
class PostingIdentity:
    """The sender as the posting flow keeps them. Holds personal data (name, number, address); no birth
    date, only ``age`` in whole years and ``elderly``. ``age`` is 0 when no birth date was available (a
    typed number of a non-GB 11643 type), and then ``elderly`` is False. ``read_by_reader``: the chip
    reader read the document; False means staff must check it (R12)."""

    id_type: str
    id_number: str
    name: str
    address: str | None
    age: int
    elderly: bool
    read_by_reader: bool = False

    @property
    def age_known(self) -> bool:
        return self.age > 0

    @property
    def masked_number(self) -> str:
        """The number as screens, labels and logs may show it: stars and the last 4 characters (R10)."""
        return mask_id_number(self.id_number) or ""

    def masked(self) -> dict[str, object]:
        """A JSON-ready view for screens and logs: nothing in plaintext but the type and the flags."""
        return {"id_type": self.id_type, "id_number": self.masked_number, "name": mask_name(self.name),
                "address": mask_address(self.address), "elderly": self.elderly,
                "read_by_reader": self.read_by_reader}

    def __repr__(self) -> str:
        return (f"PostingIdentity({self.id_type}, name={mask_name(self.name)!r}, "
                f"id_number={self.masked_number!r}, elderly={self.elderly})")

    __str__ = __repr__


def _check_today(today: dt.date, elderly_age: int) -> None:
    if not isinstance(today, dt.date) or isinstance(today, dt.datetime):
        raise TypeError("today must be a datetime.date (the station's local date)")
    if isinstance(elderly_age, bool) or not isinstance(elderly_age, int) or not 1 <= elderly_age <= 150:
        raise ValueError("elderly_age must be an int between 1 and 150 (years)")


def _clean_name(name: object) -> str:
    if not isinstance(name, str):
        raise IdentityRefused("name")
    name = _SPACES.sub(" ", name).strip()
    if not name or len(name) > MAX_NAME_LENGTH or any(unicodedata.category(c).startswith("C") for c in name):
        raise IdentityRefused("name")
    return name


def _parse_gb11643(number: str, today: dt.date) -> tuple[str, dt.date, str]:
    try:
        return parse_resident_id(number, today=today)
    except InvalidIdNumber as err:
        raise IdentityRefused({"check": "check_character"}.get(err.reason, err.reason)) from None


def _age(birth: dt.date, today: dt.date, elderly_age: int) -> tuple[int, bool]:
    age = age_on(birth, today)
    return age, age >= elderly_age


def identity_from_card(card: IdCard, today: dt.date, *, elderly_age: int = DEFAULT_ELDERLY_AGE) -> PostingIdentity:
    """The posting identity of a card the reader read, or :class:`IdentityRefused`.

    Checks, in order: name and number present (``unreadable``); for resident and J cards the GB 11643
    number (``format``, ``check_character``, ``birth_date``) and that its birth date and sex agree with
    the card's (``mismatch``); for I cards the number's form (``format``) and the card's birth date
    (``birth_date``); then the validity period on ``today`` (``not_yet_valid``, ``expired``; a
    long-term 长期 card never expires). Age is whole years on ``today``: someone born on 29 February
    turns a year older on 1 March in common years (:func:`hal.codes.age_on`).
    """
    _check_today(today, elderly_age)
    if not isinstance(card, IdCard):
        raise TypeError("card must be a hal.idcard.IdCard")
    id_type = ID_TYPES[_CARD_TYPE_IDS[CardType(card.card_type)]]
    if not (card.name or "").strip() or not (card.id_number or "").strip():
        raise IdentityRefused("unreadable")
    number = card.id_number.strip().upper()
    if id_type.gb11643:
        number, birth, sex = _parse_gb11643(number, today)
        card_sex = {Sex.MALE: "M", Sex.FEMALE: "F"}.get(card.sex)
        if birth != card.birth or (card_sex is not None and sex != card_sex):
            raise IdentityRefused("mismatch")
    else:
        if id_type.pattern is None or not re.fullmatch(id_type.pattern, number):
            raise IdentityRefused("format")
        birth = card.birth
        if birth > today:
            raise IdentityRefused("birth_date")
    if card.valid_from > today:
        raise IdentityRefused("not_yet_valid")
    if card.is_expired(today):
        raise IdentityRefused("expired")
    # I cards: the Chinese name when the card has one, as waybills here are written in Chinese
    name = _clean_name((card.chinese_name or card.name) if id_type.card_type is CardType.FOREIGN_PERMANENT
                       else card.name)
    age, elderly = _age(birth, today, elderly_age)
    address = card.address.strip() if card.address and card.address.strip() else None
    return PostingIdentity(id_type.id, number, name, address, age, elderly, read_by_reader=True)


def manual_identity(id_type: str, id_number: str, name: str, today: dt.date, *,
                    elderly_age: int = DEFAULT_ELDERLY_AGE) -> PostingIdentity:
    """The posting identity of a document typed in at the kiosk (staff check it afterwards, R12).

    ``id_type`` is an :data:`ID_TYPES` key (ValueError otherwise: the kiosk offers only those). Spaces
    in the number are dropped and letters upper-cased. GB 11643 types are checked like a card read and
    give the age; the others get a plausibility check of the form (``format``) and ``age`` 0. The
    address is not asked for here (None): it comes from the waybill.
    """
    _check_today(today, elderly_age)
    kind = ID_TYPES.get(id_type)
    if kind is None:
        raise ValueError(f"unknown ID type: {id_type!r}")
    if not isinstance(id_number, str):
        raise IdentityRefused("format")
    number = _SPACES.sub("", id_number).upper()
    clean_name = _clean_name(name)
    if kind.gb11643:
        number, birth, _ = _parse_gb11643(number, today)
        age, elderly = _age(birth, today, elderly_age)
    else:
        if kind.pattern is None or not re.fullmatch(kind.pattern, number):
            raise IdentityRefused("format")
        age, elderly = 0, False
    return PostingIdentity(kind.id, number, clean_name, None, age, elderly, read_by_reader=False)
