"""`embedops sources`: declare a table, load it, follow it, watch its slot and drop it, from the command line."""

from __future__ import annotations

import json

import pytest

from tests.cdc.tables import ENV, execute
from tests.postgres import PgServer

pytestmark = pytest.mark.postgres

DECLARE = ["sources", "add-postgres", "--tenant", "acme", "--url-env", ENV, "--table", "items",
           "--text-columns", "title,body", "--tenant-column", "org"]


def test_declare_load_follow_and_drop_a_table_from_the_cli(run, items: PgServer) -> None:  # type: ignore[no-untyped-def]
    execute(items, "CREATE TABLE bare (id integer, body text)")
    refused = run("sources", "add-postgres", "--tenant", "acme", "--url-env", ENV, "--table", "bare",
                  "--text-columns", "body")
    assert refused.exit_code == 2
    assert "`ALTER TABLE public.bare ADD PRIMARY KEY (id);`" in refused.output

    execute(items, "INSERT INTO items VALUES (1, 'Anvils', 'Anvils ship in crates.', 'acme'), "
            "(2, 'Gnomes', 'Gnomes ship in boxes.', 'globex')")
    declared = run(*DECLARE)
    assert declared.exit_code == 0, declared.output
    assert items.password not in declared.output
    loaded = json.loads(run("ingest", "--tenant", "acme", "--json").output)
    assert loaded["documents"] == 1

    execute(items, "UPDATE items SET body = 'Anvils ship in wooden crates.' WHERE id = 1")
    status = json.loads(run("sources", "status", "--json").output)
    assert status[0]["exists"] and status[0]["pending"]["changed"] == 1
    synced = json.loads(run("sources", "sync", "--tenant", "acme", "--json").output)
    assert synced["changed"] == 1 and synced["confirmed"]
    hits = json.loads(run("search", "wooden crates", "--tenant", "acme", "--json").output)["hits"]
    assert [h["doc_id"] for h in hits] == ["items/1"] and "wooden" in hits[0]["text"]

    kept = run("sources", "drop-slot", "--tenant", "acme")
    assert kept.exit_code == 2 and "--yes" in kept.output
    dropped = run("sources", "drop-slot", "--tenant", "acme", "--yes")
    assert dropped.exit_code == 0 and "dropped" in dropped.output
    assert json.loads(run("sources", "status", "--json").output)[0]["exists"] is False


def test_a_wrong_password_is_one_line_naming_the_variable_and_host(  # type: ignore[no-untyped-def]
    run, items: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, items.url.replace(items.password, "not-the-password"))
    failed = run(*DECLARE)
    assert failed.exit_code == 2
    lines = failed.output.strip().splitlines()
    assert len(lines) == 1 and ENV in lines[0] and f"127.0.0.1:{items.port}" in lines[0]
    assert "not-the-password" not in failed.output
