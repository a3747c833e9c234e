"""Drift-Adapter bridge: a small linear map from new-model query vectors into the old space.

After Vejendla (2025, arXiv 2509.23471): while a backfill runs, queries can be embedded by the new
model and mapped into the old space to search the old index. Fitted on paired embeddings of the
same chunk texts: orthogonal Procrustes when the dimensions agree (W = U V^T from the SVD of X^T Y),
ridge least squares when they differ. numpy only; applying it is one matrix product per query.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from embedops.core.dataplane import get_bytes, join, list_names, put_bytes
from embedops.core.vectors import normalize
from embedops.errors import ConfigError, NotMaterializedError, SpaceMismatchError, redacted

METHODS = ("procrustes", "least-squares")


def fit_map(
    x_new: np.ndarray, y_old: np.ndarray, method: str | None = None, ridge: float = 0.1
) -> tuple[np.ndarray, str]:
    """The map W (d_new x d_old) with x_new @ W ~ y_old, and the method used.

    ``ridge`` is relative to the mean eigenvalue of X^T X, so it means the same at any scale.
    """
    x, y = normalize(np.asarray(x_new, dtype=np.float64)), normalize(np.asarray(y_old, dtype=np.float64))
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"need at least 2 paired vectors with equal counts, got {x.shape[0]} and {y.shape[0]}")
    method = method or ("procrustes" if x.shape[1] == y.shape[1] else "least-squares")
    if method not in METHODS:
        raise ConfigError(f"adapter method {method!r} is not one of {METHODS}")
    if method == "procrustes":
        if x.shape[1] != y.shape[1]:
            raise SpaceMismatchError(
                f"orthogonal Procrustes needs equal dimensions, got {x.shape[1]} -> {y.shape[1]}; use least-squares"
            )
        u, _s, vt = np.linalg.svd(x.T @ y, full_matrices=False)
        return (u @ vt).astype(np.float32), method
    gram = x.T @ x
    lam = ridge * float(np.trace(gram)) / gram.shape[0]
    w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), x.T @ y)
    return w.astype(np.float32), method


@dataclass
class Adapter:
    """A fitted map from ``source`` (the new space) into ``target`` (the old, still serving space)."""

    source: str
    source_id: str
    target: str
    target_id: str
    method: str
    matrix: np.ndarray
    samples: int
    fitted_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    report: dict[str, Any] = field(default_factory=dict)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Map vectors of the source space into the target space (unit length, float32)."""
        v = np.asarray(vectors, dtype=np.float32)
        if v.shape[-1] != self.matrix.shape[0]:
            raise SpaceMismatchError(
                f"adapter {self.source!r} -> {self.target!r} takes vectors of dimension {self.matrix.shape[0]}, "
                f"got {v.shape[-1]}; embed the query in space {self.source!r}"
            )
        return normalize(v @ self.matrix)

    def latency_us(self, repeats: int = 2000) -> float:
        """Added time per query, in microseconds: mapping one query vector, best of three runs."""
        query = normalize(np.asarray(np.random.default_rng(0).standard_normal(self.matrix.shape[0]), dtype=np.float32))
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(repeats):
                self.apply(query)
            best = min(best, (time.perf_counter() - started) / repeats)
        return best * 1e6

    def meta(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_id": self.source_id,
            "target": self.target,
            "target_id": self.target_id,
            "method": self.method,
            "samples": self.samples,
            "fitted_at": self.fitted_at,
            "shape": list(self.matrix.shape),
            "report": self.report,
        }

    def save(self, location: str | Path) -> str:
        """Write the adapter as one .npz at ``location`` (a file path or an object-store URL); returns it."""
        buffer = io.BytesIO()
        np.savez(buffer, matrix=self.matrix, meta=np.array(json.dumps(self.meta(), default=str)))
        put_bytes(str(location), buffer.getvalue())
        return str(location)

    @classmethod
    def load(cls, location: str | Path) -> Adapter:
        data = get_bytes(str(location))
        if data is None:
            raise NotMaterializedError(
                f"no adapter at {redacted(str(location))}; fit one with `embedops adapter fit --space NEW`"
            )
        with np.load(io.BytesIO(data)) as arrays:
            meta = json.loads(str(arrays["meta"]))
            matrix = np.asarray(arrays["matrix"], dtype=np.float32)
        return cls(
            source=meta["source"],
            source_id=meta["source_id"],
            target=meta["target"],
            target_id=meta["target_id"],
            method=meta["method"],
            matrix=matrix,
            samples=meta["samples"],
            fitted_at=meta["fitted_at"],
            report=meta.get("report", {}),
        )


ADAPTERS = "adapters"


def adapter_path(data_root: str, source: str, target: str) -> str:
    """Where the adapter from space ``source`` into space ``target`` is kept in the data plane."""
    return join(data_root, ADAPTERS, f"{source}__to__{target}.npz")


def adapters_into(data_root: str, target: str) -> list[str]:
    """The names of the spaces with an adapter into space ``target`` in the data plane, sorted."""
    suffix = f"__to__{target}.npz"
    return [name.removesuffix(suffix) for name in list_names(join(data_root, ADAPTERS)) if name.endswith(suffix)]


def fit_adapter(
    source: tuple[str, str], target: tuple[str, str], x_new: np.ndarray, y_old: np.ndarray, method: str | None = None
) -> Adapter:
    """Fit an Adapter from paired vectors; ``source``/``target`` are (name, space_id)."""
    matrix, used = fit_map(x_new, y_old, method)
    return Adapter(source[0], source[1], target[0], target[1], used, matrix, int(x_new.shape[0]))
