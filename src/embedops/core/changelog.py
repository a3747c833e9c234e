"""What each committed version of a materialized table changed, by document, kept in the control database.

A step that commits a change to its table (``TableStore.apply`` or ``delete``) records the documents whose rows the
commit changed, the version it made and the version it was applied on. The step downstream, which last consumed
version A of that table and now finds version B, asks ``changed_since(A, B)``: when every version from A to B has a
record, it gets the union of their documents and compares only those documents' rows; when any link is missing (a
new table was written whole, a change too large to list, a record lost to a crash between the commit and the
record) it gets None, and compares whole id and hash columns as before. A record is only ever a shortcut: without
it the answer is the same, found the slow way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, select

from embedops.core import control
from embedops.core.control import version_changes

MAX_LISTED = 2000  # a change of more documents is recorded as unlisted: downstream compares whole columns
KEEP_VERSIONS = 100  # records of older versions of a table are removed as new ones are written


class ChangeLog:
    """The ``version_changes`` records of the control database (``EMBEDOPS_DATABASE_URL``), by table URL."""

    def __init__(self, database: str | Engine) -> None:
        self._engine = control.open_engine(database)

    def record(self, table: str, version: int, base_version: int | None, doc_ids: Iterable[str] | None) -> None:
        """Version ``version`` of ``table`` (its URL) changed the rows of ``doc_ids`` of version ``base_version``
        (``doc_ids`` None: not listed). Nothing is recorded without a base version."""
        if base_version is None:
            return
        listed = sorted(set(doc_ids)) if doc_ids is not None else None
        if listed is not None and len(listed) > MAX_LISTED:
            listed = None
        values = {"table_url": table, "version": int(version), "base_version": int(base_version),
                  "doc_ids": None if listed is None else json.dumps(listed),
                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
        with control.serialised(self._engine, f"table-changes:{table}") as conn:
            control.upsert(conn, version_changes, values, keys=["table_url", "version"],
                           update=["base_version", "doc_ids", "at"])
            conn.execute(delete(version_changes).where(and_(
                version_changes.c.table_url == table, version_changes.c.version <= int(version) - KEEP_VERSIONS,
            )))

    def forget(self, table: str) -> None:
        """Drop every record of ``table``: it was written whole (or made anew), so no chain may cross it."""
        with control.serialised(self._engine, f"table-changes:{table}") as conn:
            conn.execute(delete(version_changes).where(version_changes.c.table_url == table))

    def changed_since(self, table: str, since: int | None, now: int) -> set[str] | None:
        """The documents whose rows in ``table`` changed from version ``since`` to version ``now``, or None when
        that is not known from the records alone (the caller then compares whole columns)."""
        if since is None or since < 0 or since > now:
            return None
        if since == now:
            return set()
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(version_changes.c.version, version_changes.c.base_version, version_changes.c.doc_ids).where(
                    version_changes.c.table_url == table,
                    version_changes.c.version > since, version_changes.c.version <= now,
                )
            ).all()
        links = {int(version): (int(base), ids) for version, base, ids in rows}
        found: set[str] = set()
        at = now
        while at > since:
            link = links.get(at)
            if link is None or link[1] is None:
                return None
            found.update(json.loads(link[1]))
            at = link[0]
        return found if at == since and len(found) <= MAX_LISTED else None


def consumed_version(
    recorded: Mapping[str, Any], config_hash: str, own_version: int | None, upstream_key: str,
    own_key: str = "table_version",
) -> int | None:
    """The upstream version a step's last materialization consumed, when what the step wrote is still what that
    materialization left (same recipe, its own version, ``own_key``, unchanged) and nothing waits for a retry;
    else None. ``recorded`` is that materialization's metadata as plain values.
    """
    if recorded.get("config_hash") != config_hash or own_version is None or own_version < 0:
        return None
    if recorded.get(own_key) != own_version:
        return None
    if recorded.get("quarantined") or recorded.get("stale_rows") or recorded.get("model_failures"):
        return None
    found = recorded.get(upstream_key)
    return found if isinstance(found, int) and not isinstance(found, bool) and found >= 0 else None
