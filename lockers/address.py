"""Reading a recipient line (name, phone, address) that a resident pastes or dictates at the kiosk.

The administrative part (province, city, district) comes from JioNLP's ``parse_location``, which ships
its own, current division data (for example Hangzhou's 临平区 and 钱塘区 of 2021) and fills in the
province and city from a unique district or city name. Only the parts around it are ours: a phone by
regular expression, the name as the labelled or leading/trailing short token that is not an address,
and the labels people type (收件人：, 电话, 地址：).

JioNLP is imported on first use, not at import time: it costs about 0.4 s and 40 MB RSS on the
development machine (more on a Raspberry Pi), plus 0.2 s for its dictionary on the first parse. Call
:func:`warm_up` once at start-up, off the event loop, so the first keystroke is not the slow one.

Parsing is best effort and never raises: what could not be filled is named in ``missing``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lockers.personal import mask_phone, normalize_phone

logger = logging.getLogger(__name__)

MAX_INPUT_CHARS = 200
"""Longer input is cut to this many characters before parsing: a recipient line is far shorter, and
the cap bounds the time one call can take."""

FIELDS = ("name", "phone", "province", "city", "district", "street")

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
_MOBILE = re.compile(r"(?<!\d)(?:(?:\+|00)?86[\s\-]*)?(1[3-9]\d)[\s\-]?(\d{4})[\s\-]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})[\s\-]?(\d{7,8})(?!\d)")
_LANDLINE_NORMAL = re.compile(r"0(?:[12]\d|[3-9]\d{2})-\d{7,8}")
_NAME_LABEL = re.compile(rf"(?:收件人|收货人|联系人|姓名|名字)\s*[:：]?\s*([{_CJK}·A-Za-z]{{1,20}})")
_OTHER_LABEL = re.compile(
    r"(?:收件人|收货人|联系人|姓名|名字|联系电话|联系方式|手机号码|手机号|手机|电话号码|电话|"
    r"所在地区|详细地址|收货地址|收件地址|地址)\s*[:：]?"
)
_SEPARATORS = re.compile(r"[\s,，;；、:：|/]+")
_NAME_TOKEN = re.compile(rf"[{_CJK}]{{1,5}}(?:·[{_CJK}]{{1,8}})?")
_ADDRESS_CHARS = re.compile(r"[省市区县镇乡村路街道号楼室栋弄巷园苑里]$|[0-9]")
_SPACE_NEAR_CJK = re.compile(rf"\s+(?=[{_CJK}])|(?<=[{_CJK}])\s+")
_STREET_CHAR = re.compile(rf"[{_CJK}A-Za-z0-9]")
_EDGE_PUNCT = " \t\r\n,，;；、:：|/.。-—"
_DIVISION_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "自治州", "地区", "省", "市", "区", "县", "盟")


@dataclass(frozen=True)
class Address:
    """A postal address split the way a waybill asks for it. Municipalities repeat the province as city."""

    province: str = ""
    city: str = ""
    district: str = ""
    street: str = ""

    def one_line(self) -> str:
        """The address as one line for a label, without repeating a municipality's name."""
        city = "" if self.city == self.province else self.city
        return "".join((self.province, city, self.district, self.street))

    def __repr__(self) -> str:
        # The street holds the house number: personal data, kept out of logs.
        street = self.street[:1] + "***" if self.street else ""
        return (
            f"Address(province={self.province!r}, city={self.city!r}, "
            f"district={self.district!r}, street={street!r})"
        )


@dataclass(frozen=True)
class ParsedContact:
    """What a recipient line yielded; ``missing`` names the fields of :data:`FIELDS` left empty."""

    name: str
    phone: str
    address: Address
    missing: tuple[str, ...]

    def __repr__(self) -> str:
        name = self.name[:1] + "*" if self.name else ""
        phone = mask_phone(self.phone) if self.phone else ""
        return f"ParsedContact(name={name!r}, phone={phone!r}, address={self.address!r}, missing={self.missing!r})"


def warm_up() -> None:
    """Import the address library and load its dictionary now (about 0.6 s here), not on first use."""
    _location_parser()


def parse_contact_line(text: str) -> ParsedContact:
    """Split one recipient line into name, phone and address; never raises.

    The input is cut to :data:`MAX_INPUT_CHARS` characters. A mobile number is preferred over a
    landline; a landline is returned as ``0571-88886666``.
    """
    line = _clean(text)
    phone, line = _take_phone(line)
    name, line = _take_name(line)
    address = _parse_address(line)
    if not name:
        name, address = _name_before_address(line, address)
    values = {"name": name, "phone": phone, **_address_fields(address)}
    missing = tuple(field for field in FIELDS if not values[field])
    return ParsedContact(name=name, phone=phone, address=address, missing=missing)


def parse_address(address_text: str) -> Address:
    """The province, city, district and street of an address line; empty fields when not found."""
    return _parse_address(_OTHER_LABEL.sub(" ", _clean(address_text)))


def province_of(address_text: str) -> str | None:
    """The full province name (``浙江省``, ``新疆维吾尔自治区``) an address lies in, or None if unknown."""
    return parse_address(address_text).province or None


