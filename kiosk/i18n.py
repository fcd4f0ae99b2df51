"""Languages of the kiosk: every visible text goes through gettext.

Message ids are English; catalogues live in ``kiosk/locale/<locale>/LC_MESSAGES/messages.po`` and are
compiled in memory with Babel at start-up (no build step). Simplified Chinese is the default; the
language of the current request sits in a context variable so templates and API messages agree.
"""

from __future__ import annotations

import contextvars
import gettext
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).with_name("locale")

#: locale -> (HTML lang attribute, name shown on the language switch in its own language)
LANGUAGES: dict[str, tuple[str, str]] = {
    "zh_Hans_CN": ("zh-Hans", "中文"),
    "en": ("en", "English"),
}
DEFAULT = "zh_Hans_CN"

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
