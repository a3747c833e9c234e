"""The contract every VectorStore implementation passes: one suite, run against each store.

A test module subclasses ``VectorStoreContract`` and provides a ``store`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from embedops.core.stores.base import PROVENANCE_FIELDS, VectorStore, index_schema
from embedops.core.tables import BATCH_ROWS
from embedops.errors import InvalidTenantError, NotMaterializedError, RowContractError, SpaceMismatchError

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
        "stale": [False] * n,
        "vector": list(vectors),
    }
    return pa.table(columns, schema=index_schema(DIM))


def as_dataset(rows: pa.Table, path: Path) -> ds.Dataset:
    """``rows`` written to a Parquet file in several row groups and opened as a dataset, as the pipeline does."""
    pq.write_table(rows, path, row_group_size=7)
    return ds.dataset(path, format="parquet")


def as_tenant(rows: pa.Table, tenant: str) -> pa.Table:
    """The same rows for another tenant (same ids, texts, vectors and timestamps)."""
    return rows.set_column(rows.schema.get_field_index("tenant"), "tenant", pa.array([tenant] * rows.num_rows))


def _ids(n: int) -> list[str]:
    return [f"{i}-a" for i in range(n)]


# More rows than one streamed batch, so a fault in the last row is met only after a whole batch was read.
STREAMED = BATCH_ROWS + 10
INVALID_TENANTS = ("Acme", "../acme", "", "a b", "acme/../globex", "x" * 64)


def _with_last(rows: pa.Table, column: str, value: str) -> pa.Table:
    """``rows`` with ``column`` of the last row set to ``value``."""
    values = rows.column(column).to_pylist()
    values[-1] = value
    field = rows.schema.field(column)
    return rows.set_column(rows.schema.get_field_index(column), field, pa.array(values, field.type))


def _refused_and_nothing_written(
    store: VectorStore, tmp_path: Path, rows_of: Callable[[str], pa.Table], error: type[Exception], match: str
) -> None:
    """Every write of ``rows_of(tenant)`` is refused: sync and upsert, of a table and of a streamed dataset, to
    a tenant with rows and to a new one; afterwards the store reads back exactly as before."""
    store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
    before = store.export("acme", SPACE[0], with_vectors=True)
    for tenant in ("acme", "initech"):
        rows = rows_of(tenant)
        for given in (rows, as_dataset(rows, tmp_path / f"{tenant}.parquet")):
            for write in (store.sync, store.upsert):
                with pytest.raises(error, match=match):
                    write(tenant, *SPACE, given)
    assert store.tenants(SPACE[0]) == ["acme"] and store.tenants(OTHER_SPACE[0]) == []
    assert store.count("acme", SPACE[0]) == 2
    assert store.export("acme", SPACE[0], with_vectors=True).equals(before)


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

    def test_sync_from_a_parquet_dataset_gives_the_collection_a_table_gives(
        self, store: VectorStore, tmp_path: Path
    ) -> None:
        # more rows than one batch of most readers' defaults; one id needs quoting in a filter
        ids = [*_ids(40), "40-o'brien\\"]
        kept = ids[:35]
        edited = [f"edited {i}" if n in (3, 10, 20) else f"text of {i}" for n, i in enumerate(kept)]
        states = [
            make_rows("acme", ids),
            make_rows("acme", [*kept, "41-a", "42-a"], texts=[*edited, "new 41", "new 42"]),  # 3 edited, 2 new
            make_rows("acme", []),
        ]
        expected = [(41, 0, 41), (5, 6, 37), (0, 37, 0)]
        for step, rows in enumerate(states):
            from_table = store.sync("acme", *SPACE, rows)
            dataset = as_dataset(as_tenant(rows, "globex"), tmp_path / f"step{step}.parquet")
            from_dataset = store.sync("globex", *SPACE, dataset)
            assert (from_table.upserted, from_table.deleted, from_table.rows) == expected[step]
            assert (from_dataset.upserted, from_dataset.deleted, from_dataset.rows) == expected[step]
            if rows.num_rows:
                acme = store.export("acme", SPACE[0], with_vectors=True).drop_columns(["tenant"])
                globex = store.export("globex", SPACE[0], with_vectors=True).drop_columns(["tenant"])
                assert globex.sort_by("chunk_id").equals(acme.sort_by("chunk_id"))
                assert globex.select(["chunk_id", "text"]).sort_by("chunk_id").equals(
                    rows.select(["chunk_id", "text"]).sort_by("chunk_id")
                )
        assert [store.count(t, SPACE[0]) for t in ("acme", "globex")] == [0, 0]

    def test_unchanged_sync_from_a_dataset_writes_nothing(self, store: VectorStore, tmp_path: Path) -> None:
        rows = make_rows("acme", _ids(30))
        store.sync("acme", *SPACE, rows)
        again = store.sync("acme", *SPACE, as_dataset(rows, tmp_path / "rows.parquet"))
        assert (again.upserted, again.deleted, again.rows) == (0, 0, 30)

    def test_sync_rewrites_exactly_the_rows_whose_change_columns_differ(
        self, store: VectorStore, tmp_path: Path
    ) -> None:
        rows = make_rows("acme", _ids(12))
        store.sync("acme", *SPACE, rows)
        edited = rows.set_column(
            rows.schema.get_field_index("config_hash"),
            "config_hash",
            pc.if_else(pc.is_in(rows["chunk_id"], pa.array(["2-a", "7-a"])), "cfg2", rows["config_hash"]),
        )
        result = store.sync("acme", *SPACE, as_dataset(edited, tmp_path / "edited.parquet"))
        assert (result.upserted, result.deleted, result.rows) == (2, 0, 12)
        exported = store.export("acme", SPACE[0])
        hashes = dict(zip(exported["chunk_id"].to_pylist(), exported["config_hash"].to_pylist(), strict=True))
        assert sorted(c for c, h in hashes.items() if h == "cfg2") == ["2-a", "7-a"]

    def test_a_sync_of_named_documents_gives_the_collection_a_full_sync_gives(
        self, store: VectorStore, tmp_path: Path
    ) -> None:
        before = make_rows("acme", ["1-a", "1-b", "2-a", "3-a"])
        store.sync("acme", *SPACE, before)
        # doc-1.md loses 1-b and has 1-a edited, doc-3.md goes, doc-4.md arrives; doc-2.md is as it was
        after = pa.concat_tables([
            make_rows("acme", ["1-a"], ["edited"]),
            before.filter(pc.equal(before["chunk_id"], "2-a")),
            make_rows("acme", ["4-a"], ["new"], seed=1),
        ])
        named = ["doc-1.md", "doc-3.md", "doc-4.md"]

        result = store.sync("acme", *SPACE, as_dataset(after, tmp_path / "after.parquet"), documents=named)

        assert (result.upserted, result.deleted, result.rows) == (2, 2, 3)
        exported = store.export("acme", SPACE[0], with_vectors=True)
        assert exported.select(["chunk_id", "text", "vector"]).sort_by("chunk_id").equals(
            after.select(["chunk_id", "text", "vector"]).sort_by("chunk_id")
        )
        again = store.sync("acme", *SPACE, after, documents=named)
        assert (again.upserted, again.deleted, again.rows) == (0, 0, 3)

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

    def test_an_invalid_tenant_name_is_refused_everywhere_and_nothing_is_written(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
        before = store.export("acme", SPACE[0], with_vectors=True)
        query = np.ones(DIM, dtype=np.float32)
        for tenant in INVALID_TENANTS:
            rows = as_tenant(make_rows("acme", ["1-a", "2-a"]), tenant)
            calls = [
                lambda t=tenant, r=rows: store.sync(t, *SPACE, r),
                lambda t=tenant, r=rows: store.upsert(t, *SPACE, r),
                lambda t=tenant: store.delete(t, SPACE[0], ["1-a"]),
                lambda t=tenant: store.count(t, SPACE[0]),
                lambda t=tenant: store.search(t, SPACE[0], query, 1, SPACE[0]),
                lambda t=tenant: store.export(t, SPACE[0]),
            ]
            for call in calls:
                with pytest.raises(InvalidTenantError, match="is not a valid tenant name"):
                    call()
        assert store.tenants(SPACE[0]) == ["acme"]
        assert store.export("acme", SPACE[0], with_vectors=True).equals(before)

    def test_rows_of_another_tenant_are_refused_and_nothing_is_written(
        self, store: VectorStore, tmp_path: Path
    ) -> None:
        _refused_and_nothing_written(
            store,
            tmp_path,
            lambda tenant: _with_last(make_rows(tenant, _ids(STREAMED)), "tenant", "globex"),
            RowContractError,
            r"tenant\(s\) \['globex'\] cannot be written to tenant",
        )

    def test_rows_repeating_a_chunk_id_are_refused_and_nothing_is_written(
        self, store: VectorStore, tmp_path: Path
    ) -> None:
        _refused_and_nothing_written(
            store,
            tmp_path,
            lambda tenant: make_rows(tenant, [*_ids(STREAMED - 1), "0-a"]),  # the repeat is in the second batch
            RowContractError,
            r"repeat chunk ids \['0-a'\]",
        )

    def test_rows_of_another_space_among_them_are_refused_and_nothing_is_written(
        self, store: VectorStore, tmp_path: Path
    ) -> None:
        _refused_and_nothing_written(
            store,
            tmp_path,
            lambda tenant: _with_last(make_rows(tenant, _ids(STREAMED)), "space_id", OTHER_SPACE[0]),
            SpaceMismatchError,
            rf"\['{OTHER_SPACE[0]}'\] cannot be written to the index of space '{SPACE[1]}' \({SPACE[0]}\)",
        )

    def test_delete_by_id(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a", "3-a"]))
        assert store.delete("acme", SPACE[0], ["2-a", "nope"]) == 1
        assert sorted(store.export("acme", SPACE[0]).column("chunk_id").to_pylist()) == ["1-a", "3-a"]

    def test_export_has_vectors_only_when_asked(self, store: VectorStore) -> None:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
        assert "vector" not in store.export("acme", SPACE[0]).column_names
        with_vectors = store.export("acme", SPACE[0], with_vectors=True)
        assert len(with_vectors.column("vector")[0].as_py()) == DIM

    def test_export_batches_give_every_row_a_few_at_a_time(self, store: VectorStore) -> None:
        ids = [f"{i}-a" for i in range(7)]
        store.sync("acme", *SPACE, make_rows("acme", ids))
        parts = list(store.export_batches("acme", SPACE[0], size=3))
        assert [p.num_rows for p in parts] == [3, 3, 1] and all("vector" not in p.column_names for p in parts)
        whole = pa.concat_tables(parts).sort_by("chunk_id")
        assert whole.equals(store.export("acme", SPACE[0]).sort_by("chunk_id"))
        vectors = list(store.export_batches("acme", SPACE[0], with_vectors=True, size=100))
        assert len(vectors) == 1 and len(vectors[0].column("vector")[0].as_py()) == DIM
        with pytest.raises(NotMaterializedError):
            store.export_batches("globex", SPACE[0])

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
