"""Watching the index: the plain logic behind the asset checks, the schedule and the pager.

Every check returns an ``Outcome``: passed or not, at which severity, a one-line description, the
ids involved and metadata a person reads in the Dagster UI or in ``embedops check --json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR = "ERROR"
WARN = "WARN"


@dataclass
class Outcome:
    """The result of one check on one partition, free of Dagster types."""

    check: str
    passed: bool
    severity: str = ERROR
    description: str = ""
    ids: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return not self.passed and self.severity == ERROR


def graded(check: str, level: str | None, description: str, **kwargs: Any) -> Outcome:
    """An Outcome from a grade: None passes, WARN or ERROR fails at that severity."""
    return Outcome(check, passed=level is None, severity=level or ERROR, description=description, **kwargs)


def first(items: list[str] | set[str], limit: int) -> list[str]:
    """The first ``limit`` ids in sorted order: what metadata lists next to the total."""
    return sorted(items)[:limit]