def province_names() -> tuple[str, ...]:
    """Every province-level name the address library knows, in its spelling (for checking a tariff)."""
    _location_parser()
    from jionlp.dictionary.dictionary_loader import china_location_loader

    return tuple(name for name in china_location_loader() if not name.startswith("_"))


def _clean(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    text = text[:MAX_INPUT_CHARS]
    # Surrogates and control characters come from broken pastes; they can only confuse the parser.
    return "".join(" " if (ch < " " or "\ud800" <= ch <= "\udfff") else ch for ch in text)


def _take_phone(line: str) -> tuple[str, str]:
    for pattern, normalize in ((_MOBILE, _normal_mobile), (_LANDLINE, _normal_landline)):
        for match in pattern.finditer(line):
            phone = normalize(match)
            if phone:
                return phone, line[: match.start()] + " " + line[match.end():]
    return "", line


def _normal_mobile(match: re.Match[str]) -> str:
    try:
        return normalize_phone("".join(match.groups()))
    except Exception:
        return ""


def _normal_landline(match: re.Match[str]) -> str:
    digits = "".join(match.groups())
    # 010 and 02x are the only three-digit area codes; every other area code has four digits.
    split = 3 if digits[1] in "12" else 4
    phone = f"{digits[:split]}-{digits[split:]}"
    return phone if _LANDLINE_NORMAL.fullmatch(phone) else ""


def _take_name(line: str) -> tuple[str, str]:
    """A labelled name first (收件人：李四), else a short leading or trailing token that is no address."""
    labelled = _NAME_LABEL.search(line)
    if labelled:
        # "姓名张三地址浙江..." has no gap: the name ends where the next label begins.
        name = _OTHER_LABEL.split(labelled.group(1))[0]
        if name:
            end = labelled.start(1) + len(name)
            return name, _OTHER_LABEL.sub(" ", line[: labelled.start()] + " " + line[end:])
    line = _OTHER_LABEL.sub(" ", line)
    tokens = [token for token in _SEPARATORS.split(line) if token]
    if not tokens:
        return "", line
    for token in (tokens[0], tokens[-1]):
        if _looks_like_name(token):
            return token, line.replace(token, " ", 1)
    return "", line


def _looks_like_name(token: str) -> bool:
    if not _NAME_TOKEN.fullmatch(token) or _ADDRESS_CHARS.search(token):
        return False
    found = _locate(token)
    return not (found.get("province") or found.get("city"))


def _name_before_address(line: str, address: Address) -> tuple[str, Address]:
    """``张三浙江省杭州市...`` written without a gap: the short text before the first division name."""
    start = _division_start(line, address)
    if start is None:
        return "", address
    head = line[:start].strip(_EDGE_PUNCT)
    if head and _NAME_TOKEN.fullmatch(head) and not _ADDRESS_CHARS.search(head):
        return head, address
    return "", address


def _division_start(line: str, address: Address) -> int | None:
    positions = []
    for name in (address.province, address.city, address.district):
        for form in _name_forms(name):
            at = line.find(form)
            if at >= 0:
                positions.append(at)
                break
    return min(positions) if positions else None


def _name_forms(name: str) -> list[str]:
    forms = [name] if name else []
    for suffix in _DIVISION_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            forms.append(name[: -len(suffix)])
            break
    return forms


def _parse_address(line: str) -> Address:
    line = line.strip(_EDGE_PUNCT)
    if not line:
        return Address()
    found = _locate(line)
    province = found.get("province") or ""
    city = found.get("city") or ""
    district = found.get("county") or ""
    street = _tidy_street(found.get("detail") or "") if (province or city or district) else _tidy_street(line)
    return Address(province=province, city=city, district=district, street=street)


def _tidy_street(street: str) -> str:
    street = _SPACE_NEAR_CJK.sub("", street)
    street = re.sub(r"\s+", " ", street).strip(_EDGE_PUNCT)
    # Emoji or punctuation alone is no street; a street has a character or a number.
    return street if _STREET_CHAR.search(street) else ""


def _address_fields(address: Address) -> dict[str, str]:
    return {
        "province": address.province,
        "city": address.city,
        "district": address.district,
        "street": address.street,
    }


def _locate(text: str) -> dict[str, Any]:
    """JioNLP's reading of ``text``; an empty dict if the library fails on it (logged without the text)."""
    try:
        result = _location_parser()(text)
    except Exception as err:  # a third-party parser must not break the posting flow
        logger.warning("address parser failed (%s) on %d characters", type(err).__name__, len(text))
        return {}
    return result if isinstance(result, dict) else {}


_lock = threading.Lock()
_parser: Callable[[str], dict[str, Any]] | None = None


def _location_parser() -> Callable[[str], dict[str, Any]]:
    global _parser
    if _parser is None:
        with _lock:
            if _parser is None:
                # JioNLP and its segmenter print banners on import; keep them off our stdout (CLI --json).
                with contextlib.redirect_stdout(io.StringIO()):
                    import jionlp

                    jionlp.parse_location("浙江省杭州市")  # loads the dictionary once, under the lock
                _parser = jionlp.parse_location
    return _parser
