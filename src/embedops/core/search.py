"""Search over a tenant's index: approximate (the store's index) or exact (brute-force cosine)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from embedops.core.embedder import Embedder
from embedops.core.spaces import SpacesConfig, SpaceSpec
from embedops.core.stores.base import Hit, VectorStore
from embedops.core.tenants import validate_tenant
from embedops.core.vectors import cosine_similarities, vector_matrix
from embedops.errors import InvalidQueryError, NotMaterializedError, SpaceMismatchError


def exact_search(rows: pa.Table, query: np.ndarray, k: int, query_space_id: str) -> list[Hit]:
    """Top-k of ``rows`` (an export with vectors) by exact cosine similarity to ``query``."""
    if rows.num_rows == 0:
        return []
    spaces = set(rows.column("space_id").unique().to_pylist())
    if spaces != {query_space_id}:
        raise SpaceMismatchError(
            f"a query embedded in space {query_space_id!r} cannot search rows of space(s) {sorted(spaces)}"
        )
    scores = cosine_similarities(np.asarray(query, dtype=np.float32), vector_matrix(rows, dtype=np.float32))
    top = np.argsort(-scores, kind="stable")[:k]
    meta = rows.drop_columns(["vector"]).take(pa.array(top)).to_pylist()
    hits = []
    for row, idx in zip(meta, top, strict=True):
        text = row.pop("text")
        hits.append(Hit(row["chunk_id"], row["doc_id"], text, float(scores[idx]), row))
    return hits


def serving_space(store: VectorStore, config: SpacesConfig, space_name: str | None = None) -> SpaceSpec:
    """The space a search reads: the one named, else the one the config's alias points at."""
    if space_name:
        return config.get(space_name)
    space_id = store.get_alias(config.alias)
    if space_id is None:
        raise NotMaterializedError(
            f"alias {config.alias!r} points at no space yet; run `embedops ingest` for a tenant first"
        )
    return config.by_id(space_id)


def search_tenant(
    store: VectorStore,
    space: SpaceSpec,
    embedder: Embedder,
    tenant: str,
    query: str,
    k: int = 10,
    exact: bool = False,
) -> list[Hit]:
    """Embed ``query`` in ``space`` and return the tenant's top-k chunks (ANN, or exact with ``exact``).

    ``tenant`` is a customer's: the store checks that the name is safe, this refuses reserved names too.
    """
    validate_tenant(tenant)
    if not query.strip():
        raise InvalidQueryError("the query is empty; give some words to search for")
    vector = embedder.encode([query])[0]
    if exact:
        return exact_search(store.export(tenant, space.space_id, with_vectors=True), vector, k, space.space_id)
    return store.search(tenant, space.space_id, vector, k, query_space_id=space.space_id)
