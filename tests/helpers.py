"""Assertions shared by the test modules."""

from __future__ import annotations

from typing import Any


def assert_one_line_error(result: Any, *fragments: str, exit_code: int = 2) -> None:
    """A CLI result that failed with exactly one ``Error: ...`` line containing every fragment."""
    assert result.exit_code == exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output
