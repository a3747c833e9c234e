"""A table to follow, on a throw-away PostgreSQL server with logical decoding (tests/postgres.py)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from embedops.core.cdc import TableSource
from tests.postgres import PgServer

ENV = "CDC_TEST_DATABASE_URL"
ITEMS = "CREATE TABLE items (id integer PRIMARY KEY, title text, body text, org text)"


def execute(server: PgServer, sql: str, *params: object) -> None:
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql, params)
    conn.close()


@contextmanager
def url_in_env(server: PgServer) -> Iterator[str]:
    """The server's URL in ENV, as a deployment would set it; the variable is removed after."""
    before = os.environ.get(ENV)
    os.environ[ENV] = server.url
    try:
        yield ENV
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


@pytest.fixture
def items(logical_postgres: PgServer) -> Iterator[PgServer]:
    """The logical server with an empty ``items`` table and its URL in CDC_TEST_DATABASE_URL."""
    execute(logical_postgres, ITEMS)
    with url_in_env(logical_postgres):
        yield logical_postgres


def source(tenant: str | None = None) -> TableSource:
    """``items`` as a source: title and body form the text; with ``tenant``, the rows whose org is it."""
    return TableSource(ENV, "items", "id", ("title", "body"), "org" if tenant else None, tenant)


def token() -> str:
    return secrets.token_hex(4)
