# The two commands of the README. Both set everything up first (scripts/setup.sh).
.PHONY: run test setup

run: setup
	.venv/bin/postkiosk run

test: setup
	.venv/bin/pytest

setup:
	@scripts/setup.sh
