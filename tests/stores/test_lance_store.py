from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pytest

from embedops.core.dataplane import join, storage_options
from embedops.core.settings import control_url
from embedops.core.stores.lance import LanceStore
from embedops.errors import SpaceMismatchError
from tests.stores.contract import SPACE, VectorStoreContract, as_dataset, make_rows


class TestLanceStore(VectorStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LanceStore:
        return LanceStore(tmp_path / "lance", aliases=control_url(tmp_path))


class TestLanceStoreOnFakeS3(VectorStoreContract):
    """The same contract with the index on an object store: the FAKE S3 (moto's server, tests/s3.py)."""

    @pytest.fixture
    def store(self, s3: str, tmp_path: Path) -> LanceStore:
        uri = join(s3, "lancedb")
        return LanceStore(uri, storage_options=storage_options(uri), aliases=control_url(tmp_path))


def test_the_index_on_the_fake_s3_lives_in_the_bucket_and_answers_searches(s3: str, tmp_path: Path) -> None:
    uri = join(s3, "lancedb")
    store = LanceStore(uri, storage_options=storage_options(uri), aliases=control_url(tmp_path))
    rows = make_rows("acme", ["1-a", "2-a", "3-a"])
    assert store.sync("acme", *SPACE, rows).rows == 3
    target = np.asarray(rows.column("vector")[1].as_py(), dtype=np.float32)
    assert store.search("acme", SPACE[0], target, 1, query_space_id=SPACE[0])[0].chunk_id == "2-a"
    bucket, prefix = s3.removeprefix("s3://").split("/", 1)
    stored = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/lancedb/")
    table = LanceStore.table_name("acme", SPACE[0])
    assert any(o["Key"].startswith(f"{prefix}/lancedb/{table}.lance/_versions/") for o in stored["Contents"])
    # another worker, given only the URLs
    again = LanceStore(uri, storage_options=storage_options(uri), aliases=control_url(tmp_path))
    assert again.count("acme", SPACE[0]) == 3


def test_each_sync_is_one_version_and_old_versions_stay_readable(tmp_path: Path) -> None:
    store = LanceStore(tmp_path, aliases=control_url(tmp_path))
    first = store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
    second = store.sync("acme", *SPACE, make_rows("acme", ["3-a"]))
    assert second.version == (first.version or 0) + 1


def test_a_sync_from_a_dataset_is_one_version_or_none(tmp_path: Path) -> None:
    store = LanceStore(tmp_path / "lance", aliases=control_url(tmp_path))
    ids = [f"{i}-a" for i in range(30)]
    first = store.sync("acme", *SPACE, as_dataset(make_rows("acme", ids), tmp_path / "first.parquet"))
    assert first.version == 1
    # adds, changes and removals: one merge, so one version
    texts = [f"text of {i}" for i in ids[5:]] + ["edited", "new"]
    changed = make_rows("acme", [*ids[5:], "0-a", "new-a"], texts=texts)
    second = store.sync("acme", *SPACE, as_dataset(changed, tmp_path / "second.parquet"))
    assert (second.upserted, second.deleted, second.rows, second.version) == (27, 4, 27, 2)
    # unchanged: no version at all
    third = store.sync("acme", *SPACE, as_dataset(changed, tmp_path / "second.parquet"))
    assert (third.upserted, third.deleted, third.version) == (0, 0, 2)
    # removals only: one delete, one version
    fourth = store.sync("acme", *SPACE, as_dataset(changed.slice(0, 20), tmp_path / "fourth.parquet"))
    assert (fourth.upserted, fourth.deleted, fourth.rows, fourth.version) == (0, 7, 20, 3)


def test_a_table_written_by_another_space_is_refused(tmp_path: Path) -> None:
    store = LanceStore(tmp_path, aliases=control_url(tmp_path))
    store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    # a table copied in under another space's name keeps the space it was written with
    shutil.copytree(
        tmp_path / f"{LanceStore.table_name('acme', SPACE[0])}.lance",
        tmp_path / f"{LanceStore.table_name('acme', 'bbbbbbbbbbbb')}.lance",
    )

    with pytest.raises(SpaceMismatchError, match="bbbbbbbbbbbb"):
        store.count("acme", "bbbbbbbbbbbb")


def test_a_large_table_gets_an_ann_index_that_keeps_up_with_syncs(tmp_path: Path) -> None:
    store = LanceStore(tmp_path, ann_min_rows=500, aliases=control_url(tmp_path))
    ids = [f"{i}-a" for i in range(600)]
    rows = make_rows("acme", ids)
    store.sync("acme", *SPACE, rows)
    table = store._open("acme", SPACE[0])
    assert table is not None and [i.index_type for i in table.list_indices()] == ["IvfHnswSq"]
    # About sqrt(rows) partitions, not LanceDB's one graph of the whole table.
    segments = table.to_lance().stats.index_stats(table.list_indices()[0].name)["segments"]
    assert [segment["num_partitions"] for segment in segments] == [24]
    target = rows.column("vector")[123].as_py()
    assert store.search("acme", SPACE[0], target, 1, SPACE[0])[0].chunk_id == "123-a"

    store.sync(
        "acme", *SPACE, make_rows("acme", [*ids[1:], "new-a"], texts=[f"text of {i}" for i in [*ids[1:], "new-a"]])
    )
    stats = table.index_stats(table.list_indices()[0].name)
    assert stats is not None and stats.num_unindexed_rows == 0
    assert store.count("acme", SPACE[0]) == 600 and "0-a" not in store.export("acme", SPACE[0])["chunk_id"].to_pylist()

    # Later syncs index their rows in one small second part; the first build is never rebuilt for them.
    first_build = _index_parts(table)[0]
    for seed, name in enumerate(["newer", "newest"], start=7):
        added = make_rows("acme", [f"{name}-a"], seed=seed)
        store.sync("acme", *SPACE, added, documents=[f"doc-{name}.md"])
        parts = _index_parts(table)
        assert len(parts) == 2 and parts[0] == first_build
        found = store.search("acme", SPACE[0], added.column("vector")[0].as_py(), 1, SPACE[0])
        assert found[0].chunk_id == f"{name}-a"
    stats = table.index_stats(table.list_indices()[0].name)
    assert stats is not None and stats.num_unindexed_rows == 0


def test_an_index_the_table_has_outgrown_is_built_again(tmp_path: Path) -> None:
    store = LanceStore(tmp_path, ann_min_rows=500, aliases=control_url(tmp_path))
    store.sync("acme", *SPACE, make_rows("acme", [f"{i}-a" for i in range(600)]))
    table = store._open("acme", SPACE[0])
    assert table is not None
    first_build = _index_parts(table)

    def add(name: str, n: int, seed: int) -> pa.Table:
        rows = make_rows("acme", [f"{name}{i}-a" for i in range(n)], seed=seed)
        store.sync("acme", *SPACE, rows, documents=[f"doc-{name}{i}.md" for i in range(n)])
        return rows

    # 40 new rows of 640 (6%) go into a second part; the first build stays
    add("n", 40, seed=1)
    assert len(_index_parts(table)) == 2 and _index_parts(table)[0] == first_build[0]
    # 40 more: 80 of 680 rows (12%) lie outside the first build, so the whole table is indexed again,
    # in one part with partitions for its size now
    added = add("m", 40, seed=2)
    rebuilt = _index_parts(table)
    assert len(rebuilt) == 1 and rebuilt != first_build
    assert _partitions(table) == [26]  # isqrt(680); the first build had isqrt(600) = 24
    stats = table.index_stats(table.list_indices()[0].name)
    assert stats is not None and stats.num_unindexed_rows == 0
    found = store.search("acme", SPACE[0], added.column("vector")[7].as_py(), 1, SPACE[0])
    assert found[0].chunk_id == "m7-a"

    # deletions count too: 80 of the 680 rows it indexed gone (12%) build it again
    gone = [f"doc-{i}.md" for i in range(80)]
    result = store.sync("acme", *SPACE, make_rows("acme", ["599-a"]), documents=gone)
    assert result.deleted == 80 and result.rows == 600
    assert len(_index_parts(table)) == 1 and _index_parts(table) != rebuilt
    assert _partitions(table) == [24]
    assert store.count("acme", SPACE[0]) == 600


def _partitions(table: Any) -> list[int]:
    """The IVF partitions of each part of the table's vector index."""
    segments = table.to_lance().stats.index_stats(table.list_indices()[0].name)["segments"]
    return [segment["num_partitions"] for segment in segments]


def _index_parts(table: Any) -> list[str]:
    """The uuids of the parts of the table's vector index, oldest first."""
    indices = table.to_lance().describe_indices()
    return [part.uuid for index in indices if "vector" in index.field_names for part in index.segments]


def test_a_small_table_is_searched_exactly_without_an_index(tmp_path: Path) -> None:
    store = LanceStore(tmp_path, aliases=control_url(tmp_path))
    store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
    table = store._open("acme", SPACE[0])
    assert table is not None and table.list_indices() == []
