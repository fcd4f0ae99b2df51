"""Imports go only downward: kiosk -> lockers -> hal -> firmware_bridge (Home Assistant's rule)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {"firmware_bridge", "hal", "lockers", "kiosk", "simulators", "postkiosk"}
ALLOWED = {
    "firmware_bridge": set(),
    "hal": {"firmware_bridge"},
    "lockers": {"hal"},
    "kiosk": {"lockers", "hal"},
    "simulators": {"firmware_bridge", "hal"},
    "postkiosk": OURS,
}
DEVICE_LIBRARIES = {"serial", "serial_asyncio_fast", "pymodbus", "gpiozero", "evdev", "cv2", "usb"}
NO_DEVICE_LIBRARIES = {"lockers", "kiosk"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_imports_only_downward():
    problems = []
    for package, allowed in ALLOWED.items():
        files = list((ROOT / package).rglob("*.py"))
        assert files, f"package {package} has no modules"
        for path in files:
            for name in imports_of(path) & OURS - {package} - allowed:
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
            if package in NO_DEVICE_LIBRARIES:
                for name in imports_of(path) & DEVICE_LIBRARIES:
                    problems.append(f"{path.relative_to(ROOT)} opens devices itself through {name}")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import serial\nfrom kiosk.app import create_app\nfrom . import sibling\n")
    assert imports_of(bad) == {"serial", "kiosk"}
