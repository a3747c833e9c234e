"""A partial benchmark run published into docs/benchmarks.md replaces its own sections and keeps the others."""

from __future__ import annotations

from bench.report import splice

DOC = """# embedops benchmarks

Run 2026-11-22.

## Goals

| goal | target | measured | met | note |
| --- | --- | --- | --- | --- |
| P1 | >= 0.9 | 0.96 | yes | old P1 |
| SCALE no-op (100 chunks) | < 10 s | 30 s | **no** | stale |

- **P1**: cold ingest throughput
- **SCALE**: old wording

## P1 cold ingest against the model

P1 figures from the full run.

## SCALE: runs cost the change (today's design against the previous one)

stale figures

## Machine and versions

- 2 CPUs
"""

REPORT = """# embedops benchmarks

Run 2026-12-02.

## Goals

| goal | target | measured | met | note |
| --- | --- | --- | --- | --- |
| SCALE no-op (1,000 chunks) | < 10 s | 4 s | yes | new |

- **SCALE**: new wording

## SCALE: runs cost the change (today's design against the previous one)

new figures

## P6 peak memory

new P6 section

## Machine and versions

- 4 CPUs
"""


def test_partial_report_replaces_only_its_sections() -> None:
    out = splice(DOC, REPORT)

    assert "P1 figures from the full run." in out and "| P1 | >= 0.9 | 0.96 | yes | old P1 |" in out
    assert "new figures" in out and "stale figures" not in out
    assert "| SCALE no-op (1,000 chunks) | < 10 s | 4 s | yes | new |" in out and "stale |" not in out
    assert "- **SCALE**: new wording" in out and "old wording" not in out
    assert "- 2 CPUs" in out and "- 4 CPUs" not in out  # the machine section describes the whole run
    assert out.index("new P6 section") < out.index("## Machine and versions")  # a new section goes before it
    assert out.count("## SCALE") == 1
