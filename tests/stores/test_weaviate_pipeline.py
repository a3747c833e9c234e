"""The whole pipeline on the production store: Dagster runs writing to Weaviate (the protocol-level fake)."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedops.core.embedder import SpaceEmbedder
from embedops.core.search import search_tenant
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project, make_project, on_weaviate
from tests.fakes.weaviate_fake import FakeWeaviateServer


@pytest.fixture
def weaviate_project(tmp_path: Path, minilm: SpaceEmbedder, weaviate_server: FakeWeaviateServer) -> Iterator[Project]:
    project = on_weaviate(make_project(tmp_path), weaviate_server)
    yield project
    project.store.close()


def test_ingest_edit_delete_and_search_on_weaviate(weaviate_project: Project, minilm: SpaceEmbedder) -> None:
    project = weaviate_project
    project.write("acme", DOCS)
    first = project.ingest("acme")
    space = project.spaces.serving_space
    assert first.index_rows == first.chunks == project.store.count("acme", space.space_id)
    assert project.store.get_alias("docs") == space.space_id

    project.write("acme", {"lens.md": DOCS["lens.md"].replace("twenty", "twenty-two")})
    (project.source("acme") / "notes" / "fog.txt").unlink()
    second = project.ingest("acme")
    assert (second.changed, second.deleted, second.model_calls) == (1, 1, 1)

    hits = search_tenant(project.store, space, minilm, "acme", "fog horns and bells", k=10)
    assert hits and all(h.doc_id != "notes/fog.txt" for h in hits)
    texts = [r["text"] for r in project.store.export("acme", space.space_id).to_pylist()]
    assert any("twenty-two" in t for t in texts) and len(texts) == second.index_rows


def test_every_run_closes_the_weaviate_connection_it_opened(weaviate_project: Project) -> None:
    project = weaviate_project
    project.write("acme", {"a.md": "# A\n\nOne short document about lighthouses."})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        project.ingest("acme")  # two Dagster runs, each with its own connection
        gc.collect()
    assert not [w for w in caught if "Con004" in str(w.message)], "a run left its Weaviate connection open"
