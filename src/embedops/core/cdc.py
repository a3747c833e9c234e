"""Change data capture from a PostgreSQL table: the table as a tenant's source, kept in step through a slot.

A ``TableSource`` names a table (the URL comes from an environment variable, never stored or logged), its id
column, the text columns that form a document, and optionally a tenant column and the value of this tenant.
Document id = ``<table>/<id>``; document text = the non-empty text columns in the declared order, joined by
a blank line (title, blank line, body).

Each tenant of a table has its own logical replication slot (wal2json). The first read creates the slot and
reads the table in the snapshot exported at its creation, so every later change arrives through the slot and
none before it does twice. ``pending_changes`` peeks the slot (nothing is consumed); the caller applies the
named documents, reading their bodies by primary key (the latest state), and only after the index commit calls
``confirm``: a crash before that replays the same changes, which the idempotent apply absorbs.

The location kept in the registry is ``postgresql-table://ENV_VAR/table?id=...&text=a,b[&tenant_column=c&tenant=v]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from embedops.errors import ConfigError, SourceUnreachableError

SCHEME = "postgresql-table://"
TEXT_SEPARATOR = "\n\n"
PLUGIN = "wal2json"
CONNECT_TIMEOUT_S = 5
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
T = TypeVar("T")


def is_table_location(root: object) -> bool:
    return str(root).startswith(SCHEME)


@dataclass(frozen=True)
class TableSource:
    """A table as one tenant's source: which rows (all, or those whose tenant column holds ``tenant``),
    which column names a row, which columns form its text, and the environment variable holding the URL."""

    url_env: str
    table: str
    id_column: str
    text_columns: tuple[str, ...]
    tenant_column: str | None = None
    tenant: str | None = None

    def __post_init__(self) -> None:
        if not _ENV.match(self.url_env):
            raise ConfigError(f"{self.url_env!r} is not an environment variable name; name the variable that "
                              "holds the PostgreSQL URL (for example CRM_DATABASE_URL), not the URL itself")
        schema_table = self.table.split(".")
        names = [*schema_table, self.id_column, *self.text_columns, *filter(None, [self.tenant_column])]
        bad = [n for n in names if not _IDENT.match(n)]
        if bad or len(schema_table) > 2 or not self.text_columns:
            raise ConfigError(
                f"table source {self.table!r}: {', '.join(map(repr, bad)) or 'the text columns'} "
                "must be lower-case unquoted SQL names (letters, digits, '_'), and at least one text column is needed"
            )
        if (self.tenant_column is None) != (self.tenant is None):
            raise ConfigError(f"table source {self.table!r}: a tenant column needs the tenant's value in it, and a "
                              "tenant value needs the column; give both or neither")

    @property
    def name(self) -> str:
        """The table's name without its schema: the first segment of every document id."""
        return self.table.split(".")[-1]

    @property
    def qualified(self) -> str:
        return self.table if "." in self.table else f"public.{self.table}"

    @property
    def slot(self) -> str:
        """The replication slot of this tenant's rows: readable, unique per table and tenant value."""
        key = hashlib.sha256(f"{self.qualified}\0{self.tenant_column}\0{self.tenant}".encode()).hexdigest()[:8]
        readable = re.sub(r"[^a-z0-9_]", "_", f"{self.name}_{self.tenant or 'all'}".lower())[:40]
        return f"embedops_{readable}_{key}"

    @property
    def location(self) -> str:
        query: dict[str, str] = {"id": self.id_column, "text": ",".join(self.text_columns)}
        if self.tenant_column is not None and self.tenant is not None:
            query |= {"tenant_column": self.tenant_column, "tenant": self.tenant}
        return f"{SCHEME}{self.url_env}/{self.table}?{urlencode(query)}"

    @classmethod
    def from_location(cls, location: str) -> TableSource:
        if not is_table_location(location):
            raise ConfigError(f"{location!r} is not a table source location ({SCHEME}ENV_VAR/table?id=...&text=...)")
        path, _, query = location.removeprefix(SCHEME).partition("?")
        url_env, _, table = path.partition("/")
        args = {k: v[-1] for k, v in parse_qs(query).items()}
        return cls(url_env, table, args.get("id", ""), tuple(c for c in args.get("text", "").split(",") if c),
                   args.get("tenant_column"), args.get("tenant"))

    def doc_id(self, row_id: object) -> str:
        return f"{self.name}/{row_id}"

    def row_id(self, doc_id: str) -> str | None:
        """The id of the row a document id names; None for an id that is not of this table."""
        prefix = f"{self.name}/"
        return doc_id[len(prefix):] if doc_id.startswith(prefix) and len(doc_id) > len(prefix) else None

    def describe(self) -> str:
        where = f" where {self.tenant_column} = {self.tenant!r}" if self.tenant_column else ""
        return f"table {self.qualified}{where} (URL in ${self.url_env})"


