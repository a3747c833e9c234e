"""What the checks remember between evaluations, in one SQLite file under EMBEDOPS_HOME.

* the distribution baseline of each (tenant, space), kept from the first materialization;
* the fixed neighbour queries of each (tenant, space) and their previous top-k results;
* a history of drift numbers, for the trend table in the check metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from embedops.core.sqlite import open_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS baselines (
  tenant TEXT NOT NULL, space_id TEXT NOT NULL, centroid BLOB NOT NULL, mean_norm REAL NOT NULL,
  rows INTEGER NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (tenant, space_id));
CREATE TABLE IF NOT EXISTS neighbours (
  tenant TEXT NOT NULL, space_id TEXT NOT NULL, queries TEXT NOT NULL, results TEXT,
  evaluated_at TEXT, PRIMARY KEY (tenant, space_id));
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, space_id TEXT NOT NULL,
  metric TEXT NOT NULL, value REAL NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_key ON history (tenant, space_id, metric, id);
"""


def state_dir(home: Path) -> Path:
    """The folder under EMBEDOPS_HOME that holds monitoring state (checks and pager)."""
    return home / "monitoring"


@dataclass(frozen=True)
class Baseline:
    centroid: np.ndarray
    mean_norm: float
    rows: int
    created_at: datetime


class MonitoringState:
    """Baselines, neighbour results and drift history. Safe to share between processes (WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = open_db(self.path, _SCHEMA)

    @classmethod
    def at(cls, home: Path) -> MonitoringState:
        return cls(state_dir(home) / "state.sqlite")

    def baseline(self, tenant: str, space_id: str) -> Baseline | None:
        row = self._conn.execute(
            "SELECT centroid, mean_norm, rows, created_at FROM baselines WHERE tenant=? AND space_id=?",
            (tenant, space_id),
        ).fetchone()
        if row is None:
            return None
        return Baseline(np.frombuffer(row[0], dtype=np.float64), row[1], row[2], datetime.fromisoformat(row[3]))

    def keep_baseline(self, tenant: str, space_id: str, centroid: np.ndarray, mean_norm: float, rows: int) -> bool:
        """Store the baseline unless one exists; True when this call stored it."""
        with self._conn:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO baselines VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, space_id, np.asarray(centroid, dtype=np.float64).tobytes(), float(mean_norm), rows,
                 datetime.now(UTC).isoformat()),
            )
        return cur.rowcount == 1

    def reset_baseline(self, tenant: str, space_id: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM baselines WHERE tenant=? AND space_id=?", (tenant, space_id))

    def neighbours(self, tenant: str, space_id: str) -> tuple[list[str], list[list[str]] | None] | None:
        """The fixed queries and the previous top-k chunk ids per query (None before the first run)."""
        row = self._conn.execute(
            "SELECT queries, results FROM neighbours WHERE tenant=? AND space_id=?", (tenant, space_id)
        ).fetchone()
        if row is None:
            return None
        return json.loads(row[0]), (json.loads(row[1]) if row[1] else None)

    def keep_neighbours(
        self, tenant: str, space_id: str, queries: list[str], results: list[list[str]] | None
    ) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO neighbours VALUES (?, ?, ?, ?, ?)",
                (tenant, space_id, json.dumps(queries), json.dumps(results) if results is not None else None,
                 datetime.now(UTC).isoformat()),
            )

    def forget_neighbour_results(self, tenant: str, space_id: str) -> None:
        """Keep the fixed queries but drop the previous top-k: the next evaluation records them afresh."""
        with self._conn:
            self._conn.execute(
                "UPDATE neighbours SET results = NULL WHERE tenant=? AND space_id=?", (tenant, space_id)
            )

    def record(self, tenant: str, space_id: str, values: dict[str, float]) -> None:
        """Append one evaluation's numbers to the drift history."""
        now = datetime.now(UTC).isoformat()
        with self._conn:
            self._conn.executemany(
                "INSERT INTO history (tenant, space_id, metric, value, at) VALUES (?, ?, ?, ?, ?)",
                [(tenant, space_id, k, float(v), now) for k, v in values.items()],
            )

    def history(self, tenant: str, space_id: str, metric: str, last: int) -> list[dict[str, Any]]:
        """The last ``last`` values of a metric, oldest first."""
        rows = self._conn.execute(
            "SELECT at, value FROM history WHERE tenant=? AND space_id=? AND metric=? ORDER BY id DESC LIMIT ?",
            (tenant, space_id, metric, last),
        ).fetchall()
        return [{"at": at, "value": value} for at, value in reversed(rows)]

    def close(self) -> None:
        self._conn.close()
