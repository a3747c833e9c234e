"""The whole pipeline on the production store: Dagster runs writing to Weaviate (the protocol-level fake)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from embedops.core.embedder import SpaceEmbedder
from embedops.core.search import search_tenant
from embedops.definitions import build_defs
from embedops.resources import VectorStoreResource
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project, make_project
from tests.fakes.weaviate_fake import FakeWeaviateServer


@pytest.fixture
def weaviate_project(tmp_path: Path, minilm: SpaceEmbedder) -> Iterator[Project]:
    with FakeWeaviateServer() as server:
        project = make_project(tmp_path)
        store = VectorStoreResource(kind="weaviate", weaviate_url=server.url, weaviate_grpc_port=server.grpc_port)
        defs = build_defs(project.settings)
        resources = {**defs.resources, "vector_store": store}
        project.defs = dg.Definitions(
            assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, resources=resources
        )
        yield project


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
