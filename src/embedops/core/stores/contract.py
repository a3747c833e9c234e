"""The store contract, enforced by every VectorStore itself rather than trusted to its callers.

A store refuses, with an error naming the fault and the fix and before it writes anything:

(a) a tenant name that is not safe in a path, a filter or a collection name;
(b) rows whose ``tenant`` is not the tenant being written;
(c) two rows with one ``chunk_id`` in one write;
(d) rows, or a query, of another space than the collection's.

``checked_keys`` reads the key columns of the rows batch by batch (a Parquet dataset is never held
whole), checks each batch as it streams and the chunk ids across batches at the end, and returns
the key columns the store plans its write from; a store calls it before its first write.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from embedops.core.stores.base import INDEX_SCHEMA_FIELDS
from embedops.core.tables import Rows, batches
from embedops.core.tenants import validate_namespace
from embedops.errors import RowContractError, SpaceMismatchError

INDEX_COLUMNS = (*(name for name, _ in INDEX_SCHEMA_FIELDS), "vector")
_SHOWN = 10  # ids named in an error at most


def check_tenant(tenant: str) -> str:
    """``tenant`` when it is a valid tenant name (a), else InvalidTenantError naming the rule.

    The reserved namespaces (the golden set's) pass: embedops itself writes them; every entry point a
    customer's tenant comes through refuses them (``validate_tenant``).
    """
    return validate_namespace(tenant)


def check_query_space(space_id: str, query_space_id: str) -> None:
    """Refuse a query embedded in another space than the collection's (d), naming both."""
    if query_space_id != space_id:
        raise SpaceMismatchError(
            f"a query embedded in space {query_space_id!r} cannot search the index of space "
            f"{space_id!r}; embed the query with the index's space"
        )


def checked_keys(rows: Rows, tenant: str, space_id: str, space_name: str, names: Sequence[str]) -> pa.Table:
    """The ``names`` columns of every row, once the rows are checked to keep the contract (a)-(d)."""
    check_tenant(tenant)
    missing = set(INDEX_COLUMNS) - set(rows.schema.names)
    if missing:
        raise RowContractError(
            f"rows for tenant {tenant!r} lack the index columns {sorted(missing)}; "
            "write rows of embedops.core.stores.index_schema"
        )
    read = list(dict.fromkeys(["chunk_id", "tenant", "space_id", *names]))
    parts: list[pa.Table] = []
    ids: list[pa.Array] = []
    for part in batches(rows, read):
        _check_batch(part, tenant, space_id, space_name)
        parts.append(part.select(list(names)))
        ids.extend(part.column("chunk_id").chunks)
    _check_unique(pa.chunked_array(ids, rows.schema.field("chunk_id").type), tenant)
    return pa.concat_tables(parts) if parts else rows.schema.empty_table().select(list(names))


def _check_batch(part: pa.Table, tenant: str, space_id: str, space_name: str) -> None:
    spaces = set(pc.unique(part.column("space_id")).to_pylist()) - {space_id}
    if spaces:
        raise SpaceMismatchError(
            f"rows of space(s) {sorted(spaces, key=str)} cannot be written to the index of space "
            f"{space_name!r} ({space_id}); one collection holds one space"
        )
    tenants = set(pc.unique(part.column("tenant")).to_pylist()) - {tenant}
    if tenants:
        raise RowContractError(
            f"rows of tenant(s) {sorted(tenants, key=str)} cannot be written to tenant {tenant!r}: one write "
            "holds one tenant's rows; write each tenant's rows under its own name"
        )
    if part.column("chunk_id").null_count:
        raise RowContractError(
            f"{part.column('chunk_id').null_count} rows for tenant {tenant!r} have no chunk id; "
            "give every row its chunk id"
        )


def _check_unique(chunk_ids: pa.ChunkedArray, tenant: str) -> None:
    counted = pc.value_counts(chunk_ids).flatten()
    if len(counted[0]) != len(chunk_ids):
        repeated = sorted(counted[0].filter(pc.greater(counted[1], 1)).to_pylist())
        raise RowContractError(
            f"rows for tenant {tenant!r} repeat chunk ids {repeated[:_SHOWN]}"
            f"{f' ({len(repeated)} in all)' if len(repeated) > _SHOWN else ''}: a chunk id names one row; "
            "drop the repeated rows and write again"
        )