# -- connections ---------------------------------------------------------------------------------------


def _url(source: TableSource) -> str:
    url = os.environ.get(source.url_env, "")
    if not url:
        raise ConfigError(f"the environment variable {source.url_env}, which holds the PostgreSQL URL of "
                          f"{source.describe()}, is not set; set it to postgresql://user:password@host:port/db")
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)  # a SQLAlchemy URL works as well


def _host(url: str) -> str:
    try:
        params = psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError:
        return "?"
    return f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"


def connect(source: TableSource, replication: bool = False) -> Any:
    """A connection to the source's database (a logical replication connection with ``replication``).
    A server that cannot be reached or refuses the login fails in one line naming the variable and the
    host, never the password."""
    url = _url(source)
    factory = psycopg2.extras.LogicalReplicationConnection if replication else None
    try:
        password = psycopg2.extensions.parse_dsn(url).get("password")
    except psycopg2.ProgrammingError:  # the message would quote the value, password and all
        raise ConfigError(f"the environment variable {source.url_env} does not hold a PostgreSQL URL; set it to "
                          "postgresql://user:password@host:port/db") from None
    try:
        conn = psycopg2.connect(url, connect_timeout=CONNECT_TIMEOUT_S, connection_factory=factory,
                                application_name="embedops-cdc")
    except psycopg2.OperationalError as exc:
        reason = " ".join(str(exc).split())
        if password:
            reason = reason.replace(password, "***")
        raise SourceUnreachableError(
            f"cannot connect to the PostgreSQL server {_host(url)} of ${source.url_env} ({reason}); "
            f"check the host, port, user and password in {source.url_env}"
        ) from exc
    if not replication:
        conn.autocommit = True
    return conn


@contextmanager
def connected(source: TableSource) -> Iterator[Any]:
    conn = connect(source)
    try:
        yield conn
    finally:
        conn.close()


# -- declaration -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableShape:
    """What validation learnt of the table: the SQL type of its id column."""

    id_type: str


