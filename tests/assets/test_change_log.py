"""An edit run compares only the documents the upstream commits recorded as changed, and ends with the same
tables and index as a run that compares whole columns.

Real parts: Dagster runs on an ephemeral instance, Lance tables, LanceDB, the control database, the real model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from embedops.assets.check_support import INVARIANT_CHECKS
from embedops.core import delta
from embedops.core.changelog import ChangeLog
from embedops.core.stores import lance as lance_store
from embedops.core.tables import count
from tests.assets.test_incremental import latest_metadata
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project, make_project

STEPS = ("document_chunks", "chunk_embeddings", "vector_index")
EDITED = {"lens.md", "notes/fog.txt", "new.md"}
# compared between the two deployments: what the documents and the model give, not when it happened
CHUNK_COLUMNS = ["chunk_id", "doc_id", "seq", "text", "text_hash", "source_checksum", "config_hash"]


def settle(root: Path) -> Project:
    """Tenant acme's documents, dated to one fixed time, ingested once."""
    project = make_project(root)
    project.write("acme", DOCS)
    _date(project)
    project.ingest("acme")
    return project


def edit(project: Project) -> None:
    """One document edited, one deleted, one added (all dated to the same fixed time in every deployment)."""
    project.write("acme", {"lens.md": DOCS["lens.md"].replace("twenty", "twenty-two"),
                           "new.md": "# Foghorns\n\nA foghorn sounds a low tone that carries far over water."})
    (project.source("acme") / "notes" / "fog.txt").unlink()
    _date(project, 1_700_003_600, ["lens.md", "new.md"])


def _date(project: Project, when: int = 1_700_000_000, names: list[str] | None = None) -> None:
    for path in project.source("acme").rglob("*"):
        if path.is_file() and (names is None or path.name in names):
            os.utime(path, (when, when))


def spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, rows: Callable[..., tuple[int, int]]) -> list:
    """Record, per call of ``module.name``, how many rows of each side it was given."""
    seen: list[tuple[int, int]] = []
    real = getattr(module, name)

    def wrapped(*args: Any) -> Any:
        seen.append(rows(*args))
        return real(*args)

    monkeypatch.setattr(module, name, wrapped)
    return seen


def table(project: Project, asset: str, names: list[str]) -> list[dict]:
    dataset = project.workspace.tables().dataset(asset, ("acme", project.spaces.serving_space.name))
    assert dataset is not None
    return dataset.to_table(columns=names).sort_by("chunk_id").to_pylist()


def invariant_checks(project: Project, run_id: str) -> dict[str, Any]:
    """The evaluations of the index's invariant checks in the run, by name."""
    found = project.instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    out = {}
    for record in found:
        evaluation = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        if evaluation.check_name in INVARIANT_CHECKS:
            out[evaluation.check_name] = evaluation
    return out


def index(project: Project) -> list[dict]:
    found = project.store.export("acme", project.spaces.serving_space.space_id, with_vectors=True)
    return found.select(["chunk_id", "doc_id", "text", "text_hash", "vector"]).sort_by("chunk_id").to_pylist()


