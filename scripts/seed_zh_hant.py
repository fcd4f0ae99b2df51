#!/usr/bin/env python3
"""Fill MISSING Traditional Chinese (Hong Kong) translations from the Simplified catalogue with OpenCC.

Why a seeding script and not a runtime conversion: OpenCC gets characters right but wording only
roughly, so every seeded entry is meant to be read by a person (spec §9.5). The script therefore
never touches an entry that already has a translation (a reviewed or hand-fixed one), and it marks
what it adds with the translator comment ``SEEDED`` so a reviewer finds them:
``grep -A3 SEEDED kiosk/locale/zh_Hant_HK/LC_MESSAGES/messages.po``; delete the comment once read.

Why Hong Kong: the kiosk stands in a mainland community, where most readers of Traditional Chinese are
residents from Hong Kong and Macau (kiosk/voice.py reads Traditional in Cantonese for the same reason).
Conversion is OpenCC ``s2hk`` (characters with Hong Kong variants), then GLOSSARY for wording.
The Simplified catalogue is only read. Run after ``scripts/update-catalog.py``, with OpenCC from the test extra:
    .venv/bin/python scripts/seed_zh_hant.py
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Callable
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "kiosk/locale/zh_Hans_CN/LC_MESSAGES/messages.po"
TARGET = ROOT / "kiosk/locale/zh_Hant_HK/LC_MESSAGES/messages.po"
CONFIG = "s2hk"
MARK = "SEEDED: OpenCC s2hk, not yet reviewed"
PLACEHOLDER = re.compile(r"%\(\w+\)s|%\w")
#: a space between Han characters and Latin words (as in the Simplified catalogue: "支付 App")
LATIN_BEFORE_HAN = re.compile(r"(?<=[\u4e00-\u9fff])(?=[A-Za-z])")
LATIN_AFTER_HAN = re.compile(r"(?<=[A-Za-z])(?<!\)s)(?=[\u4e00-\u9fff])")

#: s2hk output -> Hong Kong wording on this kiosk (one regex pass, longest first). OpenCC has no Hong Kong
#: phrase table (s2hk converts characters to HK variants only), so the wording fixes found when the first
#: seeding was reviewed live here and apply to every string seeded later.
GLOSSARY: dict[str, str] = {
    "“": "「", "”": "」", "‘": "『", "’": "』",  # Hong Kong quotes with corner brackets
    "點“": "按「",  # a kiosk button is 按
    "短信": "短訊",
    "退出登錄": "登出", "登錄名": "登入名稱", "登錄": "登入",
    "賬號": "帳戶",
    "聯繫": "聯絡",
    "掃碼器": "掃描器", "掃碼口": "掃描口",
    "響應": "回應",
    "天后": "天後",  # "N 天后删除" is "after N days", not the goddess
    "下一屏": "下一個畫面",
    "監控攝像頭": "監控鏡頭", "攝像頭": "鏡頭",
    "面單": "運單",  # 面单 is mainland courier jargon; Hong Kong says 運單 for the label too
    "攬收": "收取",  # mainland postal jargon for the collection
    "寄件人信息": "寄件人資料",
    "手機號碼": "手機號碼", "手機號": "手機號碼",  # Hong Kong says 手機號碼 in full
    "固定電話": "固網電話",
    "支付應用": "支付 App",
    "超時未取": "逾期未取",
    "自檢": "自我檢測", "運行": "執行",
    "技術支持": "技術支援",
    "傳感器": "感應器",
    "通信": "通訊",
    "粘貼": "貼上",
}

HEADER = """# Traditional Chinese (Hong Kong) for postkiosk: seeded from zh_Hans_CN by scripts/seed_zh_hant.py, reviewed by hand.
msgid ""
msgstr ""
"Project-Id-Version: postkiosk 0.1\\n"
"Report-Msgid-Bugs-To: EMAIL@ADDRESS\\n"
"Language: zh_Hant_HK\\n"
"Language-Team: postkiosk\\n"
"Plural-Forms: nplurals=1; plural=0;\\n"
"MIME-Version: 1.0\\n"
"Content-Type: text/plain; charset=utf-8\\n"
"Content-Transfer-Encoding: 8bit\\n"
"Generated-By: Babel\\n\""""


def converter() -> Callable[[str], str]:
    """OpenCC's converter plus the glossary; a clear message when OpenCC (test extra) is not installed."""
    try:
        import opencc
    except ImportError:
        sys.exit("OpenCC is missing: .venv/bin/pip install -e '.[test]' (or: .venv/bin/pip install opencc)")
    cc = opencc.OpenCC(CONFIG)
    # one pass, longest term first, so an entry can protect a longer phrase ("手機號碼" stays as it is)
    terms = re.compile("|".join(re.escape(t) for t in sorted(GLOSSARY, key=len, reverse=True)))

    def convert(text: str) -> str:
        out = terms.sub(lambda m: GLOSSARY[m.group(0)], cc.convert(text))
        return LATIN_AFTER_HAN.sub(" ", LATIN_BEFORE_HAN.sub(" ", out))

    return convert


def _read(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh)


def _translated(message: Message | None) -> bool:
    if message is None:
        return False
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings)


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def seed(source: Catalog, target: Catalog, convert: Callable[[str], str]) -> tuple[Catalog, list[str], list[str]]:
    """A new catalogue in the source's order: kept translations, seeded ones for the gaps, then
    target-only entries (update-catalog.py drops those that are no longer used). Returns it with the
    seeded ids and the ids skipped because conversion changed a placeholder."""
    out = Catalog(locale="zh_Hant_HK")
    seeded: list[str] = []
    skipped: list[str] = []
    for message in source:
        if not message.id:
            continue
        existing = target.get(message.id)
        if _translated(existing):
            out[message.id] = existing
            continue
        if not _translated(message):
            out.add(message.id, "" if isinstance(message.id, str) else ("",) * len(message.string),
                    flags=message.flags)
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        converted = tuple(convert(s) for s in strings)
        if any(_placeholders(a) != _placeholders(b) for a, b in zip(strings, converted)):
            skipped.append(str(message.id))
            out.add(message.id, "" if isinstance(message.id, str) else ("",) * len(strings), flags=message.flags)
            continue
        out.add(message.id, converted[0] if isinstance(message.id, str) else converted,
                flags=message.flags, user_comments=[MARK])
        seeded.append(str(message.id))
    for message in target:
        if message.id and message.id not in out:
            out[message.id] = message
    return out, seeded, skipped


def write(catalog: Catalog, path: Path) -> None:
    """Same layout as update-catalog.py: the hand-written header, then entries without locations."""
    header = path.read_text(encoding="utf-8").split("\n\n", 1)[0] if path.exists() else HEADER
    buf = io.BytesIO()
    write_po(buf, catalog, omit_header=True, width=120, no_location=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n\n" + buf.getvalue().decode("utf-8").lstrip("\n"), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if entries are missing")
    args = parser.parse_args(argv)
    source = _read(SOURCE)
    target = _read(TARGET) if TARGET.exists() else Catalog(locale="zh_Hant_HK")
    result, seeded, skipped = seed(source, target, converter())
    if not args.check and (seeded or not TARGET.exists()):
        write(result, TARGET)
    verb = "missing" if args.check else "seeded"
    print(f"{TARGET.relative_to(ROOT)}: {len(seeded)} {verb}, {len(skipped)} skipped (placeholder changed)")
    for message_id in skipped:
        print(f"  skipped: {message_id}")
    return 1 if args.check and seeded else 0


if __name__ == "__main__":
    sys.exit(main())
