"""The 'Model migration' and 'Rollback' runbooks of docs/runbooks.md, executed command by command.

Deployment: alias `docs` serves the space `static` (model2vec) for tenants acme and globex; the space
`minilm` has just been declared, with a SciFact slice as the golden set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from embedops.cli import main
from tests.migration.conftest import ACME, GLOBEX, MINILM, STATIC, copy_cache
from tests.runbooks import steps


def test_model_migration_then_rollback_runbooks(tmp_path: Path, golden_dir: Path, warm_cache: Path) -> None:
    spaces_file = tmp_path / "spaces.yaml"
    spaces_file.write_text(
        yaml.safe_dump(
            {"alias": "docs", "serving": "static", "spaces": [STATIC, MINILM], "migration": {"golden": str(golden_dir)}}
        )
    )
    env = {
        "EMBEDOPS_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "EMBEDOPS_SPACES": str(spaces_file),
        "EMBEDOPS_SOURCES": str(tmp_path / "sources"),
        "EMBEDOPS_GOLDEN": None,
        "EMBEDOPS_USER": "runbook-test",
    }
    copy_cache(warm_cache, str(tmp_path / "home" / "data"))

    def run(args: list[str]) -> Result:
        return CliRunner().invoke(main, args, env=env, catch_exceptions=False)

    for tenant, files in (("acme", ACME), ("globex", GLOBEX)):
        for name, text in files.items():
            (tmp_path / "sources" / tenant / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "sources" / tenant / name).write_text(text)
        result = run(
            ["ingest", "--tenant", tenant, "--source", str(tmp_path / "sources" / tenant), "--space", "static"]
        )
        assert result.exit_code == 0, result.output

    outputs = {}
    for section in ("Model migration", "Rollback"):
        for args, code in steps(section):
            result = run(args)
            assert result.exit_code == code, f"`embedops {' '.join(args)}` exited {result.exit_code}:\n{result.output}"
            outputs.setdefault(" ".join(args[:2]), []).append(result.output)

    assert "minilm (" in outputs["spaces"][0] and "building" in outputs["spaces"][0]
    assert "acme: priority" in outputs["backfill --space"][0]
    assert "fused by rank from static + minilm" in outputs["search failed card payment"][1]
    assert "recovered" in outputs["adapter fit"][0] and "us per query" in outputs["adapter fit"][0]
    assert "gate: passes" in outputs["evaluate --space"][0]
    assert "static -> minilm (cutover, by runbook-test" in outputs["cutover --alias"][0]
    assert "minilm -> static (rollback" in outputs["rollback --alias"][0]
    assert "served by alias 'docs'" in outputs["spaces retire"][0]
    manifest = json.loads(run(["spaces", "--json"]).output)
    assert manifest["aliases"]["docs"] == next(s["space_id"] for s in manifest["spaces"] if s["name"] == "static")
    assert [s["state"] for s in manifest["spaces"]] == ["serving", "retired"]
    assert [(h["action"], h["who"]) for h in manifest["history"]] == [
        ("first-pointing", "vector_index first sync"),
        ("cutover", "runbook-test"),
        ("rollback", "runbook-test"),
    ]


@pytest.mark.parametrize("section", ["Model migration", "Rollback"])
def test_runbook_sections_exist(section: str) -> None:
    assert steps(section)
