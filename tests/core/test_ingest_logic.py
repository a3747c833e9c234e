"""Dagster-free pieces: hashing, document diff, space identity, cache and tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embedops.core.cache import EmbeddingCache
from embedops.core.fingerprints import cache_key, chunk_id
from embedops.core.ingest import diff_documents
from embedops.core.sources import DOCUMENTS_SCHEMA
from embedops.core.spaces import DEFAULT_SPACE, ChunkerSpec, SpaceSpec, load_config, parse_config
from embedops.core.tables import Collector
from embedops.errors import ConfigError, UnknownSpaceError


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ({}, {"a": "1"}, {"added": 1, "changed": 0, "deleted": 0, "unchanged": 0}),
        ({"a": "1"}, {"a": "1"}, {"added": 0, "changed": 0, "deleted": 0, "unchanged": 1}),
        ({"a": "1"}, {"a": "2"}, {"added": 0, "changed": 1, "deleted": 0, "unchanged": 0}),
        ({"a": "1", "b": "1"}, {"b": "1"}, {"added": 0, "changed": 0, "deleted": 1, "unchanged": 1}),
        ({"a": "1"}, {}, {"added": 0, "changed": 0, "deleted": 1, "unchanged": 0}),
    ],
)
def test_diff_documents(previous: dict, current: dict, expected: dict) -> None:
    assert diff_documents(previous, current).counts() == expected


def test_cache_key_depends_on_model_and_exact_text_only() -> None:
    assert cache_key("m@1", "text") == cache_key("m@1", "text")
    assert cache_key("m@1", "text") != cache_key("m@2", "text")
    assert cache_key("m@1", "text") != cache_key("m@1", "text ")
    assert cache_key("ab", "c") != cache_key("a", "bc")


def test_chunk_id_is_stable_for_unchanged_text_and_tells_repeats_apart() -> None:
    assert chunk_id("d.md", "h1", 0) == chunk_id("d.md", "h1", 0)
    assert chunk_id("d.md", "h1", 0) != chunk_id("d.md", "h1", 1)
    assert chunk_id("d.md", "h1", 0) != chunk_id("e.md", "h1", 0)


def test_space_id_changes_with_anything_that_moves_vectors() -> None:
    base = DEFAULT_SPACE
    same = SpaceSpec(name="renamed", model=base.model, dimension=base.dimension)
    assert same.space_id == base.space_id  # the name is a label, not geometry
    for other in (
        SpaceSpec(name=base.name, model=base.model, dimension=base.dimension, preprocessing=2),
        SpaceSpec(name=base.name, model=base.model, dimension=base.dimension, normalize=False),
        SpaceSpec(name=base.name, model=base.model, dimension=base.dimension, chunker=ChunkerSpec(max_tokens=128)),
    ):
        assert other.space_id != base.space_id


def test_space_config_file(tmp_path: Path) -> None:
    path = tmp_path / "spaces.yaml"
    path.write_text(
        "alias: docs\nserving: small\nspaces:\n"
        "  - name: small\n    chunker: {max_tokens: 128, overlap_tokens: 16}\n"
        "  - name: static\n    dimension: 64\n"
        "    model: {name: minishlab/static, backend: model2vec, package: static_model}\n"
    )
    config = load_config(path)
    assert config.names == ["small", "static"] and config.serving_space.chunker.max_tokens == 128
    assert config.get("static").model.model_dir().is_dir()
    with pytest.raises(UnknownSpaceError, match="declared spaces: small, static"):
        config.get("nope")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "spaces is required"),
        ({"spaces": [{"name": "a"}, {"name": "a"}]}, "twice"),
        ({"spaces": [{"name": "a", "colour": "red"}]}, r"spaces\[0\].colour is not a known key"),
        ({"spaces": [{"name": "Bad Name"}]}, "not valid"),
        ({"spaces": [{"name": "a", "chunker": {"max_tokens": 10, "overlap_tokens": 20}}]}, "inconsistent"),
        ({"spaces": [{"name": "a", "model": {"name": "m", "backend": "onnx", "path": "/x"}}]}, "backend"),
        ({"spaces": [{"name": "a"}], "serving": "b"}, "not declared"),
    ],
)
def test_bad_space_config_names_the_problem(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_cache_round_trip(tmp_path: Path) -> None:
    cache = EmbeddingCache(str(tmp_path))
    vec = np.arange(4, dtype=np.float32)
    cache.put_many("m", [("k1", vec)])
    found = cache.get_many(["k1", "k2", "k1"])
    assert list(found) == ["k1"] and np.array_equal(found["k1"][0], vec)
    assert len(EmbeddingCache(str(tmp_path))) == 1  # persisted


def test_plan_chunks_streams_the_same_ledger_as_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Documents one at a time and chunk rows flushed every 2 rows: the same ledger, reused chunks included."""
    from embedops.core import ingest

    space = DEFAULT_SPACE
    docs = [
        {"tenant": "acme", "doc_id": f"{i}.md", "suffix": ".md", "size": 1, "modified_at": None, "checksum": f"c{i}",
         "text": f"# Doc {i}\n\n" + " ".join(f"word{i}-{j}." for j in range(150 * (i + 1)))}
        for i in range(4)
    ]
    table = pa.Table.from_pylist(docs, schema=DOCUMENTS_SCHEMA)
    words = lambda text: len(text.split())  # noqa: E731 - a token counter for the test

    def plan(documents: pa.Table, previous: pa.Table | None) -> tuple[ingest.ChunkPlan, pa.Table]:
        out = Collector(ingest.CHUNKS_SCHEMA)
        return ingest.plan_chunks(documents, previous, space, words, out), out.table()

    whole, expected = plan(table, None)
    monkeypatch.setattr(ingest, "DOCUMENTS_PER_BATCH", 1)
    monkeypatch.setattr(ingest, "BATCH_ROWS", 2)
    streamed, ledger = plan(table, None)
    assert ledger.equals(expected) and streamed.rows == whole.rows > 4
    # a first table counts its documents, all added, without listing them
    assert whole.counts() == {"added": 4, "changed": 0, "deleted": 0, "unchanged": 0} and whole.documents == 4
    edited = table.set_column(6, "text", pa.array([d["text"] + (" more." if d["doc_id"] == "2.md" else "")
                                                   for d in docs]))
    edited = edited.set_column(5, "checksum", pa.array(["c0", "c1", "c2-new", "c3"]))
    again, second = plan(edited, ledger)
    assert (again.diff.unchanged, again.diff.changed) == (["0.md", "1.md", "3.md"], ["2.md"])
    kept = second.filter(pa.compute.not_equal(second["doc_id"], "2.md"))
    assert sorted(kept.column("chunk_id").to_pylist()) == sorted(
        c for c, d in zip(ledger.column("chunk_id").to_pylist(), ledger.column("doc_id").to_pylist(), strict=True)
        if d != "2.md"
    )
