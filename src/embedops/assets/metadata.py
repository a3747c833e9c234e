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


def recorded(instance: dg.DagsterInstance, asset: str, partition: str) -> Mapping[str, dg.MetadataValue]:
    """The metadata of ``partition``'s latest materialization of ``asset`` (this run's, in a pipeline run
    once the step ran), or nothing when it has none."""
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    )
    if not found.records or found.records[0].asset_materialization is None:
        return {}
    return found.records[0].asset_materialization.metadata


def numbers(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Only the numbers of recorded metadata (counts, versions, durations)."""
    values = {k: getattr(v, "value", v) for k, v in metadata.items()}
    return {k: v for k, v in values.items() if type(v) in (int, float)}


def still_current(metadata: Mapping[str, Any], config_hash: str, versions: Mapping[str, int | None]) -> bool:
    """Whether a step's recorded materialization is still what it would build: the same recipe and, for
    each recorded version key (its own ``table_version``, the upstream's), the same version now.
    Anything unknown (no record, no version) is not current."""
    values = {k: getattr(v, "value", v) for k, v in metadata.items()}
    if values.get("config_hash") != config_hash:
        return False
    return all(now is not None and now >= 0 and values.get(key) == now for key, now in versions.items())


def carried(metadata: Mapping[str, dg.MetadataValue], keys: Sequence[str]) -> dict[str, dg.MetadataValue]:
    """These keys of a previous materialization's metadata, as they were recorded."""
    return {k: metadata[k] for k in keys if k in metadata}
