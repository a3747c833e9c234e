"""Vector math, in one place: unit length, norms, cosine similarity and distance, and an Arrow vector
column as a numpy matrix. The embedders, exact search, the golden-set evaluation, the drift checks,
repair and the adapter all use these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa


def as_matrix(vectors: Sequence, dtype: Any = np.float64) -> np.ndarray:
    """A list of vectors (lists or arrays) as a matrix (n, d); (0, 0) when empty."""
    if len(vectors) == 0:
        return np.zeros((0, 0), dtype=dtype)
    return np.asarray([np.asarray(v, dtype=dtype) for v in vectors])


def vector_matrix(table: pa.Table, column: str = "vector", dtype: Any = np.float64) -> np.ndarray:
    """The vector column of an Arrow table as a matrix (n, d); (0, 0) when the table is empty."""
    if table.num_rows == 0:
        return np.zeros((0, 0), dtype=dtype)
    values = table.column(column).combine_chunks()
    try:
        return np.asarray(values.flatten(), dtype=dtype).reshape(table.num_rows, -1)
    except ValueError:  # ragged lists: let as_matrix report the shapes
        return as_matrix(values.to_pylist(), dtype)


def norms(vectors: np.ndarray) -> np.ndarray:
    """The L2 norm of each row (of a matrix), or of a single vector."""
    return np.linalg.norm(np.asarray(vectors, dtype=np.float64), axis=-1)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Each row (or a single vector) scaled to unit length; a zero vector stays zero. Keeps a float dtype."""
    x = np.asarray(vectors)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    lengths = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(lengths == 0, 1.0, lengths).astype(x.dtype)


def cosine_similarities(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """cos(query, row) for every row of ``matrix``: shape (n,) for one query, (q, n) for a matrix of them.
    A zero vector has similarity 0 with anything."""
    return normalize(queries) @ normalize(matrix).T


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos(a_i, b_i), in [0, 2]; a zero vector is at distance 1 from anything."""
    sims = np.einsum("ij,ij->i", normalize(np.asarray(a, dtype=np.float64)), normalize(np.asarray(b, dtype=np.float64)))
    return np.clip(1.0 - sims, 0.0, 2.0)
