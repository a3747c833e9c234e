"""Materialized tables as Lance datasets, on a folder and on an object store (the FAKE S3 of tests/s3.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import lance
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError
from lance.fragment import write_fragments
from tests.s3 import BUCKET

from embedops.core import tables as tables_module
from embedops.core.dataplane import storage_options
from embedops.core.settings import Settings
from embedops.core.tables import TableStore, batches, columns, count
from embedops.definitions import build_defs
from embedops.errors import ConfigError, NotMaterializedError

SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("n", pa.int64())])
PART = ("acme", "static")


def rows(*ids: str, n: int = 0) -> pa.Table:
    return pa.table({"doc_id": list(ids), "text": [f"text of {i}" for i in ids], "n": [n] * len(ids)}, schema=SCHEMA)


def content(table: pa.Table | None) -> dict[str, int]:
    assert table is not None
    return dict(zip(table.column("doc_id").to_pylist(), table.column("n").to_pylist(), strict=True))


@pytest.fixture(params=["folder", "fake-s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The data root: a folder, or a prefix on the FAKE S3 (moto)."""
    return str(tmp_path / "data") if request.param == "folder" else str(request.getfixturevalue("s3"))


@pytest.fixture
def store(root: str) -> TableStore:
    return TableStore(root, storage_options=storage_options(root))


def test_a_partition_never_written_reads_as_nothing(store: TableStore) -> None:
    assert store.read("chunks", PART) is None
    assert store.dataset("chunks", PART) is None
    assert store.latest("chunks", PART) is None
    assert store.read_columns("chunks", PART, ["doc_id"]) is None
    assert store.count_rows("chunks", PART) is None
    assert store.versions("chunks", PART) == []
    assert store.partitions("chunks") == []


def test_a_writer_commits_its_batches_as_one_version_read_back_in_batches(
    store: TableStore, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables_module, "FLUSH_BYTES", 1)  # every batch becomes a data file of its own
    with store.writer("chunks", PART, SCHEMA, "run-1") as out:
        for start in range(0, 10, 3):
            out.write(rows(*(f"d{i}" for i in range(start, min(start + 3, 10)))))
        assert store.latest("chunks", PART) is None  # nothing is visible before the block ends
    assert out.rows == 10 and out.version == 1
    assert store.latest("chunks", PART) == (f"{root}/tables/chunks/acme/static.lance", 1)

    found = store.dataset("chunks", PART)
    assert found is not None and count(found) == 10
    parts = list(batches(found, ["doc_id"], size=4))
    assert [p.num_rows for p in parts] == [4, 4, 2] and parts[0].column_names == ["doc_id"]
    assert sorted(pa.concat_tables(parts).column("doc_id").to_pylist()) == sorted(f"d{i}" for i in range(10))
    assert columns(found, ["doc_id", "text"]).column_names == ["doc_id", "text"]
    assert store.count_rows("chunks", PART) == 10

    assert store.write("chunks", PART, rows("x"), "run-2") == 2  # the next materialization replaces the rows
    assert content(store.read("chunks", PART)) == {"x": 0}


