"""Golden-set evaluation of a space: through its real index (ANN) and by exact search.

The golden corpus is chunked and embedded by the space's own recipe (the embedding cache answers
for text seen before) and synced into the store under the reserved GOLDEN_TENANT namespace, apart
from every customer tenant. A document's rank is the rank of its best chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from embedops.core.adapter import Adapter, fit_adapter
from embedops.core.cache import EmbeddingCache
from embedops.core.embedder import Embedder
from embedops.core.fingerprints import cache_key, sha256_text
from embedops.core.golden import GOLDEN_TENANT, GoldenSet
from embedops.core.ingest import CHUNKS_SCHEMA, embed_chunks, plan_chunks
from embedops.core.manifest import Manifest
from embedops.core.metrics import evaluate_run, mean_overlap
from embedops.core.spaces import SpaceSpec
from embedops.core.stores.base import VectorStore, index_schema
from embedops.core.tables import Collector, TableStore
from embedops.core.vectors import normalize, vector_matrix

K = 10
CHUNK_DEPTH = 100  # chunks fetched per query, so that 10 distinct documents are found


@dataclass
class Evaluation:
    """A space's numbers on one golden set: ANN (through the index), exact, and their overlap."""

    space: str
    space_id: str
    golden: str
    fingerprint: str
    queries: int
    documents: int
    chunks: int
    ann: dict[str, float]
    exact: dict[str, float]
    overlap: float
    ann_ms_per_query: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def numbers(self) -> dict[str, Any]:
        """Flat numbers: the ANN metrics under their plain names (what the gate reads)."""
        return {
            **{k: round(v, 4) for k, v in self.ann.items()},
            **{f"exact_{k}": round(v, 4) for k, v in self.exact.items()},
            f"ann_exact_overlap@{K}": round(self.overlap, 4),
            "queries": self.queries,
            "documents": self.documents,
            "chunks": self.chunks,
            "ann_ms_per_query": round(self.ann_ms_per_query, 3),
            "seconds": round(self.seconds, 2),
            "space_id": self.space_id,
            "fingerprint": self.fingerprint,
            "golden_name": self.golden,
            **self.extra,
        }


def cached_encode(texts: list[str], embedder: Embedder, cache: EmbeddingCache) -> np.ndarray:
    """Vectors for ``texts`` in the embedder's space, the cache answering for text it has seen."""
    keys = [cache_key(embedder.identity, t) for t in texts]
    found = cache.get_many(keys)
    todo = list(dict.fromkeys(k for k in keys if k not in found))
    if todo:
        by_key = dict(zip(keys, texts, strict=True))
        vectors = embedder.encode([by_key[k] for k in todo])
        cache.put_many(embedder.identity, list(zip(todo, vectors, strict=True)))
        found.update({k: (v, None) for k, v in zip(todo, vectors, strict=True)})  # type: ignore[misc]
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    return np.stack([np.asarray(found[k][0], dtype=np.float32) for k in keys])


def index_golden(
    golden: GoldenSet,
    space: SpaceSpec,
    embedder: Embedder,
    cache: EmbeddingCache,
    store: VectorStore,
    tables: TableStore | None = None,
) -> pa.Table:
    """Chunk, embed and sync the golden corpus into the space's GOLDEN_TENANT namespace; its rows."""
    partition = (space.name,)
    previous = tables.read("golden_chunks", partition) if tables is not None else None
    chunks, rows = Collector(CHUNKS_SCHEMA), Collector(index_schema(space.dimension))
    plan_chunks(golden.documents_table(), previous, space, embedder.count_tokens, chunks)
    embed_chunks(chunks.table(), space, embedder, cache, rows)
    if tables is not None:
        tables.write("golden_chunks", partition, chunks.table(), f"golden-{golden.fingerprint}")
    store.sync(GOLDEN_TENANT, space.space_id, space.name, rows.table())
    return rows.table()


def _doc_ranking(chunk_docs: list[str]) -> list[str]:
    return list(dict.fromkeys(chunk_docs))[:K]


def exact_rankings(rows: pa.Table, queries: np.ndarray) -> tuple[list[list[str]], list[list[str]]]:
    """Per query: chunk ids and doc ids, best first, by exact cosine over every row."""
    matrix = normalize(vector_matrix(rows, dtype=np.float32)).T
    chunk_ids = rows.column("chunk_id").to_pylist()
    doc_ids = rows.column("doc_id").to_pylist()
    depth = min(CHUNK_DEPTH, rows.num_rows)
    out_chunks, out_docs = [], []
    for start in range(0, len(queries), 256):
        scores = normalize(queries[start : start + 256]) @ matrix
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        for i, cand in enumerate(top):
            order = cand[np.lexsort((cand, -scores[i, cand]))]
            out_chunks.append([chunk_ids[j] for j in order])
            out_docs.append([doc_ids[j] for j in order])
    return out_chunks, out_docs


def evaluate_space(
    golden: GoldenSet,
    space: SpaceSpec,
    embedder: Embedder,
    cache: EmbeddingCache,
    store: VectorStore,
    tables: TableStore | None = None,
) -> Evaluation:
    """Index the golden corpus in ``space`` and score its queries through the index and exactly."""
    started = time.monotonic()
    rows = index_golden(golden, space, embedder, cache, store, tables)
    query_ids = sorted(golden.queries)
    vectors = cached_encode([golden.queries[q] for q in query_ids], embedder, cache)
    return score_index(golden, space, store, rows, query_ids, vectors, started)


