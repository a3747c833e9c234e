"""Materialized tables: each asset partition is a Lance dataset on the data plane (a folder or an object store).

``<data root>/tables/<asset>/<partition...>.lance``, where each materialization is a new version of
the dataset, committed once (Lance commits a version atomically, on object stores by a conditional
write), so a reader sees the previous version or the new one, never a mix, and a writer that fails
or is killed leaves the previous version the latest. Older versions are the audit trail, kept for
``retention`` (EMBEDOPS_TABLE_RETENTION_DAYS) and readable by number (time travel). A change can
also be committed as just the change: ``apply`` merges rows on a key and removes others in one
version, ``delete`` removes rows. Concurrent writers of one partition are kept apart by the run
leases of the control plane, not here.

The pipeline streams: it reads a materialization as a dataset, batch by batch (``Rows`` is an
in-memory table or such a dataset; ``batches`` and ``columns`` read either), and writes the next
one through a ``TableWriter``, so no step holds a tenant's corpus in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeAlias

import lance
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from lance.fragment import FragmentMetadata, write_fragments

from embedops.core.dataplane import is_remote, join, open_dataset, reaching
from embedops.errors import NotMaterializedError

Rows: TypeAlias = pa.Table | ds.Dataset  # a materialization in memory, or stored (Lance, Parquet) and read in batches
BATCH_ROWS = 2048
# A writer holds this much of its rows before writing them out as a data file (a fragment) of the new version.
FLUSH_BYTES = 16 * 1024 * 1024  # measured at 100k 384-d vectors: +97 MB peak RSS (64 MiB: +138 MB)
DEFAULT_RETENTION = timedelta(days=7)
SCAN_BUFFER_BYTES = 32 * 1024 * 1024  # what a scan of a table reads ahead of its consumer, at most
TABLES = "the materialized tables"  # how an unreachable-store error names them


def batches(rows: Rows, columns: Sequence[str] | None = None, size: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The rows ``size`` at a time (fewer for the last), as tables of the given ``columns``."""
    names = list(columns) if columns is not None else None
    if isinstance(rows, pa.Table):
        table = rows.select(names) if names is not None else rows
        for start in range(0, table.num_rows, size):
            yield table.slice(start, size)
        return
    parts: Iterator[pa.RecordBatch]
    if isinstance(rows, ds.FileSystemDataset):
        # file by file, row group by row group: the dataset scanner's read-ahead grows with the file
        parts = (
            batch
            for path in rows.files
            for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=size, columns=names)
        )
    elif isinstance(rows, lance.LanceDataset):
        # Lance's default read-ahead buffer fills while a slow consumer (the model) works: a bump at the start
        # of the scan that grows with the table (+150 MiB at 300k chunk rows; the scan is no slower bounded)
        parts = iter(rows.to_batches(columns=names, batch_size=size, io_buffer_size=SCAN_BUFFER_BYTES))
    else:
        parts = iter(rows.to_batches(columns=names, batch_size=size))
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in parts:
        pending.append(batch)
        held += batch.num_rows
        while held >= size:
            table = pa.Table.from_batches(pending).combine_chunks()
            yield table.slice(0, size)
            rest = table.slice(size)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks()


def columns(rows: Rows, names: Sequence[str]) -> pa.Table:
    """Only these columns of every row: what a step keeps in memory to plan (ids, hashes)."""
    return rows.select(list(names)) if isinstance(rows, pa.Table) else rows.to_table(columns=list(names))


def count(rows: Rows) -> int:
    return rows.num_rows if isinstance(rows, pa.Table) else rows.count_rows()


def where_in(table: pa.Table, column: str, values: set[str] | Sequence[str]) -> pa.Table:
    """The rows whose ``column`` is one of ``values``."""
    if not values:
        return table.slice(0, 0)
    return table.filter(pc.is_in(table[column], value_set=pa.array(sorted(values), table.schema.field(column).type)))


# Past this many ids a commit's delete filter (an SQL ``IN`` list) costs more than rewriting the table.
MAX_FILTER_IDS = 2000


def in_filter(column: str, values: Iterable[str]) -> str:
    """An SQL filter: ``column IN ('a', 'b')`` (quotes doubled), or ``false`` for no values."""
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))
    return f"{column} IN ({quoted})" if quoted else "false"


def worth_a_change(size: int) -> bool:
    """Whether a change of ``size`` documents is small enough to commit as a change rather than a new table."""
    return size <= MAX_FILTER_IDS


class Sink(Protocol):
    """Where a step writes its rows: a TableWriter (a new materialization) or a Collector."""

    rows: int

    def write(self, table: pa.Table) -> None: ...