def test_an_edit_run_reads_only_the_changed_documents_and_matches_a_full_compare(
    tmp_path: Path, minilm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_log = settle(tmp_path / "log")
    edit(by_log)
    compared = {
        "chunks": spy(monkeypatch, delta, "document_changes", lambda d, p, _h: (count(d), count(p))),
        "embeddings": spy(monkeypatch, delta, "embedding_work", lambda c, e: (count(c), count(e))),
        "index": spy(monkeypatch, lance_store, "_plan", lambda s, t: (s.num_rows, t.num_rows)),
    }

    summary = by_log.ingest("acme")

    assert (summary.added, summary.changed, summary.deleted, summary.unchanged) == (1, 1, 1, 1)
    for step in STEPS:
        found = latest_metadata(by_log, step)
        assert (found["compared"], found["documents_compared"]) == ("changed documents", 3), step
    # the settled collection passed its invariants; this run checked only the changed documents' rows
    assert latest_metadata(by_log, "vector_index")["invariants_checked"] == "the rows of 3 changed document(s)"
    checks = invariant_checks(by_log, summary.run_ids[-1])
    assert all(c.passed for c in checks.values()) and set(checks) == {"one_space_per_collection",
                                                                       "provenance_complete"}
    assert all(c.metadata["checked"].value == "the rows of 3 changed document(s)" for c in checks.values())
    # only the three documents' rows were read: the unchanged intro.md's were not
    chunks_of_edited = sum(1 for r in table(by_log, "document_chunks", ["chunk_id", "doc_id"]) if r["doc_id"] in EDITED)
    assert compared["chunks"] == [(2, 2)]  # documents: lens.md and new.md; old chunks: lens.md and fog.txt
    assert compared["embeddings"][0][0] == chunks_of_edited
    assert all(source <= chunks_of_edited and target <= chunks_of_edited + 2 for source, target in compared["index"])
    assert count(by_log.workspace.tables().dataset("document_chunks", ("acme", by_log.spaces.serving_space.name))) > (
        chunks_of_edited
    )

    # the same edit where no record can be found (lost to a crash between commit and record): every step
    # compares whole columns
    full = settle(tmp_path / "full")
    edit(full)
    monkeypatch.setattr(ChangeLog, "changed_since", lambda *_args: None)
    full.ingest("acme")
    for step in STEPS:
        assert latest_metadata(full, step)["compared"] == "every document", step

    assert table(by_log, "document_chunks", CHUNK_COLUMNS) == table(full, "document_chunks", CHUNK_COLUMNS)
    names = [*CHUNK_COLUMNS, "vector", "stale"]
    assert table(by_log, "chunk_embeddings", names) == table(full, "chunk_embeddings", names)
    assert index(by_log) == index(full)
    assert {r["doc_id"] for r in index(by_log)} == {"intro.md", "lens.md", "new.md"}


def test_a_run_after_a_table_written_whole_compares_every_document(tmp_path: Path, minilm: Any) -> None:
    project = settle(tmp_path)
    project.write("acme", {"lens.md": DOCS["lens.md"].replace("twenty", "twenty-one")})
    project.ingest("acme")
    assert latest_metadata(project, "document_chunks")["compared"] == "changed documents"

    # a new recipe rewrites document_chunks whole: the next step cannot take a record across it
    tables = project.workspace.tables()
    partition = ("acme", project.spaces.serving_space.name)
    rows = tables.read("document_chunks", partition)
    assert rows is not None
    tables.write("document_chunks", partition, rows)  # a new version nobody recorded
    project.write("acme", {"lens.md": DOCS["lens.md"].replace("twenty", "thirty")})
    summary = project.ingest("acme")

    assert latest_metadata(project, "chunk_embeddings")["compared"] == "every document"
    assert summary.model_calls >= 1
    assert "thirty" in " ".join(r["text"] for r in index(project))


def test_a_collection_written_outside_a_sync_is_checked_whole_on_the_next_run(tmp_path: Path, minilm: Any) -> None:
    project = settle(tmp_path)
    space = project.spaces.serving_space
    first = project.store.export("acme", space.space_id)["chunk_id"].to_pylist()[0]
    project.store.delete("acme", space.space_id, [first])  # a new version of the collection nobody recorded
    project.write("acme", {"lens.md": DOCS["lens.md"].replace("twenty", "thirty")})

    summary = project.ingest("acme")

    found = latest_metadata(project, "vector_index")
    assert (found["compared"], found["invariants_checked"]) == ("every document", "every row")
    checks = invariant_checks(project, summary.run_ids[-1])
    assert len(checks) == 2 and all("checked" not in c.metadata for c in checks.values())
    assert first in {r["chunk_id"] for r in index(project)}  # the full sync put the row back
