"""Materialized tables: each materialization of an asset partition is a Parquet file kept on disk.

``<root>/<asset>/<partition...>/<stamp>-<run>.parquet``, plus a LATEST file naming the current one,
replaced atomically. The previous materialization plus the embedding cache is what makes the next
one incremental; older files are the audit trail.

The pipeline streams: it reads a materialization as a Parquet dataset, batch by batch (``Rows``
is an in-memory table or such a dataset; ``batches`` and ``columns`` read either), and writes the
next one through a ``TableWriter``, so no step holds a tenant's corpus in memory.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

Rows: TypeAlias = pa.Table | ds.Dataset  # a materialization in memory, or on disk and read in batches
BATCH_ROWS = 2048
# pre-buffering reads ahead in proportion to the file: off, a read holds about one row group at a time
_PARQUET = ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False))


def batches(rows: Rows, columns: Sequence[str] | None = None, size: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The rows ``size`` at a time (fewer for the last), as tables of the given ``columns``."""
    names = list(columns) if columns is not None else None
    if isinstance(rows, pa.Table):
        table = rows.select(names) if names is not None else rows
        for start in range(0, table.num_rows, size):
            yield table.slice(start, size)
        return
    pending: list[pa.RecordBatch] = []
    held = 0
    # file by file, row group by row group: the dataset scanner's read-ahead grows with the file
    parts = (
        batch
        for path in rows.files
        for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=size, columns=names)
    )
    for batch in parts:
        pending.append(batch)
        held += batch.num_rows
        if held >= size:
            yield pa.Table.from_batches(pending).combine_chunks()
            pending, held = [], 0
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


class Sink(Protocol):
    """Where a step writes its rows: a TableWriter (a new materialization) or a Collector."""

    rows: int

    def write(self, table: pa.Table) -> None: ...


class TableWriter:
    """Writes one new materialization batch by batch; ``TableStore.writer`` makes it the latest on success."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._writer = pq.ParquetWriter(path, schema)

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if table.num_rows:
            self._writer.write_table(pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table)
            self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()


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
    def __init__(self, root: str | Path, keep: int = 5) -> None:
        self.root = Path(root)
        self.keep = keep

    def _dir(self, asset: str, *partition: str) -> Path:
        return self.root.joinpath(asset, *partition)

    def write(self, asset: str, partition: tuple[str, ...], table: pa.Table, run_id: str = "local") -> Path:
        """Write a new version and make it the latest; returns its path."""
        with self.writer(asset, partition, table.schema, run_id) as out:
            out.write(table)
        return out.path

    @contextmanager
    def writer(
        self, asset: str, partition: tuple[str, ...], schema: pa.Schema, run_id: str = "local"
    ) -> Iterator[TableWriter]:
        """A new version written batch by batch; it becomes the latest only when the block succeeds.

        The block holds the partition's lock (an flock, which the kernel drops when its process
        dies), so writers of one partition take turns, and whatever a dead writer left (a ``.part``
        file, a version it never made the latest) is deleted before the new version is written.
        """
        folder = self._dir(asset, *partition)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._remove_leftovers(folder)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = folder / f"{stamp}-{run_id[:8]}.parquet"
            out = TableWriter(folder / f".{path.name}.part", schema)
            try:
                yield out
                out.close()
            except BaseException:
                out.close()
                out.path.unlink(missing_ok=True)
                raise
            os.replace(out.path, path)
            out.path = path
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".latest.")
            with os.fdopen(fd, "w") as fh:
                fh.write(path.name)
            os.replace(tmp, folder / "LATEST")
            self._prune(folder)

    def leftovers(self, asset: str, partition: tuple[str, ...]) -> list[Path]:
        """Files a writer killed mid-way left in the partition: ``.part`` files, versions never made latest."""
        return self._leftovers(self._dir(asset, *partition))

    def _leftovers(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        partial = [*folder.glob(".*.part"), *folder.glob(".latest.*")]
        pointer = folder / "LATEST"
        latest = pointer.read_text().strip() if pointer.exists() else ""
        unpublished = [v for v in folder.glob("*.parquet") if v.name > latest]  # names sort by time
        return sorted(partial + unpublished)

    def _remove_leftovers(self, folder: Path) -> None:
        for path in self._leftovers(folder):
            path.unlink(missing_ok=True)

    def dataset(self, asset: str, partition: tuple[str, ...]) -> ds.Dataset | None:
        """The latest materialization as a Parquet dataset to read in batches, or None."""
        path = self.latest_path(asset, partition)
        return None if path is None else ds.dataset(path, format=_PARQUET)

    def latest_path(self, asset: str, partition: tuple[str, ...]) -> Path | None:
        pointer = self._dir(asset, *partition) / "LATEST"
        if not pointer.exists():
            return None
        return pointer.parent / pointer.read_text().strip()

    def read(self, asset: str, partition: tuple[str, ...]) -> pa.Table | None:
        """The latest materialization, or None when there is none yet."""
        path = self.latest_path(asset, partition)
        return None if path is None else pq.read_table(path)

    def read_columns(self, asset: str, partition: tuple[str, ...], names: Sequence[str]) -> pa.Table | None:
        """Only these columns of the latest materialization (ids, hashes), or None when there is none."""
        found = self.dataset(asset, partition)
        return None if found is None else columns(found, names)

    def count_rows(self, asset: str, partition: tuple[str, ...]) -> int | None:
        """Rows of the latest materialization, from its metadata, or None when there is none."""
        found = self.dataset(asset, partition)
        return None if found is None else count(found)

    def _prune(self, folder: Path) -> None:
        versions = sorted(folder.glob("*.parquet"))
        for old in versions[: -self.keep]:
            old.unlink(missing_ok=True)
