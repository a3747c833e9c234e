"""The contract every VectorStore implementation passes: one suite, run against each store.

A test module subclasses ``VectorStoreContract`` and provides a ``store`` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from embedops.core.stores.base import PROVENANCE_FIELDS, VectorStore, index_schema
from embedops.errors import NotMaterializedError, SpaceMismatchError

DIM = 8
SPACE = ("a1b2c3d4e5f6", "contract-space")
OTHER_SPACE = ("ffffffffffff", "other-space")


def make_rows(
    tenant: str, ids: list[str], texts: list[str] | None = None, space: tuple[str, str] = SPACE, seed: int = 0
) -> pa.Table:
    """Index rows with unit vectors; ``texts`` defaults to the ids (text_hash follows the text)."""
    texts = texts or [f"text of {i}" for i in ids]
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(ids), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = datetime.now(UTC)
    n = len(ids)
    columns = {
        "chunk_id": ids,
        "tenant": [tenant] * n,
        "doc_id": [f"doc-{i.split('-')[0]}.md" for i in ids],
        "seq": list(range(n)),
        "text": texts,
        "text_hash": [f"h:{t}" for t in texts],
        "source_checksum": ["c" * 64] * n,
        "space_id": [space[0]] * n,
        "space_name": [space[1]] * n,
        "model": ["contract-model@1"] * n,
        "config_hash": ["cfg"] * n,
        "embedded_at": [now] * n,
        "vector": list(vectors),
    }
    return pa.table(columns, schema=index_schema(DIM))


class VectorStoreContract:
    """Behaviour the pipeline relies on, whatever the backend."""

    def test_is_a_vector_store(self, store: VectorStore) -> None:
        assert isinstance(store, VectorStore)

    def test_sync_creates_then_mirrors_rows(self, store: VectorStore) -> None:
        first = store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a", "3-a"]))
        assert (first.upserted, first.deleted, first.rows) == (3, 0, 3)
        second = store.sync(
            "acme", *SPACE, make_rows("acme", ["1-a", "2-a", "4-a"], ["text of 1-a", "edited", "new"])
        )
        assert (second.upserted, second.deleted, second.rows) == (2, 1, 3)
        exported = store.export("acme", SPACE[0])
        assert sorted(exported.column("chunk_id").to_pylist()) == ["1-a", "2-a", "4-a"]
        assert dict(zip(exported["chunk_id"].to_pylist(), exported["text"].to_pylist(), strict=True))[
            "2-a"
        ] == "edited"

    def test_unchanged_sync_writes_nothing(self, store: VectorStore) -> None:
        rows = make_rows("acme", ["1-a", "2-a"])
        store.sync("acme", *SPACE, rows)
        again = store.sync("acme", *SPACE, rows)
        assert (again.upserted, again.deleted, again.rows) == (0, 0, 2)

    def test_sync_to_empty_removes_everything(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
        result = store.sync("acme", *SPACE, make_rows("acme", []))
        assert result.rows == 0 and store.count("acme", SPACE[0]) == 0

    def test_search_ranks_the_nearest_first_with_provenance(self, store: VectorStore) -> None:
        rows = make_rows("acme", ["1-a", "2-a", "3-a", "4-a"])
        store.sync("acme", *SPACE, rows)
        target = np.asarray(rows.column("vector")[2].as_py(), dtype=np.float32)
        hits = store.search("acme", SPACE[0], target, 2, query_space_id=SPACE[0])
        assert hits[0].chunk_id == "3-a" and hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert len(hits) == 2 and hits[0].score >= hits[1].score
        assert set(PROVENANCE_FIELDS) - {"chunk_id", "doc_id"} <= set(hits[0].provenance)

    def test_tenants_never_see_each_other(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
        store.sync("globex", *SPACE, make_rows("globex", ["1-g", "2-g"], seed=1))
        query = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
        assert {h.chunk_id for h in store.search("acme", SPACE[0], query, 10, SPACE[0])} == {"1-a", "2-a"}
        assert {h.chunk_id for h in store.search("globex", SPACE[0], query, 10, SPACE[0])} == {"1-g", "2-g"}
        assert store.tenants(SPACE[0]) == ["acme", "globex"]
        assert store.count("acme", SPACE[0]) == 2

    def test_query_of_another_space_is_refused_naming_both(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
        with pytest.raises(SpaceMismatchError) as err:
            store.search("acme", SPACE[0], np.ones(DIM), 1, query_space_id=OTHER_SPACE[0])
        assert SPACE[0] in str(err.value) and OTHER_SPACE[0] in str(err.value)

    def test_rows_of_another_space_are_refused(self, store: VectorStore) -> None:
        with pytest.raises(SpaceMismatchError):
            store.sync("acme", *SPACE, make_rows("acme", ["1-a"], space=OTHER_SPACE))
        assert store.count("acme", SPACE[0]) == 0

    def test_delete_by_id(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a", "3-a"]))
        assert store.delete("acme", SPACE[0], ["2-a", "nope"]) == 1
        assert sorted(store.export("acme", SPACE[0]).column("chunk_id").to_pylist()) == ["1-a", "3-a"]

    def test_export_has_vectors_only_when_asked(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
        assert "vector" not in store.export("acme", SPACE[0]).column_names
        with_vectors = store.export("acme", SPACE[0], with_vectors=True)
        assert len(with_vectors.column("vector")[0].as_py()) == DIM

    def test_alias_points_at_one_space_and_repoints(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
        store.sync("acme", *OTHER_SPACE, make_rows("acme", ["1-a"], space=OTHER_SPACE))
        assert store.get_alias("docs") is None
        store.set_alias("docs", SPACE[0])
        assert store.get_alias("docs") == SPACE[0]
        store.set_alias("docs", OTHER_SPACE[0])
        assert store.get_alias("docs") == OTHER_SPACE[0]

    def test_alias_to_a_space_with_no_collection_is_refused(self, store: VectorStore) -> None:
        with pytest.raises(NotMaterializedError):
            store.set_alias("docs", OTHER_SPACE[0])
        assert store.get_alias("docs") is None
