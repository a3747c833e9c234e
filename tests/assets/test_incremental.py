"""Downstream steps cost the change: a run that changed nothing leaves every table and the index at their
versions and loads no model; an edit commits only the edited document's rows; a deletion leaves every
table and the index in the same run; a new recipe re-chunks everything.

Real parts: Dagster runs on an ephemeral instance, Lance tables (time travel to compare versions),
LanceDB, the real model (loaded once per session).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from embedops.assets.metadata import plain
from embedops.definitions import build_defs
from embedops.pipelines.execution import execute_job
from embedops.pipelines.partitions import tenant_space_key
from tests.assets.test_change_cost import no_model, tables_written  # noqa: F401  (fixtures)
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project, make_project

STEPS = ("document_chunks", "chunk_embeddings")


def versions(project: Project) -> dict[str, int | None]:
    """The latest version of the tenant's tables and of its index in the serving space."""
    space = project.spaces.serving_space
    tables = project.workspace.tables()
    found: dict[str, int | None] = {}
    for asset, partition in (("source_documents", ("acme",)), *((a, ("acme", space.name)) for a in STEPS)):
        latest = tables.latest(asset, partition)
        found[asset] = None if latest is None else latest[1]
    found["index"] = project.store.version("acme", space.space_id)
    return found


def rows(
    project: Project, asset: str, version: int | None = None, where: bool = False
) -> dict[str, dict[str, Any]]:
    """A table's rows (at ``version``) by chunk id, without vectors; with ``where``, also where each is
    stored (its ``_rowaddr``: a row that was rewritten has a new one)."""
    dataset = project.workspace.tables().dataset(asset, ("acme", project.spaces.serving_space.name), version)
    assert dataset is not None
    table = dataset.to_table(with_row_address=where)
    assert not where or "_rowaddr" in table.column_names
    table = table.drop_columns(["vector"]) if "vector" in table.column_names else table
    return {r["chunk_id"]: r for r in table.to_pylist()}


def latest_metadata(project: Project, asset: str) -> dict[str, Any]:
    found = project.instance.fetch_materializations(dg.AssetKey(asset), limit=1)
    event = found.records[0].asset_materialization
    assert event is not None
    return plain(event.metadata)