def validate(source: TableSource, conn: Any | None = None) -> TableShape:
    """Refuse a table that cannot be followed, with the SQL that fixes it: logical decoding off, the table or
    a column missing, no primary key, a primary key without the id column, a REPLICA IDENTITY that cannot
    name a deleted row."""
    if conn is None:
        with connected(source) as own:
            return validate(source, own)
    with conn.cursor() as cur:
        cur.execute("SHOW wal_level")
        if cur.fetchone()[0] != "logical":
            raise ConfigError(
                f"the server of ${source.url_env} runs with wal_level other than logical, so its changes cannot "
                "be followed; run `ALTER SYSTEM SET wal_level = logical;` and restart it (managed services: turn on "
                "logical replication in the instance's parameters)"
            )
        cur.execute("SELECT to_regclass(%s)::oid, (SELECT relreplident FROM pg_class WHERE oid = to_regclass(%s))",
                    (source.qualified, source.qualified))
        oid, identity = cur.fetchone()
        if oid is None:
            raise ConfigError(f"{source.describe()} does not exist; create it or name another table")
        cur.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped", (oid,))
        types = dict(cur.fetchall())
        missing = [c for c in (source.id_column, *source.text_columns, source.tenant_column)
                   if c is not None and c not in types]
        if missing:
            raise ConfigError(f"{source.describe()} has no column {', '.join(missing)} (it has "
                              f"{', '.join(sorted(types))}); restore the column, or declare the source with the "
                              "columns it has (`embedops sources add-postgres`)")
        cur.execute("SELECT i.indisprimary, i.indisreplident, array_agg(a.attname::text) FROM pg_index i "
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indrelid = %s AND (i.indisprimary OR i.indisreplident) "
                    "GROUP BY i.indexrelid, i.indisprimary, i.indisreplident", (oid,))
        indexes = cur.fetchall()
    primary = next((cols for is_pk, _, cols in indexes if is_pk), None)
    table = source.qualified
    if primary is None:
        raise ConfigError(
            f"{source.describe()} has no primary key, so a changed or deleted row cannot be named; add one: "
            f"`ALTER TABLE {table} ADD PRIMARY KEY ({source.id_column});`"
        )
    if source.id_column not in primary:
        raise ConfigError(f"the primary key of {table} is ({', '.join(primary)}), without the id column "
                          f"{source.id_column}; declare the source with one of those columns as its id")
    replica = next((cols for _, is_ri, cols in indexes if is_ri), None)
    if identity == "n" or (identity == "i" and (replica is None or source.id_column not in replica)):
        raise ConfigError(
            f"the REPLICA IDENTITY of {table} does not carry {source.id_column}, so a deleted row cannot be named; "
            f"run `ALTER TABLE {table} REPLICA IDENTITY DEFAULT;`"
        )
    return TableShape(id_type=types[source.id_column])


# -- rows ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A row as a document: its id, its text (or why it has none), and the text's bytes size."""

    doc_id: str
    text: str | None
    problem: str | None = None


def row_document(source: TableSource, row_id: object, values: tuple[Any, ...]) -> Row:
    """A row's document text: its non-empty text columns in declared order, joined by a blank line."""
    doc_id = source.doc_id(row_id)
    parts = []
    for column, value in zip(source.text_columns, values, strict=True):
        if isinstance(value, bytes | memoryview):
            return Row(doc_id, None, f"column {column} holds binary data, not text; store text or leave it out")
        if value is not None and str(value).strip():
            parts.append(str(value))
    if not parts:
        return Row(doc_id, None, f"empty document: {', '.join(source.text_columns)} are NULL or blank")
    return Row(doc_id, TEXT_SEPARATOR.join(parts))


def _select(source: TableSource, where: sql.Composable | None = None) -> sql.Composed:
    conditions = [c for c in (where, _tenant_filter(source)) if c is not None]
    clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    return sql.SQL("SELECT {id}::text, {cols} FROM {table}{where} ORDER BY {id}").format(
        id=sql.Identifier(source.id_column),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in source.text_columns),
        table=sql.Identifier(*source.qualified.split(".")),
        where=clause,
    )


def _tenant_filter(source: TableSource) -> sql.Composable | None:
    if source.tenant_column is None:
        return None
    return sql.SQL("{} = {}").format(sql.Identifier(source.tenant_column), sql.Literal(source.tenant))


def _rows(source: TableSource, cur: Any) -> Iterator[Row]:
    for row_id, *values in cur:
        yield row_document(source, row_id, tuple(values))


def _read_all(source: TableSource, conn: Any) -> list[Row]:
    with conn.cursor() as cur:
        try:
            cur.execute(_select(source))
        except psycopg2.errors.UndefinedColumn as exc:
            raise _column_gone(source, exc) from exc
        return list(_rows(source, cur))


def read_rows(source: TableSource, row_ids: list[str], conn: Any | None = None) -> list[Row]:
    """The named rows as they are now (a row that is gone, or is another tenant's, is not returned)."""
    if not row_ids:
        return []
    if conn is None:
        with connected(source) as own:
            return read_rows(source, row_ids, own)
    shape = validate(source, conn)
    where = sql.SQL("{} = ANY(%s::text[]::{}[])").format(sql.Identifier(source.id_column), sql.SQL(shape.id_type))
    with conn.cursor() as cur:
        try:
            cur.execute(_select(source, where), (row_ids,))
        except psycopg2.errors.UndefinedColumn as exc:
            raise _column_gone(source, exc) from exc
        return list(_rows(source, cur))


