# The two commands of the README. Both set everything up first (scripts/setup.sh).
.PHONY: run test setup bench

run: setup
	.venv/bin/postkiosk run

test: setup
	.venv/bin/pytest

setup:
	@scripts/setup.sh

# Speed targets, printed as ratios against a reference measured in the same run.
bench: setup
	.venv/bin/python bench/lock_bus.py
	.venv/bin/python bench/custody_history.py
	.venv/bin/python bench/camera.py