def score_index(
    golden: GoldenSet,
    space: SpaceSpec,
    store: VectorStore,
    rows: pa.Table,
    query_ids: list[str],
    vectors: np.ndarray,
    started: float | None = None,
) -> Evaluation:
    """Score query vectors (already in ``space``) against the space's golden index, ANN and exact."""
    started = time.monotonic() if started is None else started
    depth = min(CHUNK_DEPTH, rows.num_rows)
    ann_chunks, ann_docs = {}, {}
    ann_started = time.perf_counter()
    for qid, vector in zip(query_ids, vectors, strict=True):
        hits = store.search(GOLDEN_TENANT, space.space_id, vector, depth, query_space_id=space.space_id)
        ann_chunks[qid] = [h.chunk_id for h in hits][:K]
        ann_docs[qid] = _doc_ranking([h.doc_id for h in hits])
    ann_ms = (time.perf_counter() - ann_started) * 1000 / max(len(query_ids), 1)
    with_vectors = store.export(GOLDEN_TENANT, space.space_id, with_vectors=True)
    exact_c, exact_d = exact_rankings(with_vectors, vectors)
    exact_chunks = {q: c[:K] for q, c in zip(query_ids, exact_c, strict=True)}
    exact_docs = {q: _doc_ranking(d) for q, d in zip(query_ids, exact_d, strict=True)}
    return Evaluation(
        space=space.name,
        space_id=space.space_id,
        golden=golden.name,
        fingerprint=golden.fingerprint,
        queries=len(query_ids),
        documents=len(golden.corpus),
        chunks=rows.num_rows,
        ann=evaluate_run(ann_docs, golden.qrels, K),
        exact=evaluate_run(exact_docs, golden.qrels, K),
        overlap=mean_overlap(ann_chunks, exact_chunks, K),
        ann_ms_per_query=ann_ms,
        seconds=time.monotonic() - started,
    )


def evaluate_with_serving(
    golden: GoldenSet,
    space: SpaceSpec,
    serving: SpaceSpec | None,
    embedder_for: Callable[[SpaceSpec], Embedder],
    cache: EmbeddingCache,
    store: VectorStore,
    tables: TableStore,
    manifest: Manifest,
) -> tuple[Evaluation, dict[str, Any] | None]:
    """Evaluate ``space`` and record it; the serving space's numbers on the same golden set beside it
    (from the manifest when already measured, else measured and recorded now)."""
    result = evaluate_space(golden, space, embedder_for(space), cache, store, tables)
    manifest.record_evaluation(space.name, space.space_id, golden.fingerprint, golden.name, result.numbers())
    if serving is None or serving.space_id == space.space_id:
        return result, None
    known = manifest.latest_evaluation(serving.space_id, golden.fingerprint)
    if known is None:
        other = evaluate_space(golden, serving, embedder_for(serving), cache, store, tables)
        manifest.record_evaluation(serving.name, serving.space_id, golden.fingerprint, golden.name, other.numbers())
        known = manifest.latest_evaluation(serving.space_id, golden.fingerprint)
    return result, known


def adapter_sample(tenant_chunks: list[str], golden: GoldenSet, golden_rows: pa.Table, size: int) -> list[str]:
    """Chunk texts to fit an adapter on: the tenants' own chunks first, then golden-corpus chunks of
    documents no golden query is judged relevant to (so the map never sees the answers)."""
    relevant = {d for judged in golden.qrels.values() for d, r in judged.items() if r > 0}
    extra = [
        t
        for t, d in zip(golden_rows.column("text").to_pylist(), golden_rows.column("doc_id").to_pylist(), strict=True)
        if d not in relevant
    ]
    texts = list(dict.fromkeys(tenant_chunks + sorted(extra, key=sha256_text)))
    return texts[:size]


def fit_and_evaluate_adapter(
    golden: GoldenSet,
    new: SpaceSpec,
    old: SpaceSpec,
    embedder_for: Callable[[SpaceSpec], Embedder],
    cache: EmbeddingCache,
    store: VectorStore,
    tables: TableStore,
    tenant_chunks: list[str],
    sample: int = 2000,
    method: str | None = None,
) -> Adapter:
    """Fit the new -> old adapter on paired chunk embeddings and measure it on the golden set: recall
    of new-model queries mapped into the old index, as a fraction of the new space's own recall."""
    new_embedder, old_embedder = embedder_for(new), embedder_for(old)
    old_eval = evaluate_space(golden, old, old_embedder, cache, store, tables)
    new_eval = evaluate_space(golden, new, new_embedder, cache, store, tables)
    old_rows = store.export(GOLDEN_TENANT, old.space_id, with_vectors=True)
    texts = adapter_sample(tenant_chunks, golden, old_rows, sample)
    adapter = fit_adapter(
        (new.name, new.space_id),
        (old.name, old.space_id),
        cached_encode(texts, new_embedder, cache),
        cached_encode(texts, old_embedder, cache),
        method,
    )
    query_ids = sorted(golden.queries)
    queries = cached_encode([golden.queries[q] for q in query_ids], new_embedder, cache)
    bridged = score_index(golden, old, store, old_rows, query_ids, adapter.apply(queries))
    recall = "recall@10"
    adapter.report = {
        "golden": golden.name,
        "fingerprint": golden.fingerprint,
        "samples": len(texts),
        "adapter_recall@10": round(bridged.ann[recall], 4),
        "adapter_ndcg@10": round(bridged.ann["ndcg@10"], 4),
        "new_recall@10": round(new_eval.ann[recall], 4),
        "old_recall@10": round(old_eval.ann[recall], 4),
        "recovered_fraction": round(bridged.ann[recall] / new_eval.ann[recall], 4) if new_eval.ann[recall] else None,
        "added_latency_us": round(adapter.latency_us(), 2),
    }
    return adapter
