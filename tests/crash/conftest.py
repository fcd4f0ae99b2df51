"""The crash tests print one summary line each at the end of the run (also without ``-s``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

_LINES = pytest.StashKey[list[str]]()


@pytest.fixture
def report_line(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Append a line to the terminal summary."""
    lines = request.config.stash.setdefault(_LINES, [])
    return lines.append


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    for line in config.stash.get(_LINES, []):
        terminalreporter.write_line(line)
