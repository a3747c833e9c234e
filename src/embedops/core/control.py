"""The control database: every control table, opened the same way from EMBEDOPS_DATABASE_URL.

SQLAlchemy Core on SQLite (the embedded default, ``<EMBEDOPS_HOME>/control.sqlite``) or PostgreSQL
(production, ``postgresql://user:password@host:port/db`` through psycopg2). One engine per URL per
process: a forked child (Dagster runs steps in subprocesses) drops the engines it inherited without
closing their connections, which belong to the parent, and opens its own.

- SQLite runs in WAL with a busy timeout, so processes share the file; ``serialised`` transactions
  start with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented pysqlite pattern), others with ``BEGIN``.
- PostgreSQL: ``serialised`` transactions take an advisory transaction lock on their name.
- A database that cannot be reached (server down, wrong host, port or password) raises
  ``StateUnreachableError`` naming EMBEDOPS_DATABASE_URL and the host:port, never the password.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    func,
    literal_column,
    make_url,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.exc import ArgumentError

from embedops.errors import ConfigError, StateUnreachableError

SETTING = "EMBEDOPS_DATABASE_URL"
CONNECT_TIMEOUT_S = 5  # a dead host fails fast
SQLITE_BUSY_TIMEOUT_S = 60

metadata = MetaData()

# -- registry -----------------------------------------------------------------------------------
tenants = Table(
    "tenants", metadata,
    Column("name", Text, primary_key=True),
    Column("source_dir", Text, nullable=False),
    Column("added_at", Text, nullable=False),
)
searches = Table(
    "searches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("space", Text, nullable=False),
    Column("at", Text, nullable=False),
    Index("searches_by_tenant", "tenant", "at"),
)
# -- manifest -----------------------------------------------------------------------------------
spaces = Table(
    "spaces", metadata,
    Column("name", Text, primary_key=True),
    Column("space_id", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("auto_cutover", Boolean, nullable=False, default=True),
    Column("declared_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)
alias_history = Table(
    "alias_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alias", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("from_space", Text),
    Column("from_space_id", Text),
    Column("to_space", Text, nullable=False),
    Column("to_space_id", Text, nullable=False),
    Column("who", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("gate", Text, nullable=False),
    Column("status", Text, nullable=False),
    sqlite_autoincrement=True,
)
evaluations = Table(
    "evaluations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("space", Text, nullable=False),
    Column("space_id", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("golden", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("numbers", Text, nullable=False),
    sqlite_autoincrement=True,
)
# -- monitoring state ---------------------------------------------------------------------------
baselines = Table(
    "baselines", metadata,
    Column("tenant", Text, primary_key=True),
    Column("space_id", Text, primary_key=True),
    Column("centroid", LargeBinary, nullable=False),
    Column("mean_norm", Float, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("created_at", Text, nullable=False),
)
neighbours = Table(
    "neighbours", metadata,
    Column("tenant", Text, primary_key=True),
    Column("space_id", Text, primary_key=True),
    Column("queries", Text, nullable=False),
    Column("results", Text),
    Column("evaluated_at", Text),
)
drift_history = Table(
    "drift_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("space_id", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("value", Float, nullable=False),
    Column("at", Text, nullable=False),
    Index("drift_history_by_key", "tenant", "space_id", "metric", "id"),
    sqlite_autoincrement=True,
)
# -- pager --------------------------------------------------------------------------------------
incidents = Table(
    "incidents", metadata,
    Column("dedup_key", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("sent_at", Text),
    sqlite_autoincrement=True,
)
# -- LanceDB aliases and run leases -------------------------------------------------------------
aliases = Table(
    "aliases", metadata,
    Column("alias", Text, primary_key=True),
    Column("space_id", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)
leases = Table(
    "leases", metadata,
    Column("key", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("expires_at", Float, nullable=False),  # seconds since the epoch, by the database's clock
    Column("acquired_at", Float, nullable=False),
)
# -- version changes: what each committed version of a materialized table changed, by document -----------
version_changes = Table(
    "version_changes", metadata,
    Column("table_url", Text, primary_key=True),  # the table (``TableStore.url``): one per data plane and partition
    Column("version", Integer, primary_key=True, autoincrement=False),  # the version the change made
    Column("base_version", Integer, nullable=False),  # the version it was applied on
    Column("doc_ids", Text),  # a JSON list of the documents whose rows changed; NULL: too many to list
    Column("at", Text, nullable=False),
)

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_ready: set[int] = set()  # id() of engines whose tables exist


def _after_fork_in_child() -> None:
    for engine in _engines.values():
        engine.dispose(close=False)  # the parent's connections: leave them to the parent
    _engines.clear()
    _ready.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def open_engine(target: str | Engine) -> Engine:
    """The engine for a control URL (one per URL per process), its tables created on first use."""
    if isinstance(target, Engine):
        engine = target
    else:
        with _lock:
            if target not in _engines:
                _engines[target] = _create(target)
            engine = _engines[target]
    if id(engine) not in _ready:
        with serialised(engine, "create-all") as conn:
            metadata.create_all(conn)
        _ready.add(id(engine))
    return engine


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"{SETTING} is not an SQLite or PostgreSQL URL; set it to sqlite:////path/control.sqlite or "
            "postgresql://user:password@host:port/database"
        )
    return parsed


def _create(url: str) -> Engine:
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})
        _sqlite_events(engine)
    else:
        parsed = parsed.set(drivername="postgresql+psycopg2")
        engine = create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    where = _place(parsed)

    @event.listens_for(engine, "handle_error")
    def unreachable(context: ExceptionContext) -> None:
        if context.connection is None or context.is_disconnect:
            reason = _reason(str(context.original_exception), parsed.password)
            raise StateUnreachableError(
                f"cannot reach the control database at {where} ({SETTING}): {reason}; start it or fix the setting"
            ) from None

    return engine


def _sqlite_events(engine: Engine) -> None:
    """WAL, a busy timeout, and transactions begun by embedops (``BEGIN IMMEDIATE`` when serialised)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite begins nothing by itself; on_begin does
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("embedops_serialised")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _place(url: URL) -> str:
    """Where the database is, fit for a message: host:port, or the SQLite file."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _reason(message: str, password: str | None) -> str:
    """The driver's reason on one line, without the password (drivers do not echo it; this makes sure)."""
    known = {
        "connection refused": "connection refused",
        "password authentication failed": "password authentication failed",
        "timeout expired": f"no answer within {CONNECT_TIMEOUT_S} s",
        "could not translate host name": "unknown host",
        "does not exist": "",
        "unable to open database file": "unable to open the database file",
        "the database system is shutting down": "the server is shutting down",
        "server closed the connection": "the server closed the connection",
    }
    lower = message.lower()
    reason = next((v or _last_clause(message) for k, v in known.items() if k in lower), _last_clause(message))
    return reason.replace(password, "***") if password else reason


