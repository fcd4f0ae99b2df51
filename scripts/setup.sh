#!/usr/bin/env bash
# Set up everything postkiosk needs on a fresh Debian 12 or Raspberry Pi OS (Bookworm) machine:
# the Debian packages (only those missing), a virtual environment in .venv and the Python packages.
# Safe to run again: it does nothing when everything is in place. Called by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: chromium (the kiosk's screen and the browser tests), socat (pty pairs for
# simulators), the WenQuanYi font (CJK with Latin digits) and libzbar0 (pyzbar, the second camera decoder).
packages=(chromium socat fonts-wqy-microhei libzbar0 espeak-ng)
python_ok() { python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
python_ok || packages+=(python3 python3-venv)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python_ok || { echo "setup: postkiosk needs Python 3.11 or newer as python3" >&2; exit 1; }

# The virtual environment, reinstalled only when pyproject.toml changes.
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[test]"
  # jionlp unpacks its region dictionaries on first import: do it now, as the installing user
  .venv/bin/python -c "import lockers.address as a; a.warm_up()" >/dev/null
  rm -f .venv/.installed-*
  touch "$stamp"
fi
