"""Metadata a person reads at a glance in the UI: lists as tables (first 50, beside their total),
folders and files as paths, object-store places as URLs, and no empty lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from embedops.core.dataplane import is_remote
from embedops.errors import redacted

SHOWN = 50
_TYPES = {bool: "bool", int: "int", float: "float"}


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def table_of(items: Sequence[Any], limit: int = SHOWN) -> dg.TableMetadataValue:
    """The first ``limit`` items as a table: one ``id`` column for plain values, a column per key for dicts."""
    rows = [item if isinstance(item, dict) else {"id": item} for item in items[:limit]]
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    columns = [
        dg.TableColumn(name, next((_TYPES[type(r[name])] for r in rows if type(r.get(name)) in _TYPES), "string"))
        for name in names
    ]
    records = [dg.TableRecord({n: _cell(r.get(n)) for n in names}) for r in rows]
    return dg.MetadataValue.table(records, dg.TableSchema(columns=columns))


def listing(name: str, items: Sequence[Any]) -> dict[str, Any]:
    """``{name: table, name_total: n}``, or only the total when there is nothing to list."""
    return {f"{name}_total": len(items), **({name: table_of(items)} if items else {})}


def plain(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Recorded metadata as plain values (tables back to lists), for commands and their JSON."""
    return {
        k: listed(v) if isinstance(v, dg.TableMetadataValue) else getattr(v, "value", v) for k, v in metadata.items()
    }


def listed(value: Any) -> list[Any]:
    """A table written by ``table_of`` (or a JSON list) read back as the list it was made from."""
    if isinstance(value, dg.TableMetadataValue):
        rows = [dict(r.data) for r in value.records]
        return [r["id"] for r in rows] if rows and list(rows[0]) == ["id"] else rows
    inner = getattr(value, "value", value)
    return list(inner) if isinstance(inner, list | tuple) else []


def table_metadata(latest: tuple[str, int | None] | None) -> dict[str, Any]:
    """A materialization's table: its place (a folder path or a URL) and version (``TableStore.latest``)."""
    if latest is None:
        return {}
    url, version = latest
    place = dg.MetadataValue.url(redacted(url)) if is_remote(url) else dg.MetadataValue.path(url)
    return {"table": place, "table_version": version if version is not None else -1}