def _last_clause(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return first.rsplit("failed: ", 1)[-1].strip()


@contextmanager
def serialised(engine: Engine, name: str) -> Iterator[Connection]:
    """One transaction that runs alone among those of the same ``name`` (all on SQLite, which has one writer).

    SQLite: ``BEGIN IMMEDIATE`` takes the write lock first. PostgreSQL: an advisory transaction lock on the name.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(embedops_serialised=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_lock_id(name))))
            yield conn


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"embedops:{name}".encode()).digest()[:8], "big", signed=True)


def upsert(
    conn: Connection, table: Table, values: dict[str, Any], keys: Sequence[str], update: Sequence[str] = (),
    where: ColumnElement[bool] | None = None,
) -> int:
    """Insert a row; on a key conflict update the ``update`` columns (when ``where`` holds), or leave it.

    Returns the number of rows inserted or updated (0: the row was there and was left alone).
    """
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table).values(**values)
    if update:
        done = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}, where=where
        )
    else:
        done = stmt.on_conflict_do_nothing(index_elements=list(keys))
    return int(conn.execute(done).rowcount)


def now_epoch(conn: Connection) -> float:
    """The database's clock in seconds since the epoch: one clock for every host that shares the database."""
    expr: ColumnElement[Any]
    if conn.dialect.name == "postgresql":
        expr = literal_column("extract(epoch from clock_timestamp())")
    else:
        expr = literal_column("(julianday('now') - 2440587.5) * 86400.0")
    return float(conn.execute(select(expr)).scalar_one())
