"""Reading docs/runbooks.md: each step is `$ embedops ...  # exit N`, a command a test runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

RUNBOOKS = Path(__file__).resolve().parents[1] / "docs" / "runbooks.md"
_STEP = re.compile(r"^\s*\$ (embedops .+?)\s+# exit (\d)\s*$")


def steps(section: str) -> list[tuple[list[str], int]]:
    """The commands of a `## section` (arguments after `embedops`), with the exit code each one promises."""
    text = RUNBOOKS.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = [(shlex.split(m.group(1))[1:], int(m.group(2))) for m in map(_STEP.match, body.splitlines()) if m]
    assert found, f"no commands in section {section!r}"
    return found
