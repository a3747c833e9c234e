"""The VectorStore interface every index backend implements, and the row schema it stores.

A store keeps one collection per (space), holding vectors of exactly that space, with the
tenant kept apart (a table per tenant in LanceDB, a Weaviate tenant in Weaviate). Every row carries
the provenance of DESIGN.md invariant 2. Serving names (aliases) point at one space.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from embedops.core.tables import Rows
from embedops.errors import NotMaterializedError

if TYPE_CHECKING:
    from embedops.core.spaces import SpaceSpec

# Provenance and payload columns, in order; ``vector`` is added with the space's dimension.
INDEX_SCHEMA_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("chunk_id", pa.string()),
    ("tenant", pa.string()),
    ("doc_id", pa.string()),
    ("seq", pa.int32()),
    ("text", pa.string()),
    ("text_hash", pa.string()),
    ("source_checksum", pa.string()),
    ("space_id", pa.string()),
    ("space_name", pa.string()),
    ("model", pa.string()),
    ("config_hash", pa.string()),
    ("embedded_at", pa.timestamp("us", tz="UTC")),
    # true while a row is the last good vector of a document the model failed on; it is retried next run
    ("stale", pa.bool_()),
)
PROVENANCE_FIELDS = tuple(
    name for name, _ in INDEX_SCHEMA_FIELDS if name not in ("seq", "text")
)


def index_schema(dimension: int) -> pa.Schema:
    """Arrow schema of an index row for a space of ``dimension``."""
    fields = [pa.field(name, dtype, nullable=False) for name, dtype in INDEX_SCHEMA_FIELDS]
    fields.append(pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False))
    return pa.schema(fields)


@dataclass(frozen=True)
class Hit:
    """One search result: the row's payload and provenance, and its cosine similarity to the query."""

    chunk_id: str
    doc_id: str
    text: str
    score: float
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncResult:
    """What one sync did to a tenant's collection: rows written, rows deleted, rows after."""

    upserted: int
    deleted: int
    rows: int
    version: int | None = None


@runtime_checkable
class VectorStore(Protocol):
    """The narrow interface between the pipeline and a vector index.

    ``space_id``/``space_name``/``dimension`` identify the collection. Every implementation enforces the
    store contract itself (``embedops.core.stores.contract``), whatever its callers checked: it refuses an
    invalid tenant name, rows of another tenant, a chunk id twice in one write, and rows or queries of
    another space (SpaceMismatchError naming both), before it writes anything.
    """

    def sync(
        self, tenant: str, space_id: str, space_name: str, rows: Rows, documents: Iterable[str] | None = None
    ) -> SyncResult:
        """Make the tenant's collection hold exactly ``rows`` (upsert changed, delete the rest).

        ``rows`` are index rows (``index_schema``): an in-memory table, or a ``pyarrow.dataset``
        (a materialization's Parquet file) that the store reads in batches, holding only key
        columns (chunk id, change columns) of every row at once. Readers see either the old state
        or the new one, never a mix.

        ``documents``, when given, is the caller's word that the collection already holds ``rows`` for every
        other document (it synced them before and nothing else wrote since): a store may then read and compare
        only these documents' rows. A store that does not use it syncs everything, with the same result.
        """
        ...

    def upsert(self, tenant: str, space_id: str, space_name: str, rows: Rows) -> int: ...

    def delete(self, tenant: str, space_id: str, chunk_ids: Sequence[str]) -> int: ...

    def count(self, tenant: str, space_id: str) -> int: ...

    def search(
        self, tenant: str, space_id: str, query: np.ndarray, k: int, query_space_id: str
    ) -> list[Hit]:
        """Top-k rows of the tenant by cosine similarity; refuses a query of another space."""
        ...

    def export(self, tenant: str, space_id: str, with_vectors: bool = False) -> pa.Table:
        """Every row of the tenant's collection (vectors only when asked)."""
        ...

    def export_batches(
        self, tenant: str, space_id: str, with_vectors: bool = False, size: int = 2048,
        documents: Iterable[str] | None = None,
    ) -> Iterator[pa.Table]:
        """The same rows as ``export``, ``size`` at a time and in no particular order, for readers that
        must not hold a whole collection (the invariant checks); with ``documents``, only their rows."""
        ...

    def tenants(self, space_id: str) -> list[str]: ...

    def version(self, tenant: str, space_id: str) -> int | None:
        """The version of the tenant's collection, changed by every write to it; None when the store keeps
        none (then a sync always compares the rows)."""
        ...

    def get_alias(self, alias: str) -> str | None:
        """The space_id an alias points at, or None."""
        ...

    def set_alias(self, alias: str, space_id: str) -> None:
        """Create or atomically repoint an alias."""
        ...


def empty_index(space: SpaceSpec, with_vectors: bool = False) -> pa.Table:
    """No index rows, with the columns an export of the space has."""
    table = index_schema(space.dimension).empty_table()
    return table if with_vectors else table.drop_columns(["vector"])


def index_rows(store: VectorStore, tenant: str, space: SpaceSpec, with_vectors: bool = False) -> pa.Table:
    """Every row of the tenant's collection in the space; an empty table when there is none."""
    try:
        return store.export(tenant, space.space_id, with_vectors=with_vectors)
    except NotMaterializedError:
        return empty_index(space, with_vectors)


def index_batches(
    store: VectorStore, tenant: str, space: SpaceSpec, with_vectors: bool = False,
    documents: Iterable[str] | None = None,
) -> Iterator[pa.Table]:
    """The tenant's rows in the space (only those of ``documents``, when given) a batch at a time
    (``export_batches``), for readers that must not hold the whole collection; nothing when there is no index."""
    try:
        if documents is None:
            yield from store.export_batches(tenant, space.space_id, with_vectors=with_vectors)
        else:
            yield from store.export_batches(tenant, space.space_id, with_vectors=with_vectors, documents=documents)
    except NotMaterializedError:
        return
