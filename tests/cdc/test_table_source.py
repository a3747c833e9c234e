"""The table as a source, without Dagster: declaration, the initial snapshot, the slot's changes, confirmation."""

from __future__ import annotations

import psycopg2
import pytest

from embedops.core import cdc
from embedops.core.cdc import TableSource
from embedops.errors import ConfigError, SourceUnreachableError
from tests.cdc.tables import ENV, execute, source
from tests.postgres import PgServer

pytestmark = pytest.mark.postgres


def texts(rows: list[cdc.Row]) -> dict[str, str | None]:
    return {r.doc_id: r.text for r in rows}


def test_location_round_trips_and_names_no_secret() -> None:
    spec = TableSource(ENV, "public.items", "id", ("title", "body"), "org", "acme")
    assert TableSource.from_location(spec.location) == spec
    assert spec.location.startswith(f"postgresql-table://{ENV}/")
    assert spec.doc_id(7) == "items/7" and spec.row_id("items/7") == "7" and spec.row_id("other/7") is None
    assert spec.slot != TableSource(ENV, "public.items", "id", ("title", "body"), "org", "globex").slot
    with pytest.raises(ConfigError, match="environment variable name"):
        TableSource("postgresql://u:p@h/db", "items", "id", ("body",))


def test_a_table_without_primary_key_is_refused_with_the_sql_that_fixes_it(items: PgServer) -> None:
    execute(items, "CREATE TABLE notes (id integer, body text)")
    with pytest.raises(ConfigError, match=r"`ALTER TABLE public.notes ADD PRIMARY KEY \(id\);`"):
        cdc.validate(TableSource(ENV, "notes", "id", ("body",)))
    execute(items, "ALTER TABLE public.notes ADD PRIMARY KEY (id)")  # the fix, as given
    execute(items, "ALTER TABLE notes REPLICA IDENTITY NOTHING")
    with pytest.raises(ConfigError, match=r"`ALTER TABLE public.notes REPLICA IDENTITY DEFAULT;`"):
        cdc.validate(TableSource(ENV, "notes", "id", ("body",)))
    execute(items, "ALTER TABLE public.notes REPLICA IDENTITY DEFAULT")
    assert cdc.validate(TableSource(ENV, "notes", "id", ("body",))).id_type == "integer"
    with pytest.raises(ConfigError, match="no column summary"):
        cdc.validate(TableSource(ENV, "notes", "id", ("summary",)))


def test_wrong_password_fails_in_one_line_naming_the_setting_and_host(
    items: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, items.url.replace(items.password, "wrong-secret-1"))
    with pytest.raises(SourceUnreachableError) as caught:
        cdc.validate(source())
    message = str(caught.value)
    assert ENV in message and f"127.0.0.1:{items.port}" in message and "\n" not in message
    assert "wrong-secret-1" not in message and items.password not in message
    monkeypatch.setenv(ENV, "host=127.0.0.1 password=s3cret-value user")  # not a URL: named, never quoted
    with pytest.raises(ConfigError, match=f"{ENV} does not hold a PostgreSQL URL") as bad:
        cdc.validate(source())
    assert "s3cret-value" not in str(bad.value)


def test_snapshot_with_concurrent_writes_has_no_gap_and_no_double(items: PgServer) -> None:
    """Writes committed while the initial load reads arrive through the slot, not in the snapshot; the snapshot
    plus the slot's changes equal a fresh full read of the final table."""
    spec = source()
    for i in range(1, 6):
        execute(items, "INSERT INTO items VALUES (%s, %s, %s, NULL)", i, f"title {i}", f"body {i}")

    def read_while_others_write(conn: psycopg2.extensions.connection) -> dict[str, str | None]:
        execute(items, "INSERT INTO items VALUES (6, 'title 6', 'body 6', NULL)")
        execute(items, "UPDATE items SET body = 'body 2 edited' WHERE id = 2")
        execute(items, "DELETE FROM items WHERE id = 3")
        return texts(cdc._read_all(spec, conn))

    _, snapshot = cdc.create_slot_and_snapshot(spec, read_while_others_write)
    assert snapshot == {f"items/{i}": f"title {i}\n\nbody {i}" for i in range(1, 6)}  # none of the writes
    execute(items, "UPDATE items SET title = 'title 4 edited' WHERE id = 4")  # after the load

    changes = cdc.pending_changes(spec)
    assert changes.changed == {"items/6", "items/2", "items/4"} and changes.deleted == {"items/3"}
    assert not changes.truncated and set(changes.committed_at) == changes.changed | changes.deleted
    applied = dict(snapshot)
    for doc_id in changes.deleted:
        applied.pop(doc_id, None)
    applied |= texts(cdc.read_rows(spec, [spec.row_id(d) or "" for d in changes.changed]))
    assert applied == texts(cdc.read_current(spec))

    assert not cdc.pending_changes(spec, changes.upto).empty  # peeking consumes nothing
    cdc.confirm(spec, changes.upto)
    assert cdc.pending_changes(spec).empty
    cdc.confirm(spec, changes.upto)  # confirming again (a replay) is harmless


def test_truncate_and_later_rows_and_other_tenants(items: PgServer) -> None:
    acme, globex = source("acme"), source("globex")
    execute(items, "INSERT INTO items VALUES (1, 'a', 'acme one', 'acme'), (2, 'g', 'globex two', 'globex')")
    assert cdc.read_table(acme)[0] is not None and cdc.read_table(globex)[0] is not None  # slots created
    assert cdc.read_table(acme)[0] is None  # the slot exists: no second snapshot
    execute(items, "INSERT INTO items VALUES (3, 'g', 'globex three', 'globex')")
    assert cdc.pending_changes(acme).empty and cdc.pending_changes(globex).changed == {"items/3"}
    execute(items, "TRUNCATE items")
    execute(items, "INSERT INTO items VALUES (4, 'a', 'acme four', 'acme')")
    after = cdc.pending_changes(acme)
    assert after.truncated and after.changed == {"items/4"} and not after.deleted
    assert texts(cdc.read_rows(acme, ["4", "2"])) == {"items/4": "a\n\nacme four"}  # globex's row is not acme's


def test_bad_rows_carry_their_reason() -> None:
    spec = source()
    assert cdc.row_document(spec, 1, (None, None)).problem == "empty document: title, body are NULL or blank"
    assert cdc.row_document(spec, 2, ("  ", "")).problem is not None
    assert "binary" in str(cdc.row_document(spec, 3, ("t", memoryview(b"\x00\x01"))).problem)
    assert cdc.row_document(spec, 4, (None, "only body")).text == "only body"


def test_slot_lag_grows_while_nobody_confirms_and_drop_slot_frees_it(items: PgServer) -> None:
    spec = source()
    cdc.read_table(spec)
    for i in range(50):
        execute(items, "INSERT INTO items VALUES (%s, 't', %s, NULL)", i, "x" * 1000)
    behind = cdc.slot_lag(spec)
    assert behind.exists and behind.unconfirmed_bytes > 50_000
    cdc.confirm(spec, cdc.pending_changes(spec).upto)
    assert cdc.slot_lag(spec).unconfirmed_bytes < behind.unconfirmed_bytes
    assert cdc.drop_slot(spec) and not cdc.slot_lag(spec).exists and not cdc.drop_slot(spec)
