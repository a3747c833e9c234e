"""A run costs the change: unchanged sources are not read, no table is rewritten for them, no model is
loaded for nothing; a change feed's change set is applied without listing the folder.

Real parts: Dagster runs on an ephemeral instance, LanceDB, the real model (loaded once per session).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import pytest

from embedops.assets.metadata import plain
from embedops.core import embedder as embedder_module
from embedops.core import sources
from embedops.core.spaces import ModelSpec
from embedops.core.tables import TableStore
from embedops.errors import ConfigError, NotMaterializedError
from embedops.pipelines.runs import apply_changes, run_ingest
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model load from here on fails the test."""

    def refuse(spec: ModelSpec) -> Any:
        raise AssertionError(f"model {spec.name} was loaded")

    monkeypatch.setattr(embedder_module, "load_model", refuse)


@contextmanager
def tables_written(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The names of the tables a block writes (every new table goes through ``TableStore.writer``)."""
    names: list[str] = []
    writer = TableStore.writer

    def spy(self: TableStore, asset: str, *args: Any, **kwargs: Any) -> Any:
        names.append(asset)
        return writer(self, asset, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(TableStore, "writer", spy)
        yield names


def source_metadata(project: Project) -> dict[str, Any]:
    """The metadata of tenant acme's latest source_documents materialization."""
    import dagster as dg

    found = project.instance.fetch_materializations(dg.AssetKey("source_documents"), limit=1)
    event = found.records[0].asset_materialization
    assert event is not None
    return plain(event.metadata)


def _ids(project: Project) -> set[str]:
    return {r["doc_id"] for r in project.store.export("acme", project.spaces.serving_space.space_id).to_pylist()}


def _texts(project: Project) -> str:
    return " ".join(r["text"] for r in project.store.export("acme", project.spaces.serving_space.space_id).to_pylist())


def test_an_unchanged_tenant_reruns_reading_no_file_writing_no_source_table_and_loading_no_model(
    settled: Project, no_model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = settled
    tables = project.workspace.tables()
    before = tables.read("source_documents", ("acme",))
    table_before = source_metadata(project)["table"]

    with tables_written(monkeypatch) as written:
        summary = project.ingest("acme")

    assert (summary.bodies_read, summary.sources_unchanged, summary.model_calls) == (0, True, 0)
    assert (summary.documents, summary.unchanged, summary.index_rows) == (3, 3, summary.chunks)
    assert "source_documents" not in written and "source_quarantine" not in written
    assert tables.read("source_documents", ("acme",)).equals(before)  # type: ignore[union-attr]
    meta = source_metadata(project)
    assert (meta["unchanged"], meta["bodies_read"], meta["documents"], meta["table"]) == (True, 0, 3, table_before)


def test_an_edit_that_keeps_size_and_time_is_missed_by_a_plain_run_and_found_by_verify(settled: Project) -> None:
    project = settled
    lens = project.source("acme") / "lens.md"
    status = lens.stat()
    lens.write_text(DOCS["lens.md"].replace("twenty", "thirty"))  # same length
    os.utime(lens, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert lens.stat().st_size == status.st_size

    plain_run = project.ingest("acme")
    assert (plain_run.bodies_read, plain_run.changed, plain_run.model_calls) == (0, 0, 0)
    assert "thirty" not in _texts(project)

    space = project.spaces.serving_space
    verified = run_ingest(project.defs, project.instance, "acme", [space], verify=True)[0]
    assert (verified.bodies_read, verified.changed, verified.unchanged) == (3, 1, 2)
    assert verified.model_calls >= 1
    assert "thirty nautical" in _texts(project) and "twenty nautical" not in _texts(project)


def test_a_change_set_reembeds_the_changed_document_and_drops_the_deleted_one_without_listing(
    settled: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = settled
    folder = project.source("acme")
    (folder / "lens.md").write_text(DOCS["lens.md"].replace("twenty", "twenty-two"))
    (folder / "notes" / "fog.txt").unlink()
    project.write("acme", {"unnamed.md": "# Harbours\n\nA harbour shelters ships from storms."})

    def listing(root: Any) -> None:
        raise AssertionError(f"the source folder {root} was listed")

    monkeypatch.setattr(sources, "list_entries", listing)
    summary = apply_changes(project.defs, project.instance, "acme", changed=["lens.md"], deleted=["notes/fog.txt"])[0]

    assert (summary.bodies_read, summary.changed, summary.deleted, summary.added) == (1, 1, 1, 0)
    assert summary.model_calls == 1  # the one chunk whose text changed
    assert _ids(project) == {"intro.md", "lens.md"}  # fog.txt left the index; unnamed.md was not looked at
    assert "twenty-two" in _texts(project)


def test_a_document_whose_texts_are_all_cached_is_chunked_and_indexed_without_loading_the_model(
    settled: Project, no_model: None
) -> None:
    project = settled
    project.write("acme", {"lens-copy.md": DOCS["lens.md"]})  # the same text under a new name

    summary = apply_changes(project.defs, project.instance, "acme", changed=["lens-copy.md"], deleted=[])[0]

    assert (summary.added, summary.model_calls) == (1, 0)
    assert summary.cache_hits >= 1
    assert "lens-copy.md" in _ids(project)


def test_a_change_set_is_refused_before_any_run_for_a_new_tenant_or_a_name_leaving_the_folder(
    settled: Project,
) -> None:
    project = settled
    runs = len(project.instance.get_runs())
    with pytest.raises(ConfigError, match="'../secrets.md' is not a path inside the source folder"):
        apply_changes(project.defs, project.instance, "acme", changed=["../secrets.md"], deleted=[])
    with pytest.raises(NotMaterializedError, match="tenant 'globex' has never been ingested"):
        apply_changes(project.defs, project.instance, "globex", changed=["a.md"], deleted=[])
    assert len(project.instance.get_runs()) == runs
