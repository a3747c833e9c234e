"""Counting checks: source documents vs index rows vs the chunk ledger, one space per collection, and
complete provenance on every row (DESIGN.md invariants 1, 2 and 6).

``reconcile_tenant`` is the reconciliation of one tenant in one space as the asset check runs it;
the cutover gate calls the same function, so the gate passes only where the check would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from embedops.core.monitoring import Outcome, first
from embedops.core.sources import SourceRoot, list_source
from embedops.core.spaces import SpaceSpec
from embedops.core.stores.base import PROVENANCE_FIELDS, VectorStore, index_rows
from embedops.core.tables import TableStore


def _column(table: pa.Table | None, name: str) -> list:
    return [] if table is None or table.num_rows == 0 else table.column(name).to_pylist()


def reconcile(
    source_ids: set[str],
    quarantined: set[str],
    index: pa.Table,
    ledger: pa.Table | None,
    embedding_rows: int | None,
    limit: int = 50,
) -> Outcome:
    """Source documents = documents with current vectors and index rows = ledger chunks; anything else by id.

    ``quarantined`` documents were refused for their own content (unreadable, empty, binary): they are
    reported, not missing. A document whose only rows are stale (the model failed on its new text)
    has no current vectors, so it counts as missing.
    """
    doc_ids = _column(index, "doc_id")
    stale = _column(index, "stale") if "stale" in index.column_names else [False] * len(doc_ids)
    stale_docs = {d for d, s in zip(doc_ids, stale, strict=True) if s}
    index_docs = {d for d, s in zip(doc_ids, stale, strict=True) if not s}
    index_chunks = set(_column(index, "chunk_id"))
    ledger_chunks = {
        c for c, d in zip(_column(ledger, "chunk_id"), _column(ledger, "doc_id"), strict=True) if d not in quarantined
    }
    orphans = index_docs - source_ids
    missing = source_ids - index_docs - quarantined
    orphan_chunks = index_chunks - ledger_chunks
    missing_chunks = ledger_chunks - index_chunks
    metadata = {
        "source_documents": len(source_ids),
        "quarantined_documents": len(quarantined & source_ids),
        "documents_with_vectors": len(index_docs),
        "stale_documents_total": len(stale_docs),
        "stale_documents": first(stale_docs, limit),
        "index_rows": index.num_rows,
        "chunk_ledger": len(ledger_chunks),
        "embedding_rows": embedding_rows or 0,
        "orphans_total": len(orphans),
        "orphans": first(orphans, limit),
        "missing_total": len(missing),
        "missing": first(missing, limit),
        "orphan_chunks_total": len(orphan_chunks),
        "orphan_chunks": first(orphan_chunks, limit),
        "missing_chunks_total": len(missing_chunks),
        "missing_chunks": first(missing_chunks, limit),
    }
    problems = []
    if orphans:
        problems.append(f"{len(orphans)} orphan document(s) in the index but not in the source")
    if missing:
        stale_missing = len(missing & stale_docs)
        problems.append(
            f"{len(missing)} source document(s) without current vectors in the index"
            + (f" ({stale_missing} serving stale vectors after a model failure)" if stale_missing else "")
        )
    if orphan_chunks:
        problems.append(f"{len(orphan_chunks)} index row(s) not in the chunk ledger")
    if missing_chunks:
        problems.append(f"{len(missing_chunks)} ledger chunk(s) missing from the index")
    description = "; ".join(problems) or (
        f"{len(source_ids)} documents, {index.num_rows} index rows = {len(ledger_chunks)} ledger chunks"
    )
    ids = first(orphans | missing, limit) + first(orphan_chunks | missing_chunks, limit)
    return Outcome("reconciliation", passed=not problems, description=description, ids=ids, metadata=metadata)


def quarantined_documents(tables: TableStore, tenant: str, space: SpaceSpec) -> set[str]:
    """Documents refused for their own content, when read or chunked in the space.

    Documents the model failed on (``embedding_quarantine``) are not among them: that is a failure of
    the model, not of the document, and such a document counts as missing until a run embeds it.
    """
    found: set[str] = set()
    for name, partition in (
        ("source_quarantine", (tenant,)),
        ("chunk_quarantine", (tenant, space.name)),
    ):
        found |= set(_column(tables.read(name, partition), "doc_id"))
    return found


def reconcile_tenant(
    tables: TableStore, store: VectorStore, source_root: SourceRoot, tenant: str, space: SpaceSpec, limit: int = 50
) -> Outcome:
    """The reconciliation check of one tenant in one space: its source folder now, its index, its ledger."""
    outcome = reconcile(
        set(list_source(source_root)),
        quarantined_documents(tables, tenant, space),
        index_rows(store, tenant, space),
        tables.read_columns("document_chunks", (tenant, space.name), ["chunk_id", "doc_id"]),
        tables.count_rows("chunk_embeddings", (tenant, space.name)),
        limit,
    )
    outcome.metadata["source_dir"] = str(source_root)
    return outcome


def _parts(index: pa.Table | Iterable[pa.Table]) -> Iterable[pa.Table]:
    return [index] if isinstance(index, pa.Table) else index


def one_space(index: pa.Table | Iterable[pa.Table], space: SpaceSpec, limit: int = 50) -> Outcome:
    """Every row carries the collection's space_id, space name and model identity (rows may come in batches)."""
    want = {"space_id": space.space_id, "space_name": space.name, "model": space.model.identity}
    wrong: dict[str, list[str]] = defaultdict(list)
    found: dict[str, set] = defaultdict(set)
    rows = 0
    for part in _parts(index):
        rows += part.num_rows
        for field, expected in want.items():
            for chunk, value in zip(_column(part, "chunk_id"), _column(part, field), strict=True):
                found[field].add(value)
                if value != expected:
                    wrong[field].append(chunk)
    bad = sorted({c for ids in wrong.values() for c in ids})
    metadata = {
        "space_id": space.space_id,
        "model": space.model.identity,
        "rows": rows,
        "foreign_rows_total": len(bad),
        "foreign_rows": bad[:limit],
        "space_ids_found": sorted(str(v) for v in found["space_id"]),
        "models_found": sorted(str(v) for v in found["model"]),
    }
    description = (
        f"{len(bad)} row(s) of another space or model in the collection of {space.name} ({space.space_id})"
        if bad else f"all {rows} rows belong to {space.name} ({space.space_id})"
    )
    return Outcome("one_space_per_collection", passed=not bad, description=description, ids=bad[:limit],
                   metadata=metadata)


