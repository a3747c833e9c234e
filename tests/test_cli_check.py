"""`embedops check` as a user runs it: exit codes, the failure lines and the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedops.core.spaces import DEFAULT_SPACE


def test_check_exits_0_on_a_healthy_index_and_1_naming_tenant_space_and_ids(run, source: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("ingest", "--tenant", "acme", "--source", str(source)).exit_code == 0
    healthy = run("check", "--json")
    assert healthy.exit_code == 0, healthy.output
    body = json.loads(healthy.stdout)
    assert body["passed"] and body["errors"] == 0 and len(body["results"]) == 11
    table_checks = {r["check"]: r["description"] for r in body["results"]
                    if r["check"] in ("replication_slot_lag", "table_source_columns")}
    assert set(table_checks.values()) == {"the tenant's source is not a table"} and len(table_checks) == 2
    for field in ("check", "asset", "tenant", "space", "passed", "severity", "description", "ids", "run_id"):
        assert field in body["results"][0]

    (source / "notes" / "fog.txt").unlink()
    failing = run("check", "--tenant", "acme")
    assert failing.exit_code == 1
    line = next(x for x in failing.stdout.splitlines() if "reconciliation" in x)
    assert line.startswith("FAIL ERROR") and f"acme / {DEFAULT_SPACE.name}" in line
    assert "ids: notes/fog.txt" in failing.stdout

    as_json = json.loads(run("check", "--check", "reconciliation", "--json").stdout)
    [result] = as_json["results"]
    assert not as_json["passed"] and result["ids"] == ["notes/fog.txt"]
    assert (result["tenant"], result["space"], result["severity"]) == ("acme", DEFAULT_SPACE.name, "ERROR")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--tenant", "nobody"], "has nothing materialized"),
        (["check", "--space", "nope"], "space 'nope' is not declared"),
        (["check", "--check", "bogus"], "unknown check(s) ['bogus']"),
        (["check", "--tenant", "../x"], "not a valid tenant name"),
        (["repair", "--tenant", "nobody"], "has no index in any space"),
    ],
)
def test_check_usage_errors_exit_2(run, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.exit_code == 2 and message in result.stderr, result.output
