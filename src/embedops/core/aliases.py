"""The LanceDB store's alias pointers (alias -> space_id), one row each in the control database.

A move is one single-row statement, so a reader sees the old pointer or the new one; a
compare-and-set moves the pointer only from the space the caller last saw.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select, update

from embedops.core import control
from embedops.core.control import aliases


class AliasBook:
    """Where each alias points, shared by every process and host on the same control database."""

    def __init__(self, database: str | Engine) -> None:
        self._engine = control.open_engine(database)

    def get(self, alias: str) -> str | None:
        with self._engine.connect() as conn:
            found = conn.execute(select(aliases.c.space_id).where(aliases.c.alias == alias)).scalar()
        return None if found is None else str(found)

    def all(self) -> dict[str, str]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(aliases.c.alias, aliases.c.space_id).order_by(aliases.c.alias)).all()
        return {a: s for a, s in rows}

    def set(self, alias: str, space_id: str) -> None:
        """Point ``alias`` at ``space_id``, wherever it pointed."""
        values = {"alias": alias, "space_id": space_id, "updated_at": datetime.now(UTC).isoformat()}
        with self._engine.begin() as conn:
            control.upsert(conn, aliases, values, keys=["alias"], update=["space_id", "updated_at"])

    def compare_and_set(self, alias: str, expected: str | None, space_id: str) -> bool:
        """Point ``alias`` at ``space_id`` only if it points at ``expected`` (None: nowhere); True when moved."""
        now = datetime.now(UTC).isoformat()
        with self._engine.begin() as conn:
            if expected is None:
                values = {"alias": alias, "space_id": space_id, "updated_at": now}
                return control.upsert(conn, aliases, values, keys=["alias"]) == 1
            moved = conn.execute(
                update(aliases)
                .where(aliases.c.alias == alias, aliases.c.space_id == expected)
                .values(space_id=space_id, updated_at=now)
            )
            return moved.rowcount == 1