def _column_gone(source: TableSource, exc: Exception) -> ConfigError:
    return ConfigError(f"{source.describe()} lost a column the source reads ({' '.join(str(exc).split())}); "
                       "restore the column, or declare the source again with the columns the table has now")


def missing_columns(source: TableSource) -> list[str]:
    """The declared columns the table no longer has (dropped or renamed)."""
    with connected(source) as conn, conn.cursor() as cur:
        cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
                    "AND NOT attisdropped", (source.qualified,))
        have = {name for (name,) in cur.fetchall()}
    declared = [source.id_column, *source.text_columns, *([source.tenant_column] if source.tenant_column else [])]
    return [c for c in declared if c not in have]


# -- the slot -----------------------------------------------------------------------------------------------


def slot_exists(source: TableSource, conn: Any | None = None) -> bool:
    if conn is None:
        with connected(source) as own:
            return slot_exists(source, own)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (source.slot,))
        return cur.fetchone() is not None


def create_slot_and_snapshot(source: TableSource, read: Callable[[Any], T] | None = None) -> tuple[str, T | list[Row]]:
    """Create the tenant's slot and read the table in the snapshot exported at its creation: every change
    committed after that snapshot arrives through the slot, none before it. ``read`` (given a connection in
    the snapshot) defaults to reading every row of the tenant. Returns the slot's consistent point (LSN)
    and what was read. The slot exists when this returns, also when ``read`` fails."""
    validate(source)
    replication = connect(source, replication=True)
    try:
        with replication.cursor() as rcur:
            rcur.execute(f"CREATE_REPLICATION_SLOT {source.slot} LOGICAL {PLUGIN} EXPORT_SNAPSHOT")
            _, consistent_point, snapshot, _ = rcur.fetchone()
        reader = connect(source)
        try:
            reader.autocommit = False
            with reader.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            result: T | list[Row] = read(reader) if read is not None else _read_all(source, reader)
            reader.rollback()
        finally:
            reader.close()
    finally:
        replication.close()  # the snapshot lives until here
    return str(consistent_point), result


def read_current(source: TableSource) -> list[Row]:
    """Every row of the tenant as the table is now (no slot is created)."""
    with connected(source) as conn:
        validate(source, conn)
        return _read_all(source, conn)


def read_table(source: TableSource) -> tuple[str | None, list[Row]]:
    """Every row of the tenant: in the snapshot of a new slot when the slot does not exist yet (the initial
    load), else as the table is now (changes since the slot's position arrive again and are idempotent).
    Returns the slot's consistent point when it was created here."""
    with connected(source) as conn:
        validate(source, conn)
        if slot_exists(source, conn):
            return None, _read_all(source, conn)
    lsn, rows = create_slot_and_snapshot(source)
    return lsn, rows  # type: ignore[return-value]


@dataclass
class Changes:
    """What the slot holds for a tenant up to ``upto``: the documents to read again, those to drop, whether
    the table was truncated (every document of the tenant leaves, the rows named after it come back), and
    the commit time of each document's last change. ``confirm(upto)`` once all of it is in the index."""

    upto: str
    changed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    truncated: bool = False
    committed_at: dict[str, datetime] = field(default_factory=dict)
    records: int = 0
    transactions: int = 0

    @property
    def empty(self) -> bool:
        return not (self.changed or self.deleted or self.truncated)

    def summary(self) -> dict[str, Any]:
        return {"upto_lsn": self.upto, "changed": len(self.changed), "deleted": len(self.deleted),
                "truncated": self.truncated, "transactions": self.transactions}


def current_lsn(source: TableSource) -> str:
    with connected(source) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_flush_lsn()::text")
        return str(cur.fetchone()[0])


