"""The production vector store: Weaviate (server >= 1.32) through weaviate-client v4.

Layout: one collection per space, named ``Chunks_<space_id>``, with multi-tenancy on (automatic
tenant creation off): each embedops tenant is a Weaviate tenant of that collection, created on the
first write, always on the concrete collection (Weaviate resolves aliases for object operations
only, never for tenant management). Vectors are supplied by embedops (named vector ``default``,
no vectorizer, cosine distance); every provenance field is a property and the space identity
(space_id, space_name, dimension) is recorded as JSON in the collection description, so a
collection of another space is refused. An object's UUID is uuid5 of its chunk id.

Serving names are Weaviate collection aliases: embedops alias ``docs`` is the Weaviate alias
``Docs`` (first letter capitalised, as Weaviate requires of collection and alias names) pointing
at ``Chunks_<space_id>``; repointing is one ``PUT /v1/aliases/Docs``, atomic on the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from weaviate.classes.config import Configure, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.collections import Collection
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateBaseError, WeaviateInsertManyAllFailedError

from embedops.core.stores.base import Hit, SyncResult, index_schema
from embedops.core.stores.contract import check_query_space, check_tenant, checked_keys
from embedops.core.stores.weaviate.connection import WeaviateConnection
from embedops.core.stores.weaviate.schema import (
    CHANGE_COLUMNS,
    COLLECTION_PREFIX,
    PAYLOAD_COLUMNS,
    PROPERTIES,
    VECTOR_NAME,
    CollectionSpace,
    alias_name,
    change_keys,
    chunk_uuid,
    collection_name,
    from_properties,
    recorded_space,
    space_description,
    to_properties,
    vector_dimension,
)
from embedops.core.tables import BATCH_ROWS, Rows, batches, where_in
from embedops.errors import NotMaterializedError, SpaceMismatchError, VectorStoreError

UPSERT_BATCH = 200
DELETE_BATCH = 1000
_ITERATOR_PAGE = 1000
# What sync and upsert hold of the source rows at once (the rest is read batch by batch).
_KEY_COLUMNS = ("chunk_id", *CHANGE_COLUMNS)


class WeaviateStore(WeaviateConnection):
    """VectorStore on a Weaviate server (>= 1.32, for collection aliases).

    Give it a connected ``weaviate.WeaviateClient`` (the store does not close it), or connection
    parameters (the store connects and ``close()`` disconnects); ``WeaviateStore.connect(url)``
    builds the parameters from a URL. The server is checked on construction: reachable, the API
    key accepted, version >= 1.32.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Takes the arguments of ``WeaviateConnection``."""
        # What this store has verified on the server: collections by space id, (collection, tenant) pairs.
        self._spaces: dict[str, CollectionSpace] = {}
        self._known_tenants: set[tuple[str, str]] = set()
        super().__init__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"WeaviateStore(url={self.url!r})"

    # -- writes ---------------------------------------------------------------------------------

    def sync(
        self, tenant: str, space_id: str, space_name: str, rows: Rows, documents: Iterable[str] | None = None
    ) -> SyncResult:
        """Make the tenant's objects in the space's collection exactly ``rows``.

        Weaviate has no multi-object transactions, so this is not atomic: new and changed rows are
        upserted first, then rows no longer in the source are deleted. A reader during the sync sees
        every row of the old state or the new one (never fewer rows than either), possibly both for
        a moment; a failed sync deletes nothing and re-running it converges. Serving atomicity comes
        from the alias: a new space is filled before its alias is repointed.

        ``rows`` may be a Parquet dataset: the plan is made from the key columns (chunk id and
        ``CHANGE_COLUMNS``) and the new and changed rows are then read and written batch by batch.
        ``documents`` is not used: every object's keys are compared.
        """
        keys = self._keys(rows, tenant, space_id, space_name)
        space = self._space_for_write(space_id, space_name, rows)
        if space is None:  # no collection yet and nothing to write
            return SyncResult(upserted=0, deleted=0, rows=0)
        self._ensure_tenant(space, tenant)
        existing = self._existing(space, tenant)
        chunk_ids = keys.column("chunk_id").to_pylist()
        wanted = {chunk_uuid(c): (c, key) for c, key in zip(chunk_ids, change_keys(keys), strict=True)}
        del keys, chunk_ids
        changed = [c for key, (c, values) in wanted.items() if key not in existing or existing[key][1:] != values]
        removed = {key: existing[key][0] for key in existing if key not in wanted}
        upserted = 0
        if changed:
            parts = batches(rows)
            if len(changed) < len(wanted):
                parts = (where_in(part, "chunk_id", changed) for part in parts)
            upserted = self._write(space, tenant, parts)
        deleted = self._delete(space, tenant, removed)
        return SyncResult(upserted=upserted, deleted=deleted, rows=self._count(space, tenant))

    def upsert(self, tenant: str, space_id: str, space_name: str, rows: Rows) -> int:
        keys = self._keys(rows, tenant, space_id, space_name)
        space = self._space_for_write(space_id, space_name, rows)
        if space is None or keys.num_rows == 0:
            return 0
        self._ensure_tenant(space, tenant)
        return self._write(space, tenant, batches(rows))

    def delete(self, tenant: str, space_id: str, chunk_ids: Sequence[str]) -> int:
        tenant = check_tenant(tenant)
        space = self._open(space_id)
        if space is None or not chunk_ids or not self._has_tenant(space, tenant):
            return 0
        return self._delete(space, tenant, {chunk_uuid(c): c for c in chunk_ids})

    # -- reads ----------------------------------------------------------------------------------

    def count(self, tenant: str, space_id: str) -> int:
        tenant = check_tenant(tenant)
        space = self._open(space_id)
        if space is None or not self._has_tenant(space, tenant):
            return 0
        return self._count(space, tenant)

    def search(self, tenant: str, space_id: str, query: np.ndarray, k: int, query_space_id: str) -> list[Hit]:
        """Top-k objects of the tenant by cosine similarity (1 - Weaviate's cosine distance)."""
        check_query_space(space_id, query_space_id)
        tenant = check_tenant(tenant)
        space = self._readable(tenant, space_id)
        if k <= 0:
            return []
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape[0] != space.dimension:
            raise SpaceMismatchError(
                f"a query vector of dimension {vector.shape[0]} cannot search {space.collection} "
                f"(space {space.space_name!r} ({space.space_id}), dimension {space.dimension})"
            )
        with self._errors(f"search tenant {tenant!r} of {space.collection}"):
            found = self._tenant_collection(space, tenant).query.near_vector(
                near_vector=vector.tolist(),
                limit=k,
                target_vector=VECTOR_NAME,
                return_metadata=MetadataQuery(distance=True),
                return_properties=list(PAYLOAD_COLUMNS),
            )
        hits = []
        for obj in found.objects:
            props = from_properties(dict(obj.properties))
            text = props.pop("text")
            distance = obj.metadata.distance if obj.metadata.distance is not None else 1.0
            hits.append(
                Hit(
                    chunk_id=props["chunk_id"],
                    doc_id=props["doc_id"],
                    text=text,
                    score=1.0 - float(distance),
                    provenance=props,
                )
            )
        return hits

    def export(self, tenant: str, space_id: str, with_vectors: bool = False) -> pa.Table:
        """Every object of the tenant as index rows, ordered by (doc_id, seq)."""
        tenant = check_tenant(tenant)
        space = self._readable(tenant, space_id)
        parts = list(self._pages(space, tenant, with_vectors, BATCH_ROWS))
        table = pa.concat_tables(parts) if parts else _export_schema(space.dimension, with_vectors).empty_table()
        return table.sort_by([("doc_id", "ascending"), ("seq", "ascending"), ("chunk_id", "ascending")])

    def export_batches(
        self, tenant: str, space_id: str, with_vectors: bool = False, size: int = BATCH_ROWS,
        documents: Iterable[str] | None = None,
    ) -> Iterator[pa.Table]:
        """Every object of the tenant as index rows, ``size`` at a time, in the server's order (with
        ``documents``, only their rows: every page is read and filtered here)."""
        tenant = check_tenant(tenant)
        space = self._readable(tenant, space_id)
        pages = self._pages(space, tenant, with_vectors, size)
        if documents is None:
            return pages
        wanted = sorted(set(documents))
        return (part for page in pages if (part := where_in(page, "doc_id", wanted)).num_rows)

    def _pages(self, space: Any, tenant: str, with_vectors: bool, size: int) -> Iterator[pa.Table]:
        schema = _export_schema(space.dimension, with_vectors)
        columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        held = 0
        with self._errors(f"export tenant {tenant!r} of {space.collection}"):
            for obj in self._tenant_collection(space, tenant).iterator(
                include_vector=with_vectors,
                return_properties=list(PAYLOAD_COLUMNS),
                cache_size=_ITERATOR_PAGE,
            ):
                props = from_properties(dict(obj.properties))
                for name in PAYLOAD_COLUMNS:
                    columns[name].append(props.get(name))
                if with_vectors:
                    columns["vector"].append(np.asarray(obj.vector[VECTOR_NAME], dtype=np.float32))
                held += 1
                if held == size:
                    yield pa.table(columns, schema=schema)
                    columns, held = {name: [] for name in schema.names}, 0
        if held:
            yield pa.table(columns, schema=schema)

    def version(self, tenant: str, space_id: str) -> int | None:
        """None: Weaviate numbers no versions of a collection, so every sync compares the rows."""
        return None

    def tenants(self, space_id: str) -> list[str]:
        space = self._open(space_id)
        if space is None:
            return []
        with self._errors(f"list the tenants of {space.collection}"):
            return sorted(self._client.collections.use(space.collection).tenants.get())

    # -- aliases --------------------------------------------------------------------------------

    def get_alias(self, alias: str) -> str | None:
        name = alias_name(alias)
        with self._errors(f"read alias {name}"):
            found = self._client.alias.get(alias_name=name)
        if found is None:
            return None
        if not found.collection.startswith(COLLECTION_PREFIX):
            raise VectorStoreError(
                f"Weaviate alias {name} (embedops alias {alias!r}) points at collection "
                f"{found.collection!r}, which is not an embedops collection ({COLLECTION_PREFIX}<space_id>); "
                "repoint it with `set_alias` or remove it in Weaviate"
            )
        return found.collection[len(COLLECTION_PREFIX) :]

    def set_alias(self, alias: str, space_id: str) -> None:
        """Create the alias, or repoint it in one atomic update; the space's collection must exist."""
        name = alias_name(alias)
        space = self._open(space_id)
        if space is None:
            raise NotMaterializedError(
                f"alias {alias!r} cannot point at space {space_id!r}: Weaviate at {self.url} has no "
                f"collection {collection_name(space_id)} yet, and a Weaviate alias needs an existing "
                "collection; materialize the space's index first"
            )
        with self._errors(f"point alias {name} at {space.collection}"):
            current = self._client.alias.get(alias_name=name)
            if current is None:
                try:
                    self._client.alias.create(alias_name=name, target_collection=space.collection)
                    return
                except UnexpectedStatusCodeError:
                    if self._client.alias.get(alias_name=name) is None:  # not a concurrent create
                        raise
            elif current.collection == space.collection:
                return
            if not self._client.alias.update(alias_name=name, new_target_collection=space.collection):
                raise VectorStoreError(
                    f"Weaviate at {self.url} did not repoint alias {name} to {space.collection} "
                    "(404: the alias or the collection disappeared meanwhile); run set_alias again"
                )

    # -- internals ------------------------------------------------------------------------------

    def _keys(self, rows: Rows, tenant: str, space_id: str, space_name: str) -> pa.Table:
        """The key columns of ``rows`` (``_KEY_COLUMNS``), once the rows are checked against the store contract."""
        collection_name(space_id)
        return checked_keys(rows, tenant, space_id, space_name, _KEY_COLUMNS)

    def _space_for_write(self, space_id: str, space_name: str, rows: Rows) -> CollectionSpace | None:
        dimension = vector_dimension(rows)
        space = self._open(space_id)
        if space is None:
            if dimension is None:
                return None
            space = self._create(space_id, space_name, dimension)
        if dimension is not None and dimension != space.dimension:
            raise SpaceMismatchError(
                f"vectors of dimension {dimension} cannot be written to {space.collection}, which holds "
                f"space {space.space_name!r} ({space.space_id}) of dimension {space.dimension}"
            )
        return space

    def _open(self, space_id: str) -> CollectionSpace | None:
        """The verified collection of ``space_id``, or None when Weaviate has none."""
        name = collection_name(space_id)
        if space_id in self._spaces:
            return self._spaces[space_id]
        with self._errors(f"read collection {name}"):
            if not self._client.collections.exists(name):
                return None
            config = self._client.collections.use(name).config.get()
        space = recorded_space(name, config.description)
        if space.space_id != space_id:
            raise SpaceMismatchError(
                f"Weaviate collection {name} records space {space.space_name!r} ({space.space_id}), "
                f"not space {space_id!r}; it was written by another space: drop it or use another server"
            )
        if not config.multi_tenancy_config.enabled:
            raise VectorStoreError(
                f"Weaviate collection {name} has multi-tenancy off, so it cannot keep tenants apart; "
                "it was not created by embedops: drop it"
            )
        self._spaces[space_id] = space
        return space

    def _create(self, space_id: str, space_name: str, dimension: int) -> CollectionSpace:
        name = collection_name(space_id)
        try:
            with self._errors(f"create collection {name}"):
                self._client.collections.create(
                    name=name,
                    description=space_description(space_id, space_name, dimension),
                    properties=PROPERTIES,
                    multi_tenancy_config=Configure.multi_tenancy(
                        enabled=True, auto_tenant_creation=False, auto_tenant_activation=False
                    ),
                    vector_config=Configure.Vectors.self_provided(
                        name=VECTOR_NAME,
                        vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE),
                    ),
                )
        except VectorStoreError:
            space = self._open(space_id)  # created concurrently by another run: use it if it matches
            if space is None:
                raise
            return space
        space = CollectionSpace(name, space_id, space_name, dimension)
        self._spaces[space_id] = space
        return space

    def _has_tenant(self, space: CollectionSpace, tenant: str) -> bool:
        if (space.collection, tenant) in self._known_tenants:
            return True
        with self._errors(f"look up tenant {tenant!r} of {space.collection}"):
            found = bool(self._client.collections.use(space.collection).tenants.exists(tenant))
        if found:
            self._known_tenants.add((space.collection, tenant))
        return found

    def _ensure_tenant(self, space: CollectionSpace, tenant: str) -> None:
        """Create the Weaviate tenant on the concrete collection (never via an alias) if missing."""
        if self._has_tenant(space, tenant):
            return
        tenants = self._client.collections.use(space.collection).tenants
        try:
            with self._errors(f"create tenant {tenant!r} on {space.collection}"):
                tenants.create([Tenant(name=tenant)])
        except VectorStoreError:
            if not self._has_tenant(space, tenant):  # not a concurrent create of the same tenant
                raise
        self._known_tenants.add((space.collection, tenant))

    def _readable(self, tenant: str, space_id: str) -> CollectionSpace:
        space = self._open(space_id)
        if space is None or not self._has_tenant(space, tenant):
            raise NotMaterializedError(
                f"tenant {tenant!r} has no index in space {space_id!r} on Weaviate at {self.url}; "
                f"run `embedops ingest --tenant {tenant}`"
            )
        return space

    def _tenant_collection(self, space: CollectionSpace, tenant: str) -> Collection[Any, Any]:
        return self._client.collections.use(space.collection).with_tenant(tenant)

    def _count(self, space: CollectionSpace, tenant: str) -> int:
        with self._errors(f"count tenant {tenant!r} of {space.collection}"):
            result = self._tenant_collection(space, tenant).aggregate.over_all(total_count=True)
        return int(result.total_count or 0)

    def _existing(self, space: CollectionSpace, tenant: str) -> dict[uuid.UUID, tuple[Any, ...]]:
        """Object UUID -> (chunk_id, *the columns whose change means a rewrite) for every object.

        Keyed by UUID, so an object another writer left without a chunk id is still found (and removed).
        """
        found: dict[uuid.UUID, tuple[Any, ...]] = {}
        with self._errors(f"read the objects of tenant {tenant!r} in {space.collection}"):
            for obj in self._tenant_collection(space, tenant).iterator(
                return_properties=["chunk_id", *CHANGE_COLUMNS], cache_size=_ITERATOR_PAGE
            ):
                props = obj.properties
                found[uuid.UUID(str(obj.uuid))] = tuple(props.get(c) for c in ("chunk_id", *CHANGE_COLUMNS))
        return found

    def _write(self, space: CollectionSpace, tenant: str, parts: Iterable[pa.Table]) -> int:
        """Upsert the rows of ``parts`` in batches; any object Weaviate refuses fails the call, by chunk id."""
        collection = self._tenant_collection(space, tenant)
        failures: list[tuple[str, str]] = []
        written = total = 0
        for rows in _regroup(parts, UPSERT_BATCH):
            batch = rows.select(list(PAYLOAD_COLUMNS)).to_pylist()
            vectors = rows.column("vector").to_pylist()
            total += len(batch)
            objects = [
                DataObject(
                    properties=to_properties(record),
                    uuid=chunk_uuid(record["chunk_id"]),
                    vector={VECTOR_NAME: [float(x) for x in vector]},
                )
                for record, vector in zip(batch, vectors, strict=True)
            ]
            try:
                result = collection.data.insert_many(objects)
            except WeaviateInsertManyAllFailedError as exc:  # every object of the batch refused
                reason = self._scrub(exc.message.split("Here is the set of all errors: ")[-1])
                failures.extend((r["chunk_id"], reason) for r in batch)
                continue
            except WeaviateBaseError as exc:
                action = f"write {len(objects)} objects to tenant {tenant!r} of {space.collection}"
                raise self._translate(exc, action) from None
            failures.extend(
                (batch[index]["chunk_id"], self._scrub(error.message)) for index, error in sorted(result.errors.items())
            )
            written += len(batch) - len(result.errors)
        if failures:
            by_message: dict[str, list[str]] = {}
            for chunk_id, message in failures:
                by_message.setdefault(message, []).append(chunk_id)
            shown = "; ".join(f"{', '.join(ids)}: {message}" for message, ids in by_message.items())
            raise VectorStoreError(
                f"Weaviate at {self.url} refused {len(failures)} of {total} objects for tenant "
                f"{tenant!r} in {space.collection} (chunk ids, then Weaviate's message): {shown}. The other "
                "objects were written (Weaviate has no transactions) and nothing was deleted; fix the rows "
                "and sync again"
            )
        return written

    def _delete(self, space: CollectionSpace, tenant: str, by_uuid: dict[uuid.UUID, Any]) -> int:
        """Delete objects by UUID (values name them in errors: their chunk ids); returns how many went."""
        if not by_uuid:
            return 0
        collection = self._tenant_collection(space, tenant)
        uuids = list(by_uuid)
        deleted = 0
        for start in range(0, len(uuids), DELETE_BATCH):
            batch = uuids[start : start + DELETE_BATCH]
            with self._errors(f"delete {len(batch)} objects of tenant {tenant!r} in {space.collection}"):
                result = collection.data.delete_many(where=Filter.by_id().contains_any(batch), verbose=True)
            deleted += result.successful
            if result.failed:
                failed = [
                    f"{by_uuid.get(uuid.UUID(str(o.uuid))) or o.uuid}: {o.error}"
                    for o in (result.objects or [])
                    if not o.successful
                ]
                raise VectorStoreError(
                    f"Weaviate at {self.url} failed to delete {result.failed} objects of tenant {tenant!r} "
                    f"in {space.collection}: {'; '.join(failed[:10])}; sync again to retry"
                )
        return deleted


def _regroup(parts: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """The rows of ``parts`` ``size`` at a time (fewer for the last), whatever the parts' sizes."""
    pending: list[pa.Table] = []
    held = 0
    for part in parts:
        if not part.num_rows:
            continue
        pending.append(part)
        held += part.num_rows
        while held >= size:
            joined = pa.concat_tables(pending)
            yield joined.slice(0, size)
            pending, held = [joined.slice(size)], held - size
    if held:
        yield pa.concat_tables(pending)


def _export_schema(dimension: int, with_vectors: bool) -> pa.Schema:
    schema = index_schema(dimension)
    return schema if with_vectors else schema.remove(schema.get_field_index("vector"))
