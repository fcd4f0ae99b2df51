#!/usr/bin/env python3
"""Re-extract the kiosk's messages and merge them into every catalogue under kiosk/locale/.

Existing translations are kept, new message ids are added untranslated (tests/kiosk/test_i18n.py then
names them), and ids no longer used are dropped. Run with the project's venv:
    .venv/bin/python scripts/update-catalog.py
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
METHODS = [("kiosk/**.py", "python"), ("kiosk/templates/**.html", "jinja2")]
OPTIONS = {"kiosk/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def extracted() -> list[str]:
    seen: dict[str, None] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), METHODS, options_map=OPTIONS, keywords={"_": None}):
        if isinstance(message, str):
            seen.setdefault(message)
    return list(seen)


def merge(po_path: Path, ids: list[str]) -> tuple[int, int]:
    with po_path.open("rb") as fh:
        old = read_po(fh)
    header = po_path.read_text(encoding="utf-8").split("\n\n", 1)[0]
    new = Catalog(locale=old.locale)
    added = 0
    for message_id in ids:
        existing = old.get(message_id)
        if existing is None or not existing.string:
            added += 1
        new.add(message_id, existing.string if existing else "", flags=("python-format",) if "%(" in message_id else ())
    buf = io.BytesIO()
    write_po(buf, new, omit_header=True, width=120, no_location=True)
    po_path.write_text(header + "\n\n" + buf.getvalue().decode("utf-8").lstrip("\n"), encoding="utf-8")
    return added, len([m for m in old if m.id and m.id not in ids])


if __name__ == "__main__":
    ids = extracted()
    for po in sorted((ROOT / "kiosk" / "locale").glob("*/LC_MESSAGES/messages.po")):
        added, dropped = merge(po, ids)
        print(f"{po.relative_to(ROOT)}: {len(ids)} messages, {added} untranslated, {dropped} dropped")
