"""P4 search: latency and recall@10 of the index, with synthetic vectors written through LanceStore.

Vectors have a low intrinsic dimension, as real embeddings do: a mixture of 100 clusters in a 24-dimensional
latent space, mapped into 384 dimensions by a fixed random matrix, plus noise, normalized (isotropic noise in
384 dimensions would make every neighbour nearly equidistant and any approximate index look hopeless).
Queries are fresh draws from the same mixture. Exact top-10 by brute-force cosine in numpy is the baseline
for recall. Latency is measured on what embedops serves (``LanceStore.search``, with whatever index
``LanceStore.sync`` built: an HNSW index from 10k rows on), on the bare LanceDB table with the same index
(embedops' own overhead), as an exact scan of the bare table (``bypass_vector_index``), and after the bench
replaces the index with LanceDB's default IVF_PQ (the alternative). End-to-end ``search_tenant`` adds the
all-MiniLM-L6-v2 query embedding (SciFact query texts); its parts are timed query by query in the same loop.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from bench.context import Context
from bench.data import scifact_queries

DIM, LATENT, CLUSTERS, K = 384, 24, 100, 10


class Mixture:
    """Clustered vectors of low intrinsic dimension in DIM dimensions."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.lift = rng.normal(0, 1, (LATENT, DIM)).astype(np.float32)
        self.centers = rng.normal(0, 1, (CLUSTERS, LATENT)).astype(np.float32)

    def draw(self, n: int) -> np.ndarray:
        labels = self.rng.integers(0, CLUSTERS, n)
        latent = self.centers[labels] + self.rng.normal(0, 0.5, (n, LATENT)).astype(np.float32)
        vectors = latent @ self.lift + self.rng.normal(0, 0.3, (n, DIM)).astype(np.float32)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def rows(vectors: np.ndarray, tenant: str, space) -> pa.Table:  # type: ignore[no-untyped-def]
    from embedops.core.stores.base import index_schema

    n = len(vectors)
    ids = [f"c{i:07d}" for i in range(n)]
    now = datetime.now(UTC)
    columns = {
        "chunk_id": ids,
        "tenant": [tenant] * n,
        "doc_id": [f"d{i // 4:07d}" for i in range(n)],
        "seq": pa.array(np.arange(n) % 4, pa.int32()),
        "text": [f"synthetic vector {i}" for i in range(n)],
        "text_hash": ids,
        "source_checksum": ["synthetic"] * n,
        "space_id": [space.space_id] * n,
        "space_name": [space.name] * n,
        "model": [space.model.identity] * n,
        "config_hash": [space.config_hash] * n,
        "embedded_at": [now] * n,
        "stale": [False] * n,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
    }
    return pa.table(columns, schema=index_schema(DIM))


def percentiles(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2), "n": len(samples)}


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e.tolist())) / K for f, e in zip(found, exact, strict=True)]))


def _ids(hits) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(h.chunk_id[1:]) for h in hits]


def run(ctx: Context) -> dict:
    from lancedb.index import IvfPq

    from embedops.core.embedder import SpaceEmbedder
    from embedops.core.search import search_tenant
    from embedops.core.settings import control_url
    from embedops.core.spaces import DEFAULT_SPACE
    from embedops.core.stores.lance import LanceStore

    space = DEFAULT_SPACE
    mixture = Mixture(np.random.default_rng(5))
    store = LanceStore(ctx.tmp / "p4" / "lancedb", aliases=control_url(ctx.tmp / "p4"))
    embedder = SpaceEmbedder(space)
    texts = scifact_queries(ctx.data)[: ctx.sizes["p4_e2e_queries"]]
    out: dict = {"dimension": DIM, "k": K, "queries": ctx.sizes["p4_queries"], "e2e_queries": len(texts),
                 "sizes": []}
    for n in ctx.sizes["p4_vectors"]:
        tenant = f"synth-{n}"
        ctx.log(f"P4: {n} vectors")
        vectors = mixture.draw(n)
        queries = mixture.draw(ctx.sizes["p4_queries"])
        started = time.perf_counter()
        store.sync(tenant, space.space_id, space.name, rows(vectors, tenant, space))
        write_s = time.perf_counter() - started
        exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :K]
        entry: dict = {"vectors": n, "write_seconds": round(write_s, 2)}

        def served(q: np.ndarray, t: str = tenant) -> list[int]:
            return _ids(store.search(t, space.space_id, q, K, space.space_id))

        table = store._open(tenant, space.space_id)
        entry["served_index"] = ", ".join(i.index_type for i in table.list_indices() if "vector" in i.columns) or None
        entry["flat"] = _measure(served, queries, exact)
        entry["lancedb_table"] = _measure(lambda q, t=table: _raw(t, q), queries, exact)
        entry["exact_scan"] = _measure(lambda q, t=table: _raw(t, q, bypass=True), queries, exact)
        if store.get_alias("docs") is None:
            store.set_alias("docs", space.space_id)
        search_tenant(store, space, embedder, tenant, texts[0], k=K)  # warm-up
        e2e, embed, scan = [], [], []
        for text in texts:
            started = time.perf_counter()
            search_tenant(store, space, embedder, tenant, text, k=K)
            e2e.append(time.perf_counter() - started)
            started = time.perf_counter()
            vector = embedder.encode([text])[0]
            embed.append(time.perf_counter() - started)
            started = time.perf_counter()
            store.search(tenant, space.space_id, vector, K, space.space_id)
            scan.append(time.perf_counter() - started)
        entry["end_to_end"] = percentiles(e2e)
        entry["query_embedding"] = percentiles(embed)
        entry["search_of_those_queries"] = percentiles(scan)
        if ctx.sizes["p4_ann"]:
            started = time.perf_counter()
            table.create_index("vector", config=IvfPq(distance_type="cosine"), replace=True)
            entry["ivf_pq_build_seconds"] = round(time.perf_counter() - started, 2)
            entry["ivf_pq"] = _measure(served, queries, exact)
        out["sizes"].append(entry)
        ctx.log(f"P4: {n} vectors served ({entry['served_index'] or 'scan'}) p50 {entry['flat']['p50_ms']} ms, "
                f"recall {entry['flat']['recall_at_10']}")
    return out


def _raw(table, query: np.ndarray, bypass: bool = False) -> list[int]:  # type: ignore[no-untyped-def]
    found = table.search(query, vector_column_name="vector").distance_type("cosine").limit(K).select(["chunk_id"])
    if bypass:
        found = found.bypass_vector_index()
    return [int(c[1:]) for c in found.to_arrow().column("chunk_id").to_pylist()]


def _measure(search, queries: np.ndarray, exact: np.ndarray) -> dict:  # type: ignore[no-untyped-def]
    search(queries[0])  # warm-up
    found, times = [], []
    for q in queries:
        started = time.perf_counter()
        found.append(search(q))
        times.append(time.perf_counter() - started)
    return {**percentiles(times), "recall_at_10": round(recall(found, exact), 4)}
