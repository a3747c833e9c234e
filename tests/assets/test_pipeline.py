"""The pipeline through real Dagster runs: real model, real LanceDB, an ephemeral instance."""

from __future__ import annotations

import dagster as dg
import pytest

from embedops.core.embedder import SpaceEmbedder
from embedops.core.search import search_tenant
from embedops.core.stores.base import PROVENANCE_FIELDS
from tests.conftest import Project

DOCS = {
    "intro.md": "# Lighthouses\n\nA lighthouse is a tower that emits light to guide ships at night.\n\n"
    "Keepers once trimmed the wicks and wound the clockwork that turned the lens.",
    "lens.md": "# The Fresnel lens\n\nThe Fresnel lens uses concentric prisms to bend light into a beam.\n\n"
    "It let a small flame be seen more than twenty nautical miles away.",
    "notes/fog.txt": "Fog signals\n\nIn fog, horns and bells warned ships when the light could not be seen.",
}
OTHER = {"bread.md": "# Sourdough\n\nSourdough bread rises with wild yeast and lactic acid bacteria."}


def test_first_ingest_indexes_every_document_with_provenance(project: Project) -> None:
    project.write("acme", DOCS)
    summary = project.ingest("acme")
    assert (summary.documents, summary.added, summary.deleted, summary.quarantined) == (3, 3, 0, [])
    assert summary.chunks == summary.index_rows >= 3
    assert summary.model_calls == summary.chunks and summary.cache_hits == 0
    rows = project.store.export("acme", project.spaces.serving_space.space_id).to_pylist()
    assert {r["doc_id"] for r in rows} == set(DOCS)
    for row in rows:
        assert all(row[f] not in (None, "") for f in PROVENANCE_FIELDS)
        assert row["space_id"] == project.spaces.serving_space.space_id


def test_unchanged_rerun_costs_no_model_call(project: Project) -> None:
    project.write("acme", DOCS)
    first = project.ingest("acme")
    again = project.ingest("acme")
    # nothing changed upstream: the embeddings are not even looked up in the cache
    assert (again.model_calls, again.cache_hits, again.chunks, again.index_rows) == (0, 0, first.chunks, first.chunks)
    assert (again.unchanged, again.added, again.changed, again.deleted) == (3, 0, 0, 0)


def test_editing_one_sentence_reembeds_only_the_changed_chunk(project: Project) -> None:
    project.write("acme", DOCS)
    project.ingest("acme")
    before = {r["text"] for r in project.store.export("acme", _sid(project)).to_pylist()}
    project.write("acme", {"lens.md": DOCS["lens.md"].replace("twenty", "twenty-two")})
    summary = project.ingest("acme")
    after = {r["text"] for r in project.store.export("acme", _sid(project)).to_pylist()}
    assert summary.changed == 1 and summary.unchanged == 2
    assert summary.model_calls == len(after - before) == 1
    assert any("twenty-two" in t for t in after) and not any("twenty nautical" in t for t in after)


def test_a_deleted_document_leaves_the_index_in_the_same_run(project: Project, minilm: SpaceEmbedder) -> None:
    project.write("acme", DOCS)
    project.ingest("acme")
    (project.source("acme") / "notes" / "fog.txt").unlink()
    summary = project.ingest("acme")
    assert summary.deleted == 1 and summary.model_calls == 0
    space = project.spaces.serving_space
    for exact in (False, True):
        hits = search_tenant(project.store, space, minilm, "acme", "fog horns and bells", k=10, exact=exact)
        assert hits and all(h.doc_id != "notes/fog.txt" for h in hits)


def test_two_tenants_never_see_each_other(project: Project, minilm: SpaceEmbedder) -> None:
    project.write("acme", DOCS)
    project.write("globex", OTHER)
    project.ingest("acme")
    project.ingest("globex")
    space = project.spaces.serving_space
    for exact in (False, True):
        acme = search_tenant(project.store, space, minilm, "acme", "sourdough bread yeast", k=50, exact=exact)
        globex = search_tenant(project.store, space, minilm, "globex", "lighthouse lens", k=50, exact=exact)
        assert {h.provenance["tenant"] for h in acme} == {"acme"}
        assert {h.doc_id for h in globex} == {"bread.md"}


def test_search_finds_the_relevant_chunk(project: Project, minilm: SpaceEmbedder) -> None:
    project.write("acme", DOCS)
    project.ingest("acme")
    space = project.spaces.serving_space
    ann = search_tenant(project.store, space, minilm, "acme", "concentric prisms bending light", k=3)
    exact = search_tenant(project.store, space, minilm, "acme", "concentric prisms bending light", k=3, exact=True)
    assert ann[0].doc_id == "lens.md"
    assert [h.chunk_id for h in ann] == [h.chunk_id for h in exact]
    assert ann[0].score == pytest.approx(exact[0].score, abs=1e-4)


def test_materialize_reports_counts_in_metadata(project: Project) -> None:
    """The same assets through dagster.materialize: the metadata the UI shows."""
    from embedops.assets.chunks import document_chunks
    from embedops.assets.documents import source_documents
    from embedops.assets.embeddings import chunk_embeddings
    from embedops.assets.index import vector_index
    from embedops.pipelines.partitions import register_partitions, tenant_space_key

    project.write("acme", DOCS)
    register_partitions(project.instance, ["acme"], project.spaces)
    resources = project.defs.resources
    dg.materialize([source_documents], partition_key="acme", instance=project.instance, resources=resources)
    result = dg.materialize(
        [source_documents, document_chunks, chunk_embeddings, vector_index],
        selection=[document_chunks, chunk_embeddings, vector_index],
        partition_key=tenant_space_key("acme", project.spaces.serving_space.name),
        instance=project.instance,
        resources=resources,
    )
    chunks = result.asset_materializations_for_node("document_chunks")[0].metadata
    embeddings = result.asset_materializations_for_node("chunk_embeddings")[0].metadata
    index = result.asset_materializations_for_node("vector_index")[0].metadata
    assert chunks["added"].value == 3 and chunks["chunks"].value == index["rows"].value
    assert embeddings["model_calls"].value == chunks["chunks"].value
    assert "duration_s" in index and "quarantined" in chunks


def _sid(project: Project) -> str:
    return project.spaces.serving_space.space_id


def test_rechunking_pays_only_for_text_that_changed(tmp_path, minilm: SpaceEmbedder) -> None:  # type: ignore[no-untyped-def]
    """Two spaces, same model, different chunkers: chunks whose text is the same come from the cache."""
    from tests.conftest import make_project

    spaces = tmp_path / "spaces.yaml"
    spaces.write_text(
        "spaces:\n  - name: wide\n    chunker: {max_tokens: 200}\n"
        "  - name: narrow\n    chunker: {max_tokens: 30, overlap_tokens: 8, min_tokens: 4}\n"
    )
    project = make_project(tmp_path, spaces_file=spaces)
    long_para = " ".join(f"Sentence number {i} talks about ships and light." for i in range(12))
    project.write("acme", {**DOCS, "long.md": f"# Long\n\n{long_para}"})
    wide, narrow = project.ingest_all("acme")
    assert wide.space_id != narrow.space_id
    wide_texts = {r["text"] for r in project.store.export("acme", wide.space_id).to_pylist()}
    narrow_texts = [r["text"] for r in project.store.export("acme", narrow.space_id).to_pylist()]
    shared = [t for t in narrow_texts if t in wide_texts]
    assert shared, "short paragraphs should chunk the same way in both spaces"
    assert narrow.cache_hits == len(shared)
    assert narrow.model_calls == len(set(narrow_texts) - wide_texts)
