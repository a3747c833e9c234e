"""The registry: which tenants exist and where their sources are, and the search traffic log.

Two tables of the control database (EMBEDOPS_DATABASE_URL). Dagster's dynamic partitions say which
tenant partitions exist; the registry says where each tenant's documents come from.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select

from embedops.core import control
from embedops.core.cdc import is_table_location
from embedops.core.control import searches, tenants
from embedops.core.dataplane import is_remote
from embedops.core.tenants import validate_tenant
from embedops.errors import UnknownTenantError


class Registry:
    def __init__(self, database: str | Engine) -> None:
        self._engine = control.open_engine(database)

    def add_tenant(self, name: str, source: str | Path) -> None:
        """Register the tenant's sources: a folder (kept as its absolute path), an object-store URL or a table
        source's location (core/cdc.py)."""
        validate_tenant(name)
        remote = is_remote(str(source)) or is_table_location(source)
        location = str(source).rstrip("/") if remote else str(Path(source).resolve())
        with self._engine.begin() as conn:
            control.upsert(
                conn, tenants,
                {"name": name, "source_dir": location, "added_at": datetime.now(UTC).isoformat()},
                keys=["name"], update=["source_dir"],
            )

    def source_dir(self, name: str, default_root: Path | None = None) -> str:
        """Where the tenant's sources are, registered, else ``<default_root>/<tenant>``: a folder's absolute
        path or an object-store URL (``s3://bucket/prefix``), as ``core.sources`` reads both."""
        validate_tenant(name)
        with self._engine.connect() as conn:
            found = conn.execute(select(tenants.c.source_dir).where(tenants.c.name == name)).scalar()
        if found is not None:
            return str(found)
        if default_root is not None:
            return str(default_root / name)
        raise UnknownTenantError(
            f"tenant {name!r} is not registered; run `embedops ingest --tenant {name} --source DIR`"
        )

    def tenants(self) -> dict[str, str]:
        """Every registered tenant with where its sources are (a folder path or an object-store URL)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(tenants.c.name, tenants.c.source_dir).order_by(tenants.c.name)).all()
        return {n: str(s) for n, s in rows}

    def log_search(self, tenant: str, space: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(searches).values(tenant=tenant, space=space, at=datetime.now(UTC).isoformat()))

    def search_counts(self, since: timedelta = timedelta(days=7)) -> dict[str, int]:
        """Queries per tenant in the window: the hotness that orders backfills."""
        cutoff = (datetime.now(UTC) - since).isoformat()
        query = select(searches.c.tenant, func.count()).where(searches.c.at >= cutoff).group_by(searches.c.tenant)
        with self._engine.connect() as conn:
            return {t: int(n) for t, n in conn.execute(query)}

    def close(self) -> None:
        """Nothing to close: connections return to the process's pool after each call."""
