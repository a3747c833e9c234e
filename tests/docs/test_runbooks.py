"""The runbooks in docs/runbooks.md, executed: each `$ embedops ...` line, in order, on the fault it treats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner, Result

from embedops.cli import main
from embedops.core.embedder import SpaceEmbedder
from embedops.core.settings import control_url
from embedops.core.spaces import DEFAULT_SPACE
from embedops.core.stores.lance import LanceStore
from tests.assets.test_pipeline import DOCS
from tests.runbooks import RUNBOOKS, steps


class Deployment:
    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.source = root / "docs"
        self.env = {"EMBEDOPS_HOME": str(self.home), "DAGSTER_HOME": str(root / "dagster"), "EMBEDOPS_SPACES": None,
                    "EMBEDOPS_SOURCES": str(root / "sources"), "EMBEDOPS_MONITORING": None}
        for name, text in DOCS.items():
            (self.source / name).parent.mkdir(parents=True, exist_ok=True)
            (self.source / name).write_text(text)

    def run(self, args: list[str]) -> Result:
        return CliRunner().invoke(main, args, env=self.env, catch_exceptions=False)

    @property
    def store(self) -> LanceStore:
        return LanceStore(self.home / "data" / "lancedb", aliases=control_url(self.home))

    def rows(self) -> pa.Table:
        return self.store.export("acme", DEFAULT_SPACE.space_id, with_vectors=True)

    def overwrite(self, rows: list[dict]) -> None:
        table = pa.Table.from_pylist(rows, schema=self.rows().schema)
        self.store.upsert("acme", DEFAULT_SPACE.space_id, DEFAULT_SPACE.name, table)

    def follow(self, section: str) -> list[Result]:
        results = []
        for args, code in steps(section):
            result = self.run(args)
            assert result.exit_code == code, f"`embedops {' '.join(args)}` exited {result.exit_code}:\n{result.output}"
            results.append(result)
        return results


@pytest.fixture
def deployment(tmp_path: Path, minilm: SpaceEmbedder) -> Deployment:
    d = Deployment(tmp_path)
    assert d.run(["ingest", "--tenant", "acme", "--source", str(d.source)]).exit_code == 0
    assert d.run(["check", "--tenant", "acme"]).exit_code == 0
    return d


def test_stale_embeddings_runbook(deployment: Deployment) -> None:
    (deployment.home / "monitoring.yaml").write_text(
        "freshness:\n  on_change_grace_hours: 0\n  policies:\n    - {pattern: 'notes/**', policy: daily}\n"
    )
    old = datetime.now(UTC) - timedelta(days=3)
    fog = [{**r, "embedded_at": old} for r in deployment.rows().to_pylist() if r["doc_id"] == "notes/fog.txt"]
    deployment.overwrite(fog)
    (deployment.source / "lens.md").write_text(DOCS["lens.md"] + "\n\nLater lenses were lit by electricity.")
    find, dry, fix, verify = deployment.follow("Stale embeddings")
    assert "notes/fog.txt" in find.output and "lens.md" in find.output and "daily" in find.output
    assert "dry run" in dry.output
    assert "re-embedded" in fix.output
    assert all(r["embedded_at"] > old + timedelta(days=2) for r in deployment.rows().to_pylist())


def test_partial_corruption_recovery_runbook(deployment: Deployment) -> None:
    rows = deployment.rows().to_pylist()
    bent, blank = rows[0], rows[1]
    vector = np.asarray(bent["vector"])
    bent["vector"] = list(-vector)
    blank["source_checksum"] = ""
    intruder = {**rows[2], "chunk_id": "intruder", "space_id": "ffffffffffff", "space_name": "other"}
    deployment.overwrite([bent, blank])
    deployment.store._db.open_table(LanceStore.table_name("acme", DEFAULT_SPACE.space_id)).add(
        pa.Table.from_pylist([intruder], schema=deployment.rows().schema)
    )
    find, dry, fix, verify = deployment.follow("Partial corruption recovery")
    for name in ("sentinel_drift", "provenance_complete", "one_space_per_collection", "reconciliation"):
        assert f"{name}" in find.output
    for chunk in (bent["chunk_id"], blank["chunk_id"], "intruder"):
        assert chunk in find.output and chunk in dry.output
    assert " 0 failed at ERROR, 0 at WARN" in verify.output
    repaired = {r["chunk_id"]: r for r in deployment.rows().to_pylist()}
    assert "intruder" not in repaired and repaired[blank["chunk_id"]]["source_checksum"]
    assert np.dot(repaired[bent["chunk_id"]]["vector"], vector) > 0.999


def test_full_reindex_section_exists_for_the_migration_runbook() -> None:
    assert "\n## Full reindex\n" in RUNBOOKS.read_text(encoding="utf-8")