def test_an_unchanged_rerun_leaves_every_version_and_loads_no_model(
    settled: Project, no_model: None, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    before = versions(settled)
    first = latest_metadata(settled, "vector_index")

    with tables_written(monkeypatch) as written:
        summary = settled.ingest("acme")

    assert versions(settled) == before
    assert written == []
    assert summary.space_unchanged and summary.sources_unchanged
    assert (summary.documents, summary.unchanged, summary.model_calls) == (3, 3, 0)
    assert summary.index_rows == summary.chunks == first["rows"] > 0
    assert len(summary.run_ids) == 1  # no embed run at all


def test_each_step_alone_finds_nothing_to_do_and_says_so(
    settled: Project, no_model: None, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The steps' own rule, when a run of them is launched anyway (the UI, a schedule)."""
    before = versions(settled)
    key = tenant_space_key("acme", settled.spaces.serving_space.name)
    chunks_before = latest_metadata(settled, "document_chunks")

    with tables_written(monkeypatch) as written:
        run = execute_job(settled.defs, "embed_space_job", settled.instance, key)

    assert versions(settled) == before and written == []
    chunks, embeddings, index = (
        plain(run.asset_materializations_for_node(n)[-1].metadata)
        for n in ("document_chunks", "chunk_embeddings", "vector_index")
    )
    assert chunks["table_unchanged"] and embeddings["unchanged"] and index["unchanged"]
    assert (chunks["documents"], chunks["chunks"], chunks["unchanged"]) == (3, chunks_before["chunks"], 3)
    assert (embeddings["model_calls"], embeddings["rows"]) == (0, chunks_before["chunks"])
    assert (index["upserted"], index["deleted"], index["rows"]) == (0, 0, chunks_before["chunks"])


def test_an_edit_of_one_document_commits_only_its_rows(settled: Project) -> None:
    project = settled
    before = versions(project)
    old_chunks = rows(project, "document_chunks", where=True)
    old_embeddings = rows(project, "chunk_embeddings", where=True)

    project.write("acme", {"lens.md": DOCS["lens.md"].replace("twenty", "twenty-two")})
    summary = project.ingest("acme")

    assert (summary.changed, summary.unchanged, summary.added, summary.deleted) == (1, 2, 0, 0)
    after = versions(project)
    assert all(after[k] != before[k] for k in after)  # type: ignore[operator]
    for asset, old in (("document_chunks", old_chunks), ("chunk_embeddings", old_embeddings)):
        new = rows(project, asset, where=True)
        # the previous version, read back by time travel, is what the run started from
        assert rows(project, asset, before[asset], where=True) == old
        gone = set(old) - set(new)
        added = set(new) - set(old)
        assert {old[c]["doc_id"] for c in gone} == {"lens.md"} and {new[c]["doc_id"] for c in added} == {"lens.md"}
        others = {c: r for c, r in old.items() if r["doc_id"] != "lens.md"}
        assert {c: new[c] for c in others} == others  # same rows, same embedded_at, not even rewritten
    assert summary.model_calls == 1


def test_the_source_table_changes_by_one_commit_of_the_edited_and_deleted_documents(settled: Project) -> None:
    project = settled
    tables = project.workspace.tables()

    def documents(version: int | None = None) -> dict[str, dict[str, Any]]:
        dataset = tables.dataset("source_documents", ("acme",), version)
        assert dataset is not None
        return {r["doc_id"]: r for r in dataset.to_table(with_row_address=True).to_pylist()}

    before, old = versions(project)["source_documents"], documents()
    project.write("acme", {"lens.md": DOCS["lens.md"].replace("twenty", "twenty-two")})
    (project.source("acme") / "notes" / "fog.txt").unlink()

    summary = project.ingest("acme")

    assert (summary.changed, summary.deleted, summary.unchanged) == (1, 1, 1)
    assert versions(project)["source_documents"] == before + 1  # type: ignore[operator]
    new = documents()
    assert set(new) == {"intro.md", "lens.md"} and "twenty-two" in new["lens.md"]["text"]
    assert new["intro.md"] == old["intro.md"]  # carried over where it was stored, not copied
    assert documents(before) == old  # the run's starting point stays readable


def test_a_deleted_document_leaves_every_table_and_the_index_in_the_same_run(settled: Project) -> None:
    project = settled
    (project.source("acme") / "notes" / "fog.txt").unlink()

    summary = project.ingest("acme")

    assert (summary.deleted, summary.model_calls, summary.index_deleted) == (1, 0, 1)
    space = project.spaces.serving_space
    tables = project.workspace.tables()
    assert "notes/fog.txt" not in tables.read("source_documents", ("acme",))["doc_id"].to_pylist()  # type: ignore[index]
    for asset in STEPS:
        assert {r["doc_id"] for r in rows(project, asset).values()} == {"intro.md", "lens.md"}
    assert {r["doc_id"] for r in project.store.export("acme", space.space_id).to_pylist()} == {"intro.md", "lens.md"}


def test_a_new_recipe_rechunks_every_document(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    spaces = tmp_path / "spaces.yaml"
    spaces.write_text("spaces:\n  - name: docs-space\n    chunker: {max_tokens: 200}\n")
    project = make_project(tmp_path, spaces_file=spaces)
    project.write("acme", DOCS)
    project.age("acme")
    project.ingest("acme")
    old = rows(project, "document_chunks")

    narrow = "{max_tokens: 30, overlap_tokens: 8, min_tokens: 4}"
    spaces.write_text(f"spaces:\n  - name: docs-space\n    chunker: {narrow}\n")
    project = Project(settings=project.settings, defs=build_defs(project.settings), instance=project.instance)
    summary = project.ingest("acme")

    new = rows(project, "document_chunks")
    assert (summary.changed, summary.unchanged) == (3, 0)
    assert {r["config_hash"] for r in new.values()} == {project.spaces.serving_space.config_hash}
    assert {r["config_hash"] for r in old.values()}.isdisjoint({r["config_hash"] for r in new.values()})
    assert len(new) > len(old)
    embedded = rows(project, "chunk_embeddings")
    assert set(embedded) == set(new) and pa.array([r["stale"] for r in embedded.values()]).true_count == 0