def provenance(index: pa.Table | Iterable[pa.Table], space: SpaceSpec, tenant: str, limit: int = 50) -> Outcome:
    """No row lacks a provenance field, belongs to another tenant, or has a vector of the wrong size (rows
    may come in batches)."""
    missing: dict[str, list[str]] = defaultdict(list)
    other_tenant: list[str] = []
    bad_dims: list[str] = []
    bad_values: list[str] = []
    rows = 0
    for part in _parts(index):
        rows += part.num_rows
        chunks = _column(part, "chunk_id")
        for field in PROVENANCE_FIELDS:
            values = _column(part, field) if field in part.column_names else [None] * len(chunks)
            for chunk, value in zip(chunks, values, strict=True):
                if value is None or (isinstance(value, str) and not value.strip()):
                    missing[field].append(str(chunk))
        other_tenant += [c for c, t in zip(chunks, _column(part, "tenant"), strict=True) if t and t != tenant]
        for chunk, vector in zip(chunks, _column(part, "vector"), strict=True):
            if vector is None or len(vector) != space.dimension:
                bad_dims.append(chunk)
            elif not np.isfinite(np.asarray(vector, dtype=np.float64)).all():
                bad_values.append(chunk)
    bad = sorted({c for ids in missing.values() for c in ids} | set(other_tenant) | set(bad_dims) | set(bad_values))
    metadata = {
        "rows": rows,
        "dimension": space.dimension,
        "rows_with_missing_fields": len({c for ids in missing.values() for c in ids}),
        "missing_by_field": {f: first(ids, limit) for f, ids in missing.items()},
        "other_tenant_rows": first(other_tenant, limit),
        "wrong_dimension_rows": first(bad_dims, limit),
        "non_finite_rows": first(bad_values, limit),
        "bad_rows_total": len(bad),
    }
    parts = [f"{len(ids)} row(s) without {f}" for f, ids in sorted(missing.items())]
    parts += [f"{len(other_tenant)} row(s) of another tenant"] if other_tenant else []
    parts += [f"{len(bad_dims)} vector(s) not of dimension {space.dimension}"] if bad_dims else []
    parts += [f"{len(bad_values)} vector(s) with NaN or inf"] if bad_values else []
    description = "; ".join(parts) or f"all {rows} rows carry full provenance and {space.dimension}-d vectors"
    return Outcome("provenance_complete", passed=not bad, description=description, ids=bad[:limit],
                   metadata=metadata)