class TableWriter:
    """Writes one new materialization batch by batch; ``TableStore.writer`` commits it as one version on success.

    Rows are written out as data files every ``FLUSH_BYTES`` or so (what the writer holds in memory at
    most); only the commit makes them a version. The data files of a writer that never commits belong
    to no version; Lance's cleanup removes such files once they are a week old.
    ``url`` and ``version`` name the committed version.
    """

    def __init__(
        self, url: str, schema: pa.Schema, storage_options: dict[str, str], create: bool, run_id: str = "local"
    ) -> None:
        self.url = url
        self.run_id = run_id
        self.schema = schema
        self.rows = 0
        self.version: int | None = None
        self._options = storage_options
        self._mode = "create" if create else "overwrite"
        self._pending: list[pa.Table] = []
        self._held = 0
        self._fragments: list[FragmentMetadata] = []

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if not table.num_rows:
            return
        part = pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table
        if not part.schema.equals(self.schema, check_metadata=False):
            raise ValueError(f"rows for {self.url} have schema\n{part.schema}\nnot the table's\n{self.schema}")
        self._pending.append(part)
        self._held += part.nbytes
        self.rows += part.num_rows
        if self._held >= FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        with reaching(self.url, TABLES):
            self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            data = pa.concat_tables(self._pending).replace_schema_metadata(self.schema.metadata)
            self._pending, self._held = [], 0
            # mode "create" only because no version exists yet (and "overwrite" would log a warning)
            self._fragments += write_fragments(
                data, self.url, schema=self.schema, mode=self._mode, storage_options=self._options
            )

    def commit(self) -> lance.LanceDataset:
        """Write what is held and make every row written one new version (the latest)."""
        self._flush()
        operation = lance.LanceOperation.Overwrite(self.schema, self._fragments)
        with reaching(self.url, TABLES):
            dataset = lance.LanceDataset.commit(
                self.url, operation, storage_options=self._options, commit_message=f"run {self.run_id}"
            )
        self.version = dataset.version
        return dataset


