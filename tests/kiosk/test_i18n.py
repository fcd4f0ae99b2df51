"""Every visible text has a Simplified Chinese translation, and the placeholders match."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
METHODS = [("kiosk/**.py", "python"), ("kiosk/templates/**.html", "jinja2")]


def extracted_ids() -> set[str]:
    found = extract_from_dir(str(ROOT), METHODS, options_map={"kiosk/templates/**.html":
                                                               {"extensions": "jinja2.ext.i18n"}},
                             keywords={"_": None})
    return {message for _file, _line, message, _comments, _context in found if isinstance(message, str)}


def test_every_message_is_translated_to_simplified_chinese():
    ids = extracted_ids()
    assert len(ids) > 50
    with (ROOT / "kiosk/locale/zh_Hans_CN/LC_MESSAGES/messages.po").open("rb") as fh:
        catalog = read_po(fh)
    missing = sorted(i for i in ids if not (catalog.get(i) and catalog.get(i).string))
    assert not missing, f"untranslated: {missing}"
    for message in catalog:
        if message.id and message.string:
            assert set(re.findall(r"%\(\w+\)s", message.id)) == set(re.findall(r"%\(\w+\)s", message.string)), message.id