def pending_changes(source: TableSource, upto: str | None = None, known: Container[str] | None = None) -> Changes:
    """The changes of the tenant's rows in transactions committed before ``upto`` (default: the WAL flushed so far:
    decoding reads no further, so confirming a later position could skip a change) that the
    slot still holds; nothing is consumed. With a tenant column, a change names a document when its row is
    this tenant's, or was: the old row's tenant is not always in the WAL, so an update or delete of a row now
    another's counts when the document is among ``known`` (the tenant's documents; None: every such change
    counts, and reading the row by id at apply time tells)."""
    with connected(source) as conn, conn.cursor() as cur:
        if upto is None:
            cur.execute("SELECT pg_current_wal_flush_lsn()::text")
            upto = str(cur.fetchone()[0])
        if not slot_exists(source, conn):
            raise ConfigError(f"the replication slot {source.slot} of {source.describe()} does not exist; read the "
                              "table once (`embedops ingest --tenant T`) to create it with its initial snapshot")
        cur.execute(
            "SELECT data FROM pg_logical_slot_peek_changes(%s, %s::pg_lsn, NULL, 'format-version', '2', "
            "'include-timestamp', '1', 'include-type-oids', '0', 'add-tables', %s)",
            (source.slot, upto, source.qualified),
        )
        changes = Changes(upto=upto)
        for (data,) in cur:
            _fold(source, changes, json.loads(data), known)
    return changes


def _fold(source: TableSource, changes: Changes, record: dict[str, Any], known: Container[str] | None) -> None:
    action = record.get("action")
    if action == "C":
        changes.transactions += 1
        return
    if action not in ("I", "U", "D", "T"):
        return
    changes.records += 1
    if action == "T":
        changes.truncated = True
        changes.changed.clear()
        changes.deleted.clear()
        return
    values = {c["name"]: c.get("value") for c in record.get("columns") or record.get("identity") or []}
    doc_id = source.doc_id(values.get(source.id_column))
    if source.tenant_column is not None and values.get(source.tenant_column) != source.tenant:
        if action == "I" or (known is not None and doc_id not in known):
            return  # another tenant's row (or a delete without the tenant column), not this tenant's document
    if action == "D":
        changes.deleted.add(doc_id)
        changes.changed.discard(doc_id)
    else:
        changes.changed.add(doc_id)
        changes.deleted.discard(doc_id)
    if record.get("timestamp"):
        changes.committed_at[doc_id] = datetime.fromisoformat(_iso(record["timestamp"]))


def _iso(stamp: str) -> str:
    """PostgreSQL's ``2026-12-02 17:22:39.49167+00`` in a form fromisoformat reads on every Python."""
    return re.sub(r"([+-]\d\d)$", r"\1:00", stamp)


def confirm(source: TableSource, lsn: str) -> None:
    """Tell the slot that everything committed before ``lsn`` is in the index: PostgreSQL may drop that WAL.
    Call it only after the index commit. A position the slot has passed already is left alone."""
    with connected(source) as conn, conn.cursor() as cur:
        cur.execute("SELECT confirmed_flush_lsn < %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
                    (lsn, source.slot))
        found = cur.fetchone()
        if found is not None and found[0]:
            cur.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (source.slot, lsn))


@dataclass(frozen=True)
class SlotLag:
    """How far the slot is behind the server: WAL it keeps from being removed, and WAL not yet confirmed."""

    slot: str
    exists: bool
    retained_bytes: int = 0
    unconfirmed_bytes: int = 0
    active: bool = False


def slot_lag(source: TableSource) -> SlotLag:
    with connected(source) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, active "
            "FROM pg_replication_slots WHERE slot_name = %s", (source.slot,))
        found = cur.fetchone()
    if found is None:
        return SlotLag(source.slot, exists=False)
    return SlotLag(source.slot, True, int(found[0] or 0), int(found[1] or 0), bool(found[2]))


def drop_slot(source: TableSource) -> bool:
    """Drop the tenant's slot (PostgreSQL frees the WAL it kept). The next read of the table creates a new slot
    with a new snapshot. False when there was no slot."""
    with connected(source) as conn, conn.cursor() as cur:
        if not slot_exists(source, conn):
            return False
        cur.execute("SELECT pg_drop_replication_slot(%s)", (source.slot,))
    return True