class Collector:
    """An in-memory stand-in for a TableWriter (the golden set, tests): ``table()`` after writing."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows = 0
        self._parts: list[pa.Table] = []

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if table.num_rows:
            self._parts.append(pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table)
            self.rows += table.num_rows

    def table(self) -> pa.Table:
        return pa.concat_tables(self._parts).cast(self.schema) if self._parts else self.schema.empty_table()


class TableStore:
    """Every asset partition's materializations, as versions of a Lance dataset under ``root`` (a folder or URL).

    ``storage_options`` reach the object store (``dataplane.storage_options``). After each commit the
    versions committed more than ``retention`` ago are removed, with the files only they used; the
    latest version always stays, however old.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        storage_options: dict[str, str] | None = None,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.root = os.fspath(root)
        self.storage_options = dict(storage_options or {})
        self.retention = retention

    def url(self, asset: str, partition: tuple[str, ...]) -> str:
        """Where the partition's dataset lives: ``<root>/tables/<asset>/<partition...>.lance``."""
        return join(self.root, "tables", asset, *partition) + ".lance"

    def write(self, asset: str, partition: tuple[str, ...], table: pa.Table, run_id: str = "local") -> int:
        """Write ``table`` as a new version and make it the latest; returns the version."""
        with self.writer(asset, partition, table.schema, run_id) as out:
            out.write(table)
        assert out.version is not None
        return out.version

    @contextmanager
    def writer(
        self, asset: str, partition: tuple[str, ...], schema: pa.Schema, run_id: str = "local"
    ) -> Iterator[TableWriter]:
        """A new version written batch by batch; it is committed, as the latest, only when the block succeeds.

        A block that raises (or a process killed in it) commits nothing: the previous version stays the
        latest. ``run_id`` is recorded as the commit's message.
        """
        url = self.url(asset, partition)
        out = TableWriter(url, schema, self.storage_options, self._open(url) is None, run_id)
        yield out
        committed = out.commit()
        self._cleanup(committed)

    def apply(
        self,
        asset: str,
        partition: tuple[str, ...],
        schema: pa.Schema,
        rows: Rows,
        key: str,
        delete_where: str | None = None,
    ) -> int:
        """Merge ``rows`` into the latest version on ``key`` as ONE new version; returns it.

        Rows whose key is in the table replace theirs, others are added; with ``delete_where`` (an SQL
        filter, e.g. ``doc_id IN ('a.md')``) the table's rows that match it and whose key is not among
        ``rows`` are removed in the same commit. Creates the dataset when there is none.
        """
        url = self.url(asset, partition)
        found = self._open(url)
        source = reader(rows, schema)
        with reaching(url, TABLES):
            if found is None:
                found = lance.write_dataset(
                    source, url, schema=schema, mode="create", storage_options=self.storage_options
                )
            else:
                merge = found.merge_insert(key).when_matched_update_all().when_not_matched_insert_all()
                if delete_where is not None:
                    merge = merge.when_not_matched_by_source_delete(delete_where)
                merge.execute(source)  # updates ``found`` to the new version
        self._cleanup(found)
        return int(found.version)

    def delete(self, asset: str, partition: tuple[str, ...], where: str) -> int:
        """Remove the rows matching ``where`` (an SQL filter) as one new version; returns the latest version."""
        found = self._open(self.url(asset, partition))
        if found is None:
            raise NotMaterializedError(f"{self._name(asset, partition)} is not materialized: nothing to delete")
        with reaching(found.uri, TABLES):
            found.delete(where)
        self._cleanup(found)
        return int(found.version)

    def dataset(self, asset: str, partition: tuple[str, ...], version: int | None = None) -> lance.LanceDataset | None:
        """The latest materialization (or version ``version``) as a dataset to read in batches, or None."""
        url = self.url(asset, partition)
        if version is None:
            return self._open(url)
        latest = self._open(url)
        if latest is None:
            return None
        kept = [v for v, _ in self._versions(latest)]
        if version not in kept:
            raise NotMaterializedError(
                f"{self._name(asset, partition)} has no version {version}; it keeps versions {kept} "
                f"(older versions than EMBEDOPS_TABLE_RETENTION_DAYS, now {self._days()} days, are removed)"
            )
        return latest.checkout_version(version)

    def latest(self, asset: str, partition: tuple[str, ...]) -> tuple[str, int] | None:
        """``(url, version)`` of the latest materialization, or None when there is none yet."""
        url = self.url(asset, partition)
        found = self._open(url)
        return None if found is None else (url, int(found.version))

    def versions(self, asset: str, partition: tuple[str, ...]) -> list[tuple[int, datetime]]:
        """The versions still kept, oldest first, with the time each was committed (UTC)."""
        found = self._open(self.url(asset, partition))
        return [] if found is None else self._versions(found)

    def read(self, asset: str, partition: tuple[str, ...], version: int | None = None) -> pa.Table | None:
        """The latest materialization (or version ``version``), or None when there is none yet."""
        found = self.dataset(asset, partition, version)
        return None if found is None else found.to_table()

    def read_columns(self, asset: str, partition: tuple[str, ...], names: Sequence[str]) -> pa.Table | None:
        """Only these columns of the latest materialization (ids, hashes), or None when there is none."""
        found = self.dataset(asset, partition)
        return None if found is None else columns(found, names)

    def count_rows(self, asset: str, partition: tuple[str, ...]) -> int | None:
        """Rows of the latest materialization, from its metadata, or None when there is none."""
        found = self.dataset(asset, partition)
        return None if found is None else count(found)

    def partitions(self, asset: str) -> list[str]:
        """The partitions of a one-key asset (``source_documents``: tenants) that have a dataset."""
        import lancedb

        folder = join(self.root, "tables", asset)
        if not is_remote(self.root) and not os.path.isdir(folder):
            return []
        with reaching(folder, TABLES):
            names = lancedb.connect(folder, storage_options=self.storage_options).list_tables().tables
        return sorted(n for n in names if self._open(self.url(asset, (n,))) is not None)

    def _open(self, url: str) -> lance.LanceDataset | None:
        return open_dataset(url, self.storage_options, TABLES)

    def _versions(self, dataset: lance.LanceDataset) -> list[tuple[int, datetime]]:
        found = []
        for v in dataset.versions():
            stamp = v["timestamp"]
            assert isinstance(stamp, datetime)  # LanceDataset.versions converts Lance's nanoseconds
            found.append((int(v["version"]), stamp.astimezone(UTC)))  # a naive local time
        return found

    def _cleanup(self, dataset: lance.LanceDataset) -> None:
        """Remove the versions committed more than ``retention`` ago and their files; the latest stays."""
        with reaching(dataset.uri, TABLES):
            dataset.cleanup_old_versions(older_than=self.retention, error_if_tagged_old_versions=False)

    def _days(self) -> str:
        return f"{self.retention / timedelta(days=1):g}"

    @staticmethod
    def _name(asset: str, partition: tuple[str, ...]) -> str:
        return f"table {asset} of partition {'/'.join(partition)}"


def reader(
    rows: Rows, schema: pa.Schema, only: Sequence[str] | None = None, key: str = "chunk_id"
) -> pa.RecordBatchReader:
    """``rows`` (only those whose ``key`` is in ``only``, if given) cast to ``schema``, read batch by batch."""

    def parts() -> Iterator[pa.RecordBatch]:
        for part in batches(rows, schema.names):
            if only is not None:
                part = where_in(part, key, only)
            if part.num_rows:
                yield from part.cast(schema).to_batches()

    return pa.RecordBatchReader.from_batches(schema, parts())
