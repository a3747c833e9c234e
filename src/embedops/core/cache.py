"""The embedding cache: vectors keyed on sha256(model identity, exact text), in SQLite.

The key ignores where a chunk sits and how it was cut, so a re-chunking that leaves a chunk's text
unchanged, or the same text in another document or tenant, costs no model call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from embedops.core.sqlite import open_db

_BATCH = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, dim INTEGER NOT NULL,
    vector BLOB NOT NULL, created_at TEXT NOT NULL
);
"""


class EmbeddingCache:
    """Content-addressed store of vectors. Safe to share between processes (SQLite WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = open_db(self.path, _SCHEMA)

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[np.ndarray, datetime]]:
        """Vectors and the time they were computed, for the keys that are cached."""
        found: dict[str, tuple[np.ndarray, datetime]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _BATCH):
            part = unique[start : start + _BATCH]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(
                f"SELECT key, vector, created_at FROM vectors WHERE key IN ({marks})", part
            )
            for key, blob, created in rows:
                found[key] = (np.frombuffer(blob, dtype=np.float32), datetime.fromisoformat(created))
        return found

    def put_many(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> datetime:
        """Store vectors under their keys; returns the timestamp recorded for them."""
        now = datetime.now(UTC)
        rows = [
            (key, model, int(vec.shape[0]), np.asarray(vec, dtype=np.float32).tobytes(), now.isoformat())
            for key, vec in items
        ]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)", rows)
        return now

    def evict(self, keys: Sequence[str]) -> int:
        """Forget the vectors of ``keys`` so the model computes them again; returns how many were cached."""
        unique = list(dict.fromkeys(keys))
        removed = 0
        with self._conn:
            for start in range(0, len(unique), _BATCH):
                part = unique[start : start + _BATCH]
                cur = self._conn.execute(f"DELETE FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
                removed += cur.rowcount
        return removed

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
