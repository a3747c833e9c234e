"""The incremental pipeline as plain functions: documents -> chunks -> embeddings (index rows).

Each step takes the previous materialization and returns the new one plus what changed, so that
unchanged text costs nothing, a changed chunk costs one model call and a deleted document leaves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

from embedops.core.cache import EmbeddingCache
from embedops.core.chunking import chunk_document
from embedops.core.embedder import Embedder
from embedops.core.fingerprints import cache_key, chunk_id, sha256_text
from embedops.core.preprocess import preprocess
from embedops.core.spaces import SpaceSpec
from embedops.core.stores.base import index_schema

CHUNKS_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("doc_id", pa.string()),
        ("chunk_id", pa.string()),
        ("seq", pa.int32()),
        ("text", pa.string()),
        ("text_hash", pa.string()),
        ("token_count", pa.int32()),
        ("source_checksum", pa.string()),
        ("source_modified_at", pa.timestamp("us", tz="UTC")),
        ("space_id", pa.string()),
        ("config_hash", pa.string()),
    ]
)


@dataclass
class DocumentDiff:
    """Documents of this run against the previous materialization, by id."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


def diff_documents(previous: dict[str, str], current: dict[str, str]) -> DocumentDiff:
    """Compare {doc_id: checksum} maps: what was added, changed, deleted or left alone."""
    diff = DocumentDiff()
    for doc_id, checksum in sorted(current.items()):
        if doc_id not in previous:
            diff.added.append(doc_id)
        elif previous[doc_id] != checksum:
            diff.changed.append(doc_id)
        else:
            diff.unchanged.append(doc_id)
    diff.deleted = sorted(set(previous) - set(current))
    return diff


@dataclass
class ChunkPlan:
    chunks: pa.Table
    diff: DocumentDiff
    quarantined: list[dict]


def plan_chunks(
    documents: pa.Table,
    previous: pa.Table | None,
    space: SpaceSpec,
    count_tokens: Callable[[str], int],
) -> ChunkPlan:
    """Chunk the documents for ``space``, reusing the previous chunks of every unchanged document."""
    config_hash = space.config_hash
    reusable: dict[str, list[dict]] = {}
    prev_checksums: dict[str, str] = {}
    if previous is not None and previous.num_rows:
        for row in previous.to_pylist():
            prev_checksums[row["doc_id"]] = row["source_checksum"]
            if row["config_hash"] == config_hash:
                reusable.setdefault(row["doc_id"], []).append(row)

    rows: list[dict] = []
    quarantined: list[dict] = []
    current: dict[str, str] = {}
    for doc in documents.to_pylist():
        doc_id, checksum = doc["doc_id"], doc["checksum"]
        kept = reusable.get(doc_id)
        if kept and kept[0]["source_checksum"] == checksum:
            rows.extend({**r, "source_modified_at": doc["modified_at"]} for r in kept)
            current[doc_id] = checksum
            continue
        text = preprocess(doc["text"], doc["suffix"], space.preprocessing)
        pieces = chunk_document(
            text,
            count_tokens,
            space.chunker.max_tokens,
            space.chunker.overlap_tokens,
            space.chunker.min_tokens,
        )
        if not pieces:
            quarantined.append(
                {"doc_id": doc_id, "stage": "chunking", "reason": "no text left after preprocessing"}
            )
            continue
        current[doc_id] = checksum
        seen: Counter[str] = Counter()
        for piece in pieces:
            text_hash = sha256_text(piece.text)
            rows.append(
                {
                    "tenant": doc["tenant"],
                    "doc_id": doc_id,
                    "chunk_id": chunk_id(doc_id, text_hash, seen[text_hash]),
                    "seq": piece.seq,
                    "text": piece.text,
                    "text_hash": text_hash,
                    "token_count": piece.token_count,
                    "source_checksum": checksum,
                    "source_modified_at": doc["modified_at"],
                    "space_id": space.space_id,
                    "config_hash": config_hash,
                }
            )
            seen[text_hash] += 1
    # a document whose chunk recipe changed counts as changed, not unchanged
    previous_for_diff = {
        d: (c if d in reusable else f"{c}:recipe-changed") for d, c in prev_checksums.items()
    }
    diff = diff_documents(previous_for_diff, current)
    return ChunkPlan(pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA), diff, quarantined)


