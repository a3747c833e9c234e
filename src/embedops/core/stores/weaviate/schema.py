"""Naming and layout of embedops data in Weaviate: collection, alias and object names, the property
list, index rows <-> object properties, and the space identity recorded in a collection's description.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from weaviate.classes.config import DataType, Property, Tokenization

from embedops.core.stores.base import INDEX_SCHEMA_FIELDS
from embedops.core.tables import Rows, batches
from embedops.errors import ConfigError, SpaceMismatchError

COLLECTION_PREFIX = "Chunks_"
VECTOR_NAME = "default"
_CHUNK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://embedops/chunk")
# A matched object is rewritten only when one of these differs; otherwise sync leaves it alone.
CHANGE_COLUMNS = ("text_hash", "config_hash", "source_checksum", "seq", "stale")
PAYLOAD_COLUMNS = tuple(name for name, _ in INDEX_SCHEMA_FIELDS)
_SPACE_ID = re.compile(r"^[0-9A-Za-z_]{1,200}$")
_ALIAS = re.compile(r"^[A-Za-z][0-9A-Za-z_]{0,200}$")

# Identifiers use "field" tokenization so a filter on them matches the whole value, not its words.
PROPERTIES = [
    Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD)
    if name == "text"
    else Property(name=name, data_type=DataType.TEXT, tokenization=Tokenization.FIELD)
    for name, dtype in INDEX_SCHEMA_FIELDS
    if pa.types.is_string(dtype)
] + [
    Property(name="seq", data_type=DataType.INT),
    Property(name="embedded_at", data_type=DataType.DATE),
    Property(name="stale", data_type=DataType.BOOL),
]


def chunk_uuid(chunk_id: str) -> uuid.UUID:
    """The Weaviate object UUID of a chunk: deterministic, so a re-run overwrites, never duplicates."""
    return uuid.uuid5(_CHUNK_NAMESPACE, chunk_id)


def collection_name(space_id: str) -> str:
    """The Weaviate collection holding the vectors of one space."""
    if not isinstance(space_id, str) or not _SPACE_ID.fullmatch(space_id):
        raise ConfigError(
            f"space id {space_id!r} cannot name a Weaviate collection: use letters, digits and '_' "
            "(space ids are short hex hashes such as 'a1b2c3d4e5f6')"
        )
    return COLLECTION_PREFIX + space_id


def alias_name(alias: str) -> str:
    """The Weaviate alias for an embedops alias: ``docs`` -> ``Docs``.

    Weaviate alias names follow collection-name rules (a letter, then letters, digits or '_') and
    Weaviate upper-cases their first letter, so ``docs`` and ``Docs`` are the same alias.
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise ConfigError(
            f"alias {alias!r} cannot name a Weaviate alias: use a letter followed by letters, digits "
            "or '_' (for example 'docs'); Weaviate stores it capitalised ('docs' -> 'Docs')"
        )
    return alias[0].upper() + alias[1:]


@dataclass(frozen=True)
class CollectionSpace:
    """A verified collection: its name and the space identity its description records."""

    collection: str
    space_id: str
    space_name: str
    dimension: int


def space_description(space_id: str, space_name: str, dimension: int) -> str:
    """The collection description that records a space's identity (read back by ``recorded_space``)."""
    record = {"embedops": 1, "space_id": space_id, "space_name": space_name, "dimension": dimension}
    return json.dumps(record, sort_keys=True)


def recorded_space(name: str, description: str | None) -> CollectionSpace:
    """The space identity collection ``name`` records in its description; refuses a foreign collection."""
    try:
        record = json.loads(description or "")
        return CollectionSpace(name, str(record["space_id"]), str(record["space_name"]), int(record["dimension"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise SpaceMismatchError(
            f"Weaviate collection {name} does not record an embedops space in its description "
            f"({description!r}); it was not created by embedops: drop it or use another server"
        ) from exc


def vector_dimension(rows: Rows) -> int | None:
    """The dimension of the ``vector`` column: its fixed list size, else the first vector's length."""
    vector_type = rows.schema.field("vector").type
    if pa.types.is_fixed_size_list(vector_type):
        return int(vector_type.list_size)
    first = next(batches(rows, ["vector"], size=1), None)
    if first is None or first.num_rows == 0:
        return None
    vector = first.column("vector")[0].as_py()
    return len(vector) if vector is not None else None


def change_keys(keys: pa.Table) -> list[tuple[Any, ...]]:
    """Each row's values of the columns whose change means a rewrite (``CHANGE_COLUMNS``), in row order."""
    return list(zip(*(keys.column(c).to_pylist() for c in CHANGE_COLUMNS), strict=True))


def to_properties(record: dict[str, Any]) -> dict[str, Any]:
    """An index row as Weaviate property values (a naive ``embedded_at`` is taken as UTC)."""
    props = dict(record)
    embedded_at = props["embedded_at"]
    if isinstance(embedded_at, datetime) and embedded_at.tzinfo is None:
        props["embedded_at"] = embedded_at.replace(tzinfo=UTC)
    return props


def from_properties(props: dict[str, Any]) -> dict[str, Any]:
    """Weaviate's property values as index-row values (UTC datetimes, plain ints)."""
    embedded_at = props.get("embedded_at")
    if isinstance(embedded_at, datetime):
        props["embedded_at"] = embedded_at.astimezone(UTC)
    if props.get("seq") is not None:
        props["seq"] = int(props["seq"])
    return props
