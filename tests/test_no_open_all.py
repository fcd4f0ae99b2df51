"""T-B4: no "open all" path outside the technician maintenance module.

The boards' unlock-every-lock frames may be built by codecs (and simulators must understand them),
but no product module above firmware_bridge may use those builders, and only lockers/maintenance.py
may open every door.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("hal", "lockers", "kiosk", "postkiosk")
OPEN_ALL_FRAMES = {"unlock_all_request", "open_all_request", "UNLOCK_ALL", "ALL_LOCKS"}
MAINTENANCE = {"open_all"}
ALLOWED_OPEN_ALL = {Path("lockers/maintenance.py")}


def names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            found.update(alias.name for alias in node.names)
    return found


def test_no_product_module_sends_an_open_all_frame_or_opens_every_door():
    problems = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT)
            used = names_used(path)
            for name in used & OPEN_ALL_FRAMES:
                problems.append(f"{rel} uses the open-all frame {name}")
            if rel not in ALLOWED_OPEN_ALL and used & MAINTENANCE and rel.parts[0] != "kiosk":
                problems.append(f"{rel} calls open_all outside the technician maintenance module")
    assert not problems, "\n".join(problems)


def test_the_checker_would_see_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from firmware_bridge.kerong_cu16 import unlock_all_request\nx = cu16.Command.UNLOCK_ALL\n")
    assert {"unlock_all_request", "UNLOCK_ALL"} <= names_used(bad)
