"""Finding index rows that disagree with what the pipeline materialized, for `embedops repair`.

The chunk_embeddings table is the recipe's output; every index row must equal one of its rows
(same provenance, same vector). Rows that differ are rewritten; rows the table does not know
(orphans, another space, duplicates) are deleted; table rows absent from the index are missing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from embedops.core.stores.base import PROVENANCE_FIELDS
from embedops.core.vectors import cosine_distances

VECTOR_TOLERANCE = 1e-4  # cosine distance a float32 round trip stays far below


@dataclass
class RepairPlan:
    rewrite: dict[str, str] = field(default_factory=dict)  # chunk_id -> reason
    delete: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.rewrite or self.delete or self.missing)

    def to_json(self) -> dict:
        return {"rewrite": self.rewrite, "delete": self.delete, "missing": self.missing}


def _cosine_distance(a: list[float] | None, b: list[float] | None) -> float:
    if a is None or b is None or len(a) != len(b):
        return 1.0
    x, y = np.asarray([a], dtype=np.float64), np.asarray([b], dtype=np.float64)
    if not np.isfinite(x).all():
        return 1.0
    return float(cosine_distances(x, y)[0])


def find_bad_rows(index: pa.Table, expected: pa.Table, space_id: str) -> RepairPlan:
    """Compare an index export (with vectors) with the materialized chunk_embeddings table."""
    want = {row["chunk_id"]: row for row in expected.to_pylist()}
    rows = index.to_pylist()
    counts = Counter(r["chunk_id"] for r in rows)
    plan = RepairPlan()
    for row in rows:
        chunk = row["chunk_id"]
        if counts[chunk] > 1:
            plan.delete[chunk] = f"{counts[chunk]} rows share this chunk_id"  # the sync re-inserts one
            continue
        if chunk not in want:
            plan.delete[chunk] = (
                f"row of space {row.get('space_id')!r}" if row.get("space_id") != space_id else "not in the ledger"
            )
            continue
        reference = want[chunk]
        wrong = [f for f in PROVENANCE_FIELDS if row.get(f) != reference.get(f)]
        if wrong:
            plan.rewrite[chunk] = f"provenance differs: {', '.join(wrong)}"
        elif _cosine_distance(row.get("vector"), reference.get("vector")) > VECTOR_TOLERANCE:
            plan.rewrite[chunk] = "vector differs from the materialized embedding"
    plan.missing = sorted(set(want) - set(counts))
    return plan
