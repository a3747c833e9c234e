"""The registry: which tenants exist and where their sources are, and the search traffic log.

A small SQLite file in EMBEDOPS_HOME. Dagster's dynamic partitions say which tenant partitions
exist; the registry says where each tenant's documents come from.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from embedops.core.sqlite import open_db
from embedops.core.tenants import validate_tenant
from embedops.errors import UnknownTenantError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, source_dir TEXT NOT NULL, added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS searches (tenant TEXT NOT NULL, space TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS searches_by_tenant ON searches (tenant, at);
"""


class Registry:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = open_db(self.path, _SCHEMA)

    def add_tenant(self, name: str, source_dir: Path) -> None:
        validate_tenant(name)
        with self._conn:
            self._conn.execute(
                "INSERT INTO tenants VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET source_dir=excluded.source_dir",
                (name, str(source_dir.resolve()), datetime.now(UTC).isoformat()),
            )

    def source_dir(self, name: str, default_root: Path | None = None) -> Path:
        """The tenant's source folder: registered, else ``<default_root>/<tenant>``."""
        validate_tenant(name)
        row = self._conn.execute("SELECT source_dir FROM tenants WHERE name = ?", (name,)).fetchone()
        if row:
            return Path(row[0])
        if default_root is not None:
            return default_root / name
        raise UnknownTenantError(
            f"tenant {name!r} is not registered; run `embedops ingest --tenant {name} --source DIR`"
        )

    def tenants(self) -> dict[str, Path]:
        return {n: Path(s) for n, s in self._conn.execute("SELECT name, source_dir FROM tenants ORDER BY name")}

    def log_search(self, tenant: str, space: str) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO searches VALUES (?, ?, ?)", (tenant, space, datetime.now(UTC).isoformat())
            )

    def search_counts(self, since: timedelta = timedelta(days=7)) -> dict[str, int]:
        """Queries per tenant in the window: the hotness that orders backfills."""
        cutoff = (datetime.now(UTC) - since).isoformat()
        rows = self._conn.execute(
            "SELECT tenant, count(*) FROM searches WHERE at >= ? GROUP BY tenant", (cutoff,)
        )
        return {t: int(n) for t, n in rows}

    def close(self) -> None:
        self._conn.close()