def test_a_failed_writer_block_leaves_the_previous_version_the_latest(
    store: TableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write("chunks", PART, rows("a", "b"))
    monkeypatch.setattr(tables_module, "FLUSH_BYTES", 1)  # its rows reach storage before it fails
    with pytest.raises(RuntimeError, match="model went away"):
        with store.writer("chunks", PART, SCHEMA) as out:
            out.write(rows("c"))
            out.write(rows("d"))
            raise RuntimeError("model went away")
    assert out.version is None
    assert store.latest("chunks", PART) is not None and store.latest("chunks", PART)[1] == 1  # type: ignore[index]
    assert content(store.read("chunks", PART)) == {"a": 0, "b": 0}
    assert store.write("chunks", PART, rows("e")) == 2  # and the next writer goes on from there
    assert content(store.read("chunks", PART)) == {"e": 0}


def test_a_writer_refuses_rows_of_another_schema(store: TableStore) -> None:
    with pytest.raises(ValueError, match="schema"):
        with store.writer("chunks", PART, SCHEMA) as out:
            out.write(pa.table({"doc_id": ["a"]}))
    assert store.latest("chunks", PART) is None


def test_apply_merges_and_removes_in_one_version(store: TableStore) -> None:
    assert store.apply("chunks", PART, SCHEMA, rows("a", "b", "c"), key="doc_id") == 1  # creates the table
    version = store.apply(
        "chunks", PART, SCHEMA, rows("b", "d", n=2), key="doc_id", delete_where="doc_id IN ('c', 'b')"
    )
    assert version == 2  # b updated, d added, c removed: one commit (b is in the rows, so it stays)
    assert content(store.read("chunks", PART)) == {"a": 0, "b": 2, "d": 2}
    assert store.delete("chunks", PART, "doc_id = 'a'") == 3
    assert content(store.read("chunks", PART)) == {"b": 2, "d": 2}
    assert [v for v, _ in store.versions("chunks", PART)] == [1, 2, 3]


def test_delete_from_a_table_never_written_names_it(store: TableStore) -> None:
    with pytest.raises(NotMaterializedError, match="chunks of partition acme/static"):
        store.delete("chunks", PART, "doc_id = 'a'")


def test_an_earlier_version_reads_as_it_was(store: TableStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    store.write("chunks", PART, rows("a"))
    store.apply("chunks", PART, SCHEMA, rows("b", n=1), key="doc_id")
    kept = store.versions("chunks", PART)
    assert [v for v, _ in kept] == [1, 2]
    assert before < kept[0][1] <= kept[1][1] <= datetime.now(UTC) + timedelta(seconds=5)
    assert content(store.read("chunks", PART, version=1)) == {"a": 0}
    old = store.dataset("chunks", PART, version=1)
    assert old is not None and old.version == 1 and count(old) == 1
    assert content(store.read("chunks", PART)) == {"a": 0, "b": 1}


def test_replaced_versions_go_after_the_retention_and_the_latest_stays(root: str) -> None:
    keeping = TableStore(root, storage_options(root))  # the default: a week
    for i in range(3):
        keeping.write("chunks", PART, rows(f"v{i}"))
    assert [v for v, _ in keeping.versions("chunks", PART)] == [1, 2, 3]

    forgetful = TableStore(root, storage_options(root), retention=timedelta(0))
    forgetful.write("chunks", PART, rows("v3"))
    assert [v for v, _ in forgetful.versions("chunks", PART)] == [4]
    assert content(forgetful.read("chunks", PART)) == {"v3": 0}
    with pytest.raises(NotMaterializedError, match=r"no version 2; it keeps versions \[4\].*RETENTION_DAYS, now 0 "):
        forgetful.dataset("chunks", PART, version=2)


def test_partitions_lists_the_tenants_with_a_table(store: TableStore) -> None:
    store.write("source_documents", ("acme",), rows("a"))
    store.write("source_documents", ("globex",), rows("b"))
    store.write("chunks", PART, rows("c"))
    assert store.partitions("source_documents") == ["acme", "globex"]


def test_concurrent_commits_on_the_fake_s3_never_overwrite_each_other(s3: str) -> None:
    """Lance commits a version by creating its manifest only if absent (S3's ``If-None-Match: *``).

    moto honours that header (a second create of one key is refused, 412), so commits racing from one
    read version each land as their own version, none lost: what a store ignoring the header would break.
    """
    client = boto3.client("s3")
    client.put_object(Bucket=BUCKET, Key="probe", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=BUCKET, Key="probe", Body=b"2", IfNoneMatch="*")

    options = storage_options(s3)
    url = f"{s3}/race.lance"
    lance.write_dataset(rows("base"), url, storage_options=options)
    writers = 6
    files = [write_fragments(rows(f"w{i}"), url, schema=SCHEMA, storage_options=options) for i in range(writers)]
    start = threading.Barrier(writers)
    versions: list[int] = []

    def commit(i: int) -> None:
        start.wait()
        done = lance.LanceDataset.commit(url, lance.LanceOperation.Append(files[i]), read_version=1,
                                         storage_options=options)
        versions.append(done.version)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == list(range(2, 2 + writers))
    final = lance.dataset(url, storage_options=options)
    assert sorted(final.to_table().column("doc_id").to_pylist()) == ["base", *(f"w{i}" for i in range(writers))]


def test_the_data_url_and_retention_reach_the_tables_and_the_index(tmp_path: Path) -> None:
    env = {"EMBEDOPS_HOME": str(tmp_path / "home"), "EMBEDOPS_DATA_URL": "s3://bucket/prod/",
           "EMBEDOPS_TABLE_RETENTION_DAYS": "0.5"}
    defs = build_defs(Settings.from_env(env))
    tables = defs.resources["workspace"].tables()  # type: ignore[attr-defined]
    assert tables.url("chunks", PART) == "s3://bucket/prod/tables/chunks/acme/static.lance"
    assert tables.retention == timedelta(hours=12)
    assert defs.resources["vector_store"].lance_uri == "s3://bucket/prod/lancedb"  # type: ignore[attr-defined]

    local = Settings.from_env({"EMBEDOPS_HOME": str(tmp_path / "home")})
    assert local.lance_uri == str(tmp_path / "home" / "data" / "lancedb") and local.table_retention_days == 7


@pytest.mark.parametrize("days", ["-1", "a week", "nan", "inf"])
def test_a_retention_that_is_not_a_number_of_days_is_refused_naming_the_setting(days: str) -> None:
    with pytest.raises(ConfigError, match=f"EMBEDOPS_TABLE_RETENTION_DAYS='{days}' is not a number of days"):
        Settings.from_env({"EMBEDOPS_HOME": "/tmp/x", "EMBEDOPS_TABLE_RETENTION_DAYS": days})
