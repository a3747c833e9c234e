"""The embedded vector store: LanceDB in the data plane (a folder, or an object store such as S3).

Layout: one LanceDB table per (tenant, space), named ``t_<tenant>__s_<space_id>``. A table per
tenant keeps tenants physically apart (a search cannot reach another tenant's rows, whatever the
query), lets tenant partitions sync concurrently without contending for one table's versions, and
makes a tenant's removal a table drop. The space identity is written into the table's schema
metadata; a table, a row or a query of another space is refused.

A sync is at most one LanceDB commit, so readers see the old version or the new one, never a mix,
and a killed sync leaves the previous version in place. It streams: the rows may be a Parquet
dataset read batch by batch, and only key columns (chunk id and the change columns) of the source
and of the table are held at once. From them the sync plans which chunk ids are new or changed and
which are gone, then commits once: a ``merge_insert`` of just the new and changed rows that also
deletes the gone ids, a ``delete`` when only ids are gone, nothing when nothing changed, or a
streaming ``create_table`` for a tenant's first sync. Measured at 100k rows of 384-d vectors, a
``merge_insert`` of the whole source joins in memory (~770 MB); the plan holds ~90 MB. Deleting
gone ids inside the merge still makes Lance scan the whole table (~+200 MB), so the merge asks for
it only when ids are gone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from embedops.core.aliases import AliasBook
from embedops.core.dataplane import is_remote, reaching
from embedops.core.stores.base import Hit, SyncResult, index_schema
from embedops.core.stores.contract import check_query_space, check_tenant, checked_keys
from embedops.core.tables import BATCH_ROWS, Rows, batches, in_filter, reader, where_in
from embedops.errors import NotMaterializedError, SpaceMismatchError

if TYPE_CHECKING:
    import lancedb

_META_KEY = b"embedops.space"
# Tables this large get an approximate (HNSW) index; measured at 100k rows of 384 dimensions: 13.8 ms per
# query at recall@10 0.98 against 44 ms for a full scan (docs/benchmarks.md, P4).
ANN_MIN_ROWS = 10_000
# Versions of a table kept for time travel after a sync's upkeep (LanceDB's own default for optimize()).
_VERSIONS_KEPT = timedelta(days=7)
# A sync adds a fragment (a file); past this many the small ones are compacted into fragments of up to
# _COMPACTED_ROWS rows. A larger fragment (a first sync writes up to a million rows in one) is left as it is.
_FRAGMENTS_BEFORE_COMPACTION = 32
_COMPACTED_ROWS = 100_000
# The index is built again once rows outside its first build (or deleted from it) pass this share of the table.
REBUILD_SHARE = 0.1
# A matched row is rewritten only when one of these differs; otherwise the sync leaves it alone.
_CHANGE_COLUMNS = ("text_hash", "config_hash", "source_checksum", "seq", "stale")
_KEY_COLUMNS = ("chunk_id", *_CHANGE_COLUMNS)


def ivf_partitions(rows: int) -> int:
    """IVF partitions of a new index of ``rows`` rows: about the square root (Lance's own IVF default).

    LanceDB's HNSW default is one partition up to about a million rows: one graph of the whole table, built
    and held at once. Measured on 1M 64-dimension vectors: 1,000 partitions build in 75 s with a peak of
    +531 MiB and recall@10 0.955; at 100k rows, 316 partitions build in 15 s, +228 MiB, recall@10 0.974,
    where one partition took 49 s, +298 MiB, recall@10 0.961 (docs/benchmarks.md, "The first index build").
    """
    return max(1, math.isqrt(rows))


class LanceStore:
    """VectorStore on a LanceDB database: a folder or an object-store prefix."""

    def __init__(
        self,
        root: str | Path,
        ann_min_rows: int = ANN_MIN_ROWS,
        storage_options: dict[str, str] | None = None,
        *,
        aliases: AliasBook | str | Engine,
    ) -> None:
        """``root``: a folder or an object-store URL (``s3://bucket/prefix/lancedb``); ``aliases``: the alias
        book, or the control database (URL or engine) that keeps it."""
        self.root = str(root)
        self.ann_min_rows = ann_min_rows
        if not is_remote(self.root):
            Path(self.root).mkdir(parents=True, exist_ok=True)
        self._storage_options = dict(storage_options or {})
        self._aliases = aliases if isinstance(aliases, AliasBook) else AliasBook(aliases)

    @cached_property
    def _db(self) -> lancedb.DBConnection:
        """The LanceDB connection, made on first use: a caller that only reads aliases or versions of
        tables never imports lancedb (over a second)."""
        import lancedb

        with reaching(self.root, "the LanceDB index"):
            db = lancedb.connect(
                self.root, read_consistency_interval=timedelta(0), storage_options=self._storage_options
            )
            db.list_tables()  # reach the store now: one that does not answer fails here, in one line
        return db

    @staticmethod
    def table_name(tenant: str, space_id: str) -> str:
        """The tenant's table in the space; every read and write names its table here, so the tenant is checked."""
        return f"t_{check_tenant(tenant)}__s_{space_id}"

    def _table_names(self) -> list[str]:
        return list(self._db.list_tables().tables)

    def _open(self, tenant: str, space_id: str) -> lancedb.table.Table | None:
        name = self.table_name(tenant, space_id)
        if name not in self._table_names():
            return None
        table = self._db.open_table(name)
        meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
        if meta.get("space_id") != space_id:
            raise SpaceMismatchError(
                f"LanceDB table {name} records space {meta.get('space_id')!r}, not {space_id!r}; "
                "it was written by another space: drop it or ingest into a fresh EMBEDOPS_HOME"
            )
        if "stale" not in table.schema.names:  # a table written before rows could be stale
            table.add_columns({"stale": "false"})
        return table

    def _create(self, tenant: str, space_id: str, space_name: str, rows: Rows) -> lancedb.table.Table:
        """The tenant's table, written from ``rows`` batch by batch in one commit."""
        dim = rows.schema.field("vector").type.list_size
        meta = json.dumps({"space_id": space_id, "space_name": space_name, "dimension": dim})
        schema = index_schema(dim).with_metadata({_META_KEY: meta.encode()})
        return self._db.create_table(self.table_name(tenant, space_id), data=reader(rows, schema), schema=schema)

    def sync(
        self, tenant: str, space_id: str, space_name: str, rows: Rows, documents: Iterable[str] | None = None
    ) -> SyncResult:
        """Make the tenant's table hold exactly ``rows``, in at most one commit (see the module docstring).

        With ``documents`` only those documents' rows are read, of ``rows`` and of the table, and compared
        (``VectorStore.sync``). The rows are checked against the store contract (``contract.checked_keys``)
        before the commit.
        """
        table = self._open(tenant, space_id)
        if table is not None and documents is not None:
            return self._sync_documents(table, tenant, space_id, space_name, rows, sorted(set(documents)))
        if table is None:  # every row is new: checked, but no key of theirs is kept to compare
            checked_keys(rows, tenant, space_id, space_name, ())
            table = self._create(tenant, space_id, space_name, rows)
            version = table.version
            written = table.count_rows()
            self._maintain_index(table, changed=True)
            return SyncResult(upserted=written, deleted=0, rows=written, version=version)
        keys = checked_keys(rows, tenant, space_id, space_name, _KEY_COLUMNS)
        self._check_dimension(table, rows)
        key_schema = pa.schema([table.schema.field(name) for name in _KEY_COLUMNS])
        source = keys.cast(key_schema)
        del keys
        target = table.search().select(list(_KEY_COLUMNS)).limit(None).to_arrow().select(_KEY_COLUMNS)
        changed, removed = _plan(source, target)
        everything = len(changed) == source.num_rows
        del source, target
        before = table.count_rows()
        upserted = deleted = 0
        if changed:
            # The source holds only new and changed rows, so a matched row is always rewritten (an update
            # condition would make Lance read the target's change columns: +35 MB at 100k rows).
            merge = table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all()
            if removed:
                merge = merge.when_not_matched_by_source_delete(_in_list(removed))
            result = merge.execute(reader(rows, table.schema, only=None if everything else changed))
            upserted = result.num_inserted_rows + result.num_updated_rows
            deleted = result.num_deleted_rows
        elif removed:
            table.delete("true" if len(removed) == before else _in_list(removed))
            deleted = before - table.count_rows()
        version = table.version
        self._maintain_index(table, changed=bool(upserted or deleted))
        return SyncResult(upserted=upserted, deleted=deleted, rows=table.count_rows(), version=version)

    def _sync_documents(
        self, table: lancedb.table.Table, tenant: str, space_id: str, space_name: str, rows: Rows, documents: list[str]
    ) -> SyncResult:
        """The rows of ``documents`` made exactly theirs in ``rows``, in at most one commit; nothing else read."""
        self._check_dimension(table, rows)
        where = in_filter("doc_id", documents)
        mine = _rows_of(rows, documents)
        keys = checked_keys(mine, tenant, space_id, space_name, _KEY_COLUMNS)
        key_schema = pa.schema([table.schema.field(name) for name in _KEY_COLUMNS])
        target = table.search().where(where).select(list(_KEY_COLUMNS)).limit(None).to_arrow().select(_KEY_COLUMNS)
        changed, removed = _plan(keys.cast(key_schema), target)
        upserted = deleted = 0
        if changed:
            merge = table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all()
            if removed:
                merge = merge.when_not_matched_by_source_delete(_in_list(removed))
            result = merge.execute(reader(mine, table.schema, only=changed))
            upserted = result.num_inserted_rows + result.num_updated_rows
            deleted = result.num_deleted_rows
        elif removed:
            before = table.count_rows()
            table.delete(_in_list(removed))
            deleted = before - table.count_rows()
        version = table.version
        self._maintain_index(table, changed=bool(upserted or deleted))
        return SyncResult(upserted=upserted, deleted=deleted, rows=table.count_rows(), version=version)

    def _maintain_index(self, table: lancedb.table.Table, changed: bool) -> None:
        """Give a table of ``ann_min_rows`` or more an HNSW index; fold later changes into it, and build it
        again once the table has outgrown it (``_outgrown``).

        Below the threshold a search scans the table (exact, and fast enough). Index builds and
        optimizations are commits of their own after the data commit: they change no row.
        """
        dataset = table.to_lance()
        parts = _vector_index_parts(dataset)
        if parts and changed and not _outgrown(dataset, parts):
            _fold_in(dataset, parts)
        elif (parts and changed) or (not parts and dataset.count_rows() >= self.ann_min_rows):
            from lancedb.index import HnswSq

            # a first build, or one that replaces every part of an index the table has outgrown
            rows = dataset.count_rows()
            table.create_index("vector", config=HnswSq(distance_type="cosine", num_partitions=ivf_partitions(rows)))

    def _check_dimension(self, table: lancedb.table.Table, rows: Rows) -> None:
        want = table.schema.field("vector").type.list_size
        got = rows.schema.field("vector").type.list_size
        if want != got:
            raise SpaceMismatchError(
                f"vectors of dimension {got} cannot be written to {table.name} (dimension {want})"
            )

    def upsert(self, tenant: str, space_id: str, space_name: str, rows: Rows) -> int:
        keys = checked_keys(rows, tenant, space_id, space_name, ["chunk_id"])
        table = self._open(tenant, space_id)
        if table is None:
            return int(self._create(tenant, space_id, space_name, rows).count_rows())
        self._check_dimension(table, rows)
        if keys.num_rows == 0:
            return 0
        result = (
            table.merge_insert("chunk_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(reader(rows, table.schema))
        )
        return int(result.num_inserted_rows + result.num_updated_rows)

    def delete(self, tenant: str, space_id: str, chunk_ids: Sequence[str]) -> int:
        table = self._open(tenant, space_id)
        if table is None or not chunk_ids:
            return 0
        before = table.count_rows()
        table.delete(_in_list(chunk_ids))
        return before - table.count_rows()

    def count(self, tenant: str, space_id: str) -> int:
        table = self._open(tenant, space_id)
        return 0 if table is None else table.count_rows()

    def search(
        self, tenant: str, space_id: str, query: np.ndarray, k: int, query_space_id: str
    ) -> list[Hit]:
        check_query_space(space_id, query_space_id)
        table = self._materialized(tenant, space_id)
        found = (
            table.search(np.asarray(query, dtype=np.float32), vector_column_name="vector")
            .distance_type("cosine")  # type: ignore[attr-defined]
            .limit(k)
            .to_arrow()
        )
        return [_hit(row) for row in found.drop_columns(["vector"]).to_pylist()]

    def export(self, tenant: str, space_id: str, with_vectors: bool = False) -> pa.Table:
        table = self._materialized(tenant, space_id)
        data = table.to_lance().to_table(columns=_export_columns(table, with_vectors))
        return data.sort_by([("doc_id", "ascending"), ("seq", "ascending")])

    def export_batches(
        self, tenant: str, space_id: str, with_vectors: bool = False, size: int = BATCH_ROWS,
        documents: Iterable[str] | None = None,
    ) -> Iterator[pa.Table]:
        table = self._materialized(tenant, space_id)
        where = None if documents is None else in_filter("doc_id", documents)
        found = table.to_lance().to_batches(
            columns=_export_columns(table, with_vectors), batch_size=size, filter=where
        )
        return (pa.Table.from_batches([batch]) for batch in found if batch.num_rows)

    def _materialized(self, tenant: str, space_id: str) -> lancedb.table.Table:
        table = self._open(tenant, space_id)
        if table is None:
            raise NotMaterializedError(
                f"tenant {tenant!r} has no index in space {space_id!r}; run `embedops ingest --tenant {tenant}`"
            )
        return table

    def tenants(self, space_id: str) -> list[str]:
        suffix = f"__s_{space_id}"
        return sorted(n[2 : -len(suffix)] for n in self._table_names() if n.endswith(suffix))

    def version(self, tenant: str, space_id: str) -> int | None:
        table = self._open(tenant, space_id)
        return None if table is None else table.version

    def get_alias(self, alias: str) -> str | None:
        return self._aliases.get(alias)

    def set_alias(self, alias: str, space_id: str) -> None:
        if not self.tenants(space_id):
            raise NotMaterializedError(
                f"alias {alias!r} cannot point at space {space_id!r}: no tenant has an index in it yet"
            )
        self._aliases.set(alias, space_id)  # one row in the control database: readers see old or new


def _hit(row: dict) -> Hit:
    distance = float(row.pop("_distance"))
    text = row.pop("text")
    return Hit(
        chunk_id=row["chunk_id"], doc_id=row["doc_id"], text=text, score=1.0 - distance, provenance=row
    )


def _plan(source: pa.Table, target: pa.Table) -> tuple[list[str], list[str]]:
    """(new or changed chunk ids, removed chunk ids), from the key columns of the source and the table.

    A chunk id is changed when any of ``_CHANGE_COLUMNS`` differs (a null differs from a value). Each
    source row is looked up by position in the target (a hash of the target's ids), not joined, which
    holds about one more copy of the key columns (a join held five at 100k rows).
    """
    position = pc.index_in(source["chunk_id"], value_set=target["chunk_id"])
    matched = target.take(position)
    differs = pc.is_null(position)
    for name in _CHANGE_COLUMNS:
        mine, theirs = source[name], matched[name]
        one_null = pc.not_equal(pc.is_null(mine), pc.is_null(theirs))
        differs = pc.or_(differs, pc.coalesce(pc.not_equal(mine, theirs), one_null))
    changed = source["chunk_id"].filter(differs).to_pylist()
    removed = target["chunk_id"].filter(pc.invert(pc.is_in(target["chunk_id"], value_set=source["chunk_id"])))
    return sorted(changed), sorted(removed.to_pylist())


def _rows_of(rows: Rows, documents: list[str]) -> pa.Table:
    """The rows of these documents: a Lance dataset filters as it reads; anything else is read in batches."""
    if isinstance(rows, lance.LanceDataset):
        return rows.to_table(filter=in_filter("doc_id", documents))
    parts = [where_in(part, "doc_id", documents) for part in batches(rows)]
    return pa.concat_tables(parts) if parts else rows.schema.empty_table()


def _vector_index_parts(dataset: lance.LanceDataset) -> list[set[int]]:
    """The fragments each part of the vector column's index covers (its first build, then the deltas since);
    empty when the column has no index."""
    return [
        set(segment.fragment_ids)
        for index in dataset.describe_indices()
        if "vector" in index.field_names
        for segment in index.segments
    ]


def _outgrown(dataset: lance.LanceDataset, parts: list[set[int]]) -> bool:
    """Whether the index's first build no longer stands for the table: more than ``REBUILD_SHARE`` of the live
    rows lie outside it (rows synced since, in the small second part, or not yet indexed), or more than that
    share of the rows it indexed are deleted. Its partitions were sized for the rows it was built on, and
    every query searches the second part as well, so past that point it is built again, once per tenth of
    the table changed."""
    base = max(parts, key=len)
    live = inside = deleted = 0
    for fragment in dataset.get_fragments():
        meta = fragment.metadata
        live += meta.num_rows
        if fragment.fragment_id in base:
            inside += meta.num_rows
            deleted += meta.num_deletions
    return live - inside > REBUILD_SHARE * live or deleted > REBUILD_SHARE * (inside + deleted)


def _fold_in(dataset: lance.LanceDataset, parts: list[set[int]]) -> None:
    """Index a synced table's new rows, compact its small files now and then; drop versions older than a week.

    LanceDB's ``optimize()`` does all three, but it merges every part of the index into one, which for an index
    of many partitions rebuilds them all (1M rows: 824 s and 2.6 GB for a 0.1% edit), and compacts every
    fragment under a million rows, so a first sync's whole fragment was rewritten for a few new rows (1M rows:
    98 s, 3.4 GB). Here the first build stays as it is and the rows synced since go into one small second
    part, merged with each sync's new rows (0.1 to 0.2 s at 1M rows); each sync adds a fragment, and once
    there are more than ``_FRAGMENTS_BEFORE_COMPACTION`` the ones under ``_COMPACTED_ROWS`` rows are merged.
    """
    if len(dataset.get_fragments()) > _FRAGMENTS_BEFORE_COMPACTION:
        dataset.optimize.compact_files(target_rows_per_fragment=_COMPACTED_ROWS)
    dataset.optimize.optimize_indices(num_indices_to_merge=1 if len(parts) > 1 else 0)
    dataset.cleanup_old_versions(older_than=_VERSIONS_KEPT, error_if_tagged_old_versions=False)


def _in_list(chunk_ids: Sequence[str]) -> str:
    """A Lance SQL filter matching these chunk ids (each quoted as a SQL string literal)."""
    quoted = ", ".join("'" + c.replace("'", "''") + "'" for c in chunk_ids)
    return f"chunk_id IN ({quoted})"


def _export_columns(table: lancedb.table.Table, with_vectors: bool) -> list[str]:
    return [name for name in table.schema.names if with_vectors or name != "vector"]
