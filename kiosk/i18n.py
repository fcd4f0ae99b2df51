"""Languages of the kiosk: every visible text goes through gettext.

Message ids are English; catalogues live in ``kiosk/locale/<locale>/LC_MESSAGES/messages.po`` and are
compiled in memory with Babel at start-up (no build step). Simplified Chinese is the default; the
language of the current request sits in a context variable so templates and API messages agree.
The Traditional catalogue (Hong Kong wording: most readers of Traditional in a mainland community are
from Hong Kong and Macau) is seeded from the Simplified one by scripts/seed_zh_hant.py
and reviewed by hand.

Money, dates and times are formatted here with Babel for the same current language, so a page and
the API message beside it agree on "12月6日 09:30" versus "Dec 6, 09:30". Money is the exception to
"follow the locale": the kiosk takes only CNY, and Babel writes ``CN¥`` outside zh_Hans_CN, so
:func:`format_money` forces the yuan sign with a custom number pattern (spec §9.5).
"""

from __future__ import annotations

import contextvars
import functools
import gettext
import io
from collections.abc import Callable
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.core import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).with_name("locale")

#: locale -> (HTML lang attribute, name shown on the language switch in its own language)
LANGUAGES: dict[str, tuple[str, str]] = {
    "zh_Hans_CN": ("zh-Hans", "简体中文"),
    "zh_Hant_HK": ("zh-Hant", "繁體中文"),
    "en": ("en", "English"),
}
DEFAULT = "zh_Hans_CN"
#: the station clock when a caller names none (all of mainland China keeps Beijing time)
DEFAULT_TIMEZONE = "Asia/Shanghai"
#: yuan sign, grouping, always two decimals; a literal sign because Babel's ¤ becomes CN¥ outside zh_Hans_CN
MONEY_PATTERN = "'¥'#,##0.00"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("kiosk_language", default=DEFAULT)
_catalogs: dict[str, gettext.NullTranslations] = {}


def load_catalogs() -> None:
    """Compile every ``.po`` file (once, at start-up)."""
    for locale in LANGUAGES:
        po = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
        if not po.exists():
            _catalogs[locale] = gettext.NullTranslations()  # English ids are the English text
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=locale)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        _catalogs[locale] = gettext.GNUTranslations(buf)


def pick(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT


def set_language(locale: str) -> contextvars.Token[str]:
    return _current.set(pick(locale))


def language() -> str:
    return _current.get()


def html_lang() -> str:
    return LANGUAGES[language()][0]


def _catalog() -> gettext.NullTranslations:
    if not _catalogs:
        load_catalogs()
    return _catalogs.get(language()) or gettext.NullTranslations()


def _(message: str, **params: object) -> str:
    text = _catalog().gettext(message)
    return text % params if params else text


def ngettext(singular: str, plural: str, n: int, **params: object) -> str:
    text = _catalog().ngettext(singular, plural, n)
    return text % {"num": n, **params}


@functools.cache
def _babel_locale(code: str) -> Locale:
    return Locale.parse(code)


def _locale() -> Locale:
    return _babel_locale(language())


def format_money(fen: int) -> str:
    """``¥12.50`` for 1250 fen in every language (grouped: ``¥1,000.00``; negative: ``-¥5.00``).

    Amounts are integer fen so no float ever rounds a price; anything else is a caller's bug."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"format_money takes integer fen, not {type(fen).__name__}")
    return babel_numbers.format_decimal(Decimal(fen).scaleb(-2), format=MONEY_PATTERN, locale=_locale())


def _zone(tz: str | tzinfo | None) -> tzinfo:
    if tz is None:
        return ZoneInfo(DEFAULT_TIMEZONE)
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _wall_clock(value: datetime | float | int, tz: str | tzinfo | None) -> datetime:
    """The station's wall-clock time for ``value``.

    Epoch seconds and aware datetimes are converted to ``tz``; a naive datetime is taken as already
    being station time (Babel would read it as UTC and shift it by eight hours)."""
    if isinstance(value, datetime):
        return value.astimezone(_zone(tz)) if value.tzinfo else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), _zone(tz))
    raise TypeError(f"expected a datetime or epoch seconds, not {type(value).__name__}")


def _date_part(day: date, year: bool) -> str:
    return babel_dates.format_skeleton("yMMMd" if year else "MMMd", day, locale=_locale())


def _time_part(clock: time) -> str:
    # 24-hour in every language: a kiosk clock, no 上午/下午 or AM/PM to misread
    return babel_dates.format_skeleton("Hm", clock, locale=_locale())


def format_date(value: date | datetime | float | int | None, *, tz: str | tzinfo | None = None,
                year: bool = False) -> str:
    """``12月6日`` / ``Dec 6`` (``year=True``: ``2026年12月6日`` / ``Dec 6, 2026``); ``""`` for None,
    so a template can pass an optional field straight through."""
    if value is None:
        return ""
    if isinstance(value, date) and not isinstance(value, datetime):
        return _date_part(value, year)
    return _date_part(_wall_clock(value, tz).date(), year)


def format_time(value: time | datetime | float | int | None, *, tz: str | tzinfo | None = None) -> str:
    """``09:30`` (24-hour) in the station's time zone; ``""`` for None."""
    if value is None:
        return ""
    if isinstance(value, time):
        return _time_part(value)
    return _time_part(_wall_clock(value, tz).time())


def format_datetime(value: datetime | float | int | None, *, tz: str | tzinfo | None = None,
                    year: bool = False) -> str:
    """``12月6日 09:30`` / ``Dec 6, 09:30``: date and time joined the locale's way; ``""`` for None."""
    if value is None:
        return ""
    moment = _wall_clock(value, tz)
    joiner = _locale().datetime_formats["medium"]  # "{1} {0}" in zh, "{1}, {0}" in en
    return str(joiner).replace("{1}", _date_part(moment.date(), year)).replace("{0}", _time_part(moment.time()))


def jinja_filters(tz: str | tzinfo | None = None) -> dict[str, Callable[..., str]]:
    """Template filters for the station's clock ``tz``: ``money``, ``date``, ``time``, ``datetime``,
    and ``local_time`` (the older name of ``datetime``, kept for existing templates)."""
    return {
        "money": format_money,
        "date": lambda value, year=False: format_date(value, tz=tz, year=year),
        "time": lambda value: format_time(value, tz=tz),
        "datetime": lambda value, year=False: format_datetime(value, tz=tz, year=year),
        "local_time": lambda value: format_datetime(value, tz=tz),
    }