@dataclass
class EmbeddingResult:
    rows: pa.Table
    model_calls: int
    cache_hits: int
    quarantined: list[dict]


def embed_chunks(
    chunks: pa.Table,
    space: SpaceSpec,
    encoder: Embedder,
    cache: EmbeddingCache,
    group_size: int = 1024,
) -> EmbeddingResult:
    """Index rows for the chunks: cached vectors where the cache has them, the model for the rest.

    Missing texts go to the model ``group_size`` at a time (the model batches them itself, sorted by
    length, which pads less than fixed slices), and each group's vectors are cached as it finishes.
    Texts the model fails on are quarantined with their document; the rest goes on.
    """
    records = chunks.to_pylist()
    keys = [cache_key(encoder.identity, r["text"]) for r in records]
    cached = cache.get_many(keys)
    missing = {k: r["text"] for k, r in zip(keys, records, strict=True) if k not in cached}
    failed: dict[str, str] = {}
    todo = list(missing.items())
    for start in range(0, len(todo), group_size):
        done = []
        for key, vector, error in _encode_group(encoder, todo[start : start + group_size]):
            if vector is None:
                failed[key] = error or "no vector"
            else:
                done.append((key, vector))
        stamp = cache.put_many(encoder.identity, done)
        cached.update((key, (vector, stamp)) for key, vector in done)

    quarantined_docs: dict[str, str] = {}
    for key, r in zip(keys, records, strict=True):
        if key in failed:
            quarantined_docs.setdefault(r["doc_id"], f"embedding failed: {failed[key]}")
    rows = [
        _index_row(r, space, encoder.identity, *cached[k])
        for k, r in zip(keys, records, strict=True)
        if r["doc_id"] not in quarantined_docs
    ]
    hits = sum(1 for k in keys if k not in missing)
    return EmbeddingResult(
        rows=pa.Table.from_pylist(rows, schema=index_schema(space.dimension)),
        model_calls=len(missing),
        cache_hits=hits,
        quarantined=[
            {"doc_id": d, "stage": "embedding", "reason": why} for d, why in sorted(quarantined_docs.items())
        ],
    )


def _encode_group(
    encoder: Embedder, group: list[tuple[str, str]]
) -> list[tuple[str, np.ndarray | None, str | None]]:
    """Encode (key, text) pairs in one call; when it fails, halve the group so only the bad texts fail."""
    try:
        vectors = encoder.encode([t for _, t in group])
        _check_vectors(vectors, encoder.dimension, len(group))
        return [(k, v, None) for (k, _), v in zip(group, vectors, strict=True)]
    except Exception as exc:
        if len(group) == 1:
            return [(group[0][0], None, f"{type(exc).__name__}: {exc}")]
        half = len(group) // 2
        return _encode_group(encoder, group[:half]) + _encode_group(encoder, group[half:])


def _check_vectors(vectors: np.ndarray, dimension: int, count: int) -> None:
    if vectors.shape != (count, dimension) or not np.isfinite(vectors).all():
        raise ValueError(f"model returned vectors of shape {vectors.shape} or non-finite values")


def _index_row(
    chunk: dict, space: SpaceSpec, model: str, vector: np.ndarray, embedded_at: datetime
) -> dict:
    return {
        "chunk_id": chunk["chunk_id"],
        "tenant": chunk["tenant"],
        "doc_id": chunk["doc_id"],
        "seq": chunk["seq"],
        "text": chunk["text"],
        "text_hash": chunk["text_hash"],
        "source_checksum": chunk["source_checksum"],
        "space_id": space.space_id,
        "space_name": space.name,
        "model": model,
        "config_hash": chunk["config_hash"],
        "embedded_at": embedded_at,
        "vector": vector,
    }
