"""Drift math: sentinel re-embedding, nearest-neighbour stability, centroid and norm shift.

Plain functions over numpy arrays and lists; the asset checks feed them and turn the Outcome
into an AssetCheckResult.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from embedops.core.monitoring import ERROR, WARN, Outcome, graded
from embedops.core.monitoring.config import DistributionConfig, NeighbourConfig, SentinelConfig
from embedops.core.vectors import cosine_distances, norms

_RANK = "__sample_rank"


def _rank(salt: str, item: str) -> str:
    return hashlib.sha256(f"{salt}\x00{item}".encode()).hexdigest()


def fixed_sample(ids: Sequence[str], n: int, salt: str = "sentinel") -> list[str]:
    """A sample of ``n`` ids that stays put between runs: the n smallest salted hashes.

    An id keeps its place as long as it exists, so a sentinel set changes only where chunks do.
    """
    return sorted(ids, key=lambda i: _rank(salt, i))[:n]


def fixed_sample_rows(
    tables: Iterable[pa.Table], n: int, salt: str = "sentinel", column: str = "chunk_id"
) -> pa.Table | None:
    """The rows whose ``column`` is in ``fixed_sample`` of all ids, in its order, read table by table:
    never more than ``n`` rows and one table are held. None when no table came."""
    kept: pa.Table | None = None
    for table in tables:
        ranks = pa.array([_rank(salt, i) for i in table.column(column).to_pylist()], pa.string())
        ranked = table.append_column(_RANK, ranks)
        kept = (ranked if kept is None else pa.concat_tables([kept, ranked])).sort_by(_RANK).slice(0, n)
    return None if kept is None else kept.drop_columns([_RANK])


def grade_high(value: float, warn: float, error: float) -> str | None:
    """ERROR at or above ``error``, WARN at or above ``warn``, else None (passes)."""
    return ERROR if value >= error else WARN if value >= warn else None


def grade_low(value: float, warn_below: float, error_below: float) -> str | None:
    """ERROR below ``error_below``, WARN below ``warn_below``, else None (passes)."""
    return ERROR if value < error_below else WARN if value < warn_below else None


def sentinel_drift(
    chunk_ids: Sequence[str],
    stored: np.ndarray,
    fresh: np.ndarray,
    config: SentinelConfig,
    recipe_changed: Sequence[str] = (),
    limit: int = 50,
) -> Outcome:
    """Stored vectors of the sentinel chunks against the same chunks embedded by today's model.

    ``recipe_changed`` lists sentinels whose text today's preprocessing and chunking no longer produce
    (their fresh vector is that of the text produced today, so the distance shows the change).
    """
    if len(chunk_ids) == 0:
        return Outcome("sentinel_drift", True, description="no rows to sample", metadata={"sampled": 0})
    distances = cosine_distances(stored, fresh)
    mean = float(distances.mean())
    order = np.argsort(-distances, kind="stable")
    drifted = [chunk_ids[i] for i in order if distances[i] >= config.warn_at]
    level = grade_high(mean, config.warn_at, config.error_at)
    status = level or ("elevated" if mean >= config.pass_below else "clean")
    worst = [{"chunk_id": chunk_ids[i], "distance": round(float(distances[i]), 6)} for i in order[:10]]
    description = (
        f"mean cosine distance {mean:.5f} over {len(chunk_ids)} sentinel chunks ({status}; "
        f"warn at {config.warn_at}, error at {config.error_at})"
    )
    if recipe_changed:
        description += f"; {len(recipe_changed)} sentinel text(s) no longer produced by today's preprocessing"
    return graded(
        "sentinel_drift", level, description, ids=drifted[:limit],
        metadata={
            "sampled": len(chunk_ids),
            "mean_distance": round(mean, 6),
            "max_distance": round(float(distances.max()), 6),
            "status": status,
            "drifted_chunks_total": len(drifted),
            "worst": worst,
            "recipe_changed": list(recipe_changed)[:limit],
        },
    )


def overlap(previous: Sequence[Sequence[str]], current: Sequence[Sequence[str]], k: int) -> list[float]:
    """Per query, the share of the previous top-k that is still in the current top-k."""
    scores = []
    for before, now in zip(previous, current, strict=True):
        want = list(before)[:k]
        if not want:
            scores.append(1.0 if not list(now)[:k] else 0.0)
            continue
        scores.append(len(set(want) & set(list(now)[:k])) / len(want))
    return scores


def _short(text: str, length: int = 60) -> str:
    """A query as one short line, for lists of ids."""
    line = " ".join(text.split())
    return line if len(line) <= length else line[: length - 3] + "..."


def neighbour_stability(
    queries: Sequence[str],
    previous: Sequence[Sequence[str]] | None,
    current: Sequence[Sequence[str]],
    config: NeighbourConfig,
) -> Outcome:
    """Mean top-k overlap with the previous evaluation; the first evaluation records the baseline."""
    if previous is None or len(previous) != len(current):
        return Outcome("nn_stability", True, description=f"recorded top-{config.k} of {len(queries)} queries "
                       "as the first evaluation", metadata={"queries": len(queries), "first_evaluation": True})
    scores = overlap(previous, current, config.k)
    mean = float(np.mean(scores)) if scores else 1.0
    level = grade_low(mean, config.warn_below, config.error_below)
    unstable = [(queries[i], s) for i, s in enumerate(scores) if s < config.warn_below]
    return graded(
        "nn_stability", level,
        f"mean top-{config.k} overlap {mean:.3f} over {len(queries)} queries (warn below {config.warn_below}, "
        f"error below {config.error_below})",
        ids=[_short(q) for q, _ in unstable][:50],
        metadata={
            "queries": len(queries),
            "mean_overlap": round(mean, 4),
            "min_overlap": round(min(scores), 4) if scores else 1.0,
            "unstable_queries": [{"query": _short(q, 120), "overlap": round(s, 3)} for q, s in unstable[:20]],
        },
    )


def centroid_and_norm(vectors: np.ndarray | Iterable[np.ndarray]) -> tuple[np.ndarray, float]:
    """Mean vector and mean L2 norm of a matrix of vectors, or of matrices met one at a time."""
    parts = [vectors] if isinstance(vectors, np.ndarray) else vectors
    total, lengths, n = np.zeros(0), 0.0, 0
    for part in parts:
        matrix = np.asarray(part, dtype=np.float64)
        if matrix.size == 0:
            continue
        total = matrix.sum(axis=0) + (total if n else 0.0)
        lengths += float(norms(matrix).sum())
        n += len(matrix)
    return (total / n, lengths / n) if n else (np.zeros(0), 0.0)


def distribution_shift(
    centroid: np.ndarray, mean_norm: float, base_centroid: np.ndarray, base_norm: float, config: DistributionConfig
) -> Outcome:
    """Centroid cosine distance and relative mean-norm change against the baseline."""
    if centroid.shape != base_centroid.shape or centroid.size == 0:
        shift = 1.0
    else:
        shift = float(cosine_distances(centroid[None, :], base_centroid[None, :])[0])
    change = abs(mean_norm - base_norm) / base_norm if base_norm > 0 else (0.0 if mean_norm == 0 else 1.0)
    levels = [
        grade_high(shift, config.centroid_warn, config.centroid_error),
        grade_high(change, config.norm_warn, config.norm_error),
    ]
    level = ERROR if ERROR in levels else WARN if WARN in levels else None
    return graded(
        "distribution_shift", level,
        f"centroid cosine distance {shift:.4f} (warn > {config.centroid_warn}, error > {config.centroid_error}); "
        f"mean norm change {change:.2%} (warn > {config.norm_warn:.0%}, error > {config.norm_error:.0%})",
        metadata={"centroid_distance": round(shift, 6), "mean_norm": round(mean_norm, 6),
                  "baseline_mean_norm": round(base_norm, 6), "norm_change": round(change, 6)},
    )


def trend_table(series: dict[str, list[dict]], digits: int = 5) -> str:
    """A Markdown table of the last evaluations: one row per evaluation, one column per metric."""
    stamps = sorted({p["at"] for points in series.values() for p in points})
    if not stamps:
        return "_no evaluations yet_"
    names = list(series)
    lines = ["| evaluated at (UTC) | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for at in stamps:
        cells = []
        for name in names:
            value = next((p["value"] for p in series[name] if p["at"] == at), None)
            cells.append("" if value is None else f"{value:.{digits}f}")
        lines.append(f"| {at[:19].replace('T', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
