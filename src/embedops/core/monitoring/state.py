"""What the checks remember between evaluations, in the control database (EMBEDOPS_DATABASE_URL).

* the distribution baseline of each (tenant, space), kept from the first materialization;
* the fixed neighbour queries of each (tenant, space) and their previous top-k results;
* a history of drift numbers, for the trend table in the check metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, insert, select, update

from embedops.core import control
from embedops.core.control import baselines, drift_history, neighbours
from embedops.core.settings import Settings


@dataclass(frozen=True)
class Baseline:
    centroid: np.ndarray
    mean_norm: float
    rows: int
    created_at: datetime


class MonitoringState:
    """Baselines, neighbour results and drift history. Safe to share between processes and hosts."""

    def __init__(self, database: str | Engine) -> None:
        self._engine = control.open_engine(database)

    @classmethod
    def at(cls, settings: Settings) -> MonitoringState:
        """The monitoring state in the control database the settings name."""
        return cls(settings.control_url)

    def baseline(self, tenant: str, space_id: str) -> Baseline | None:
        b = baselines.c
        query = select(b.centroid, b.mean_norm, b.rows, b.created_at).where(b.tenant == tenant, b.space_id == space_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        centroid = np.frombuffer(bytes(row[0]), dtype=np.float64)
        return Baseline(centroid, float(row[1]), int(row[2]), datetime.fromisoformat(row[3]))

    def keep_baseline(self, tenant: str, space_id: str, centroid: np.ndarray, mean_norm: float, rows: int) -> bool:
        """Store the baseline unless one exists; True when this call stored it."""
        values = {
            "tenant": tenant, "space_id": space_id, "centroid": np.asarray(centroid, dtype=np.float64).tobytes(),
            "mean_norm": float(mean_norm), "rows": int(rows), "created_at": datetime.now(UTC).isoformat(),
        }
        with self._engine.begin() as conn:
            return control.upsert(conn, baselines, values, keys=["tenant", "space_id"]) == 1

    def reset_baseline(self, tenant: str, space_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(baselines).where(baselines.c.tenant == tenant, baselines.c.space_id == space_id))

    def neighbours(self, tenant: str, space_id: str) -> tuple[list[str], list[list[str]] | None] | None:
        """The fixed queries and the previous top-k chunk ids per query (None before the first run)."""
        n = neighbours.c
        with self._engine.connect() as conn:
            row = conn.execute(select(n.queries, n.results).where(n.tenant == tenant, n.space_id == space_id)).first()
        if row is None:
            return None
        return json.loads(row[0]), (json.loads(row[1]) if row[1] else None)

    def keep_neighbours(
        self, tenant: str, space_id: str, queries: list[str], results: list[list[str]] | None
    ) -> None:
        values = {
            "tenant": tenant, "space_id": space_id, "queries": json.dumps(queries),
            "results": json.dumps(results) if results is not None else None,
            "evaluated_at": datetime.now(UTC).isoformat(),
        }
        with self._engine.begin() as conn:
            control.upsert(
                conn, neighbours, values, keys=["tenant", "space_id"], update=["queries", "results", "evaluated_at"]
            )

    def forget_neighbour_results(self, tenant: str, space_id: str) -> None:
        """Keep the fixed queries but drop the previous top-k: the next evaluation records them afresh."""
        n = neighbours.c
        with self._engine.begin() as conn:
            conn.execute(update(neighbours).where(n.tenant == tenant, n.space_id == space_id).values(results=None))

    def record(self, tenant: str, space_id: str, values: dict[str, float]) -> None:
        """Append one evaluation's numbers to the drift history."""
        if not values:
            return
        now = datetime.now(UTC).isoformat()
        rows = [
            {"tenant": tenant, "space_id": space_id, "metric": k, "value": float(v), "at": now}
            for k, v in values.items()
        ]
        with self._engine.begin() as conn:
            conn.execute(insert(drift_history), rows)

    def history(self, tenant: str, space_id: str, metric: str, last: int) -> list[dict[str, Any]]:
        """The last ``last`` values of a metric, oldest first."""
        h = drift_history.c
        query = (
            select(h.at, h.value)
            .where(h.tenant == tenant, h.space_id == space_id, h.metric == metric)
            .order_by(h.id.desc())
            .limit(last)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{"at": at, "value": value} for at, value in reversed(rows)]

    def close(self) -> None:
        """Nothing to close: connections return to the process's pool after each call."""
