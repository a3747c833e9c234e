"""The change log answers "which documents changed from version A to B" only when every version between
has a listed record; anything else (a gap, an unlisted change, a table written whole) sends the caller back
to comparing whole columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.core.changelog import MAX_LISTED, ChangeLog, consumed_version

URL = "/data/tables/source_documents/acme.lance"


@pytest.fixture
def log(tmp_path: Path) -> ChangeLog:
    return ChangeLog(f"sqlite:///{tmp_path / 'control.sqlite'}")


def test_the_union_of_a_chain_of_records(log: ChangeLog) -> None:
    log.record(URL, 4, 3, ["a.md", "b.md"])
    log.record(URL, 5, 4, ["c.md"])
    log.record(URL, 6, 5, ["a.md"])

    assert log.changed_since(URL, 3, 6) == {"a.md", "b.md", "c.md"}
    assert log.changed_since(URL, 4, 6) == {"a.md", "c.md"}
    assert log.changed_since(URL, 6, 6) == set()
    assert log.changed_since("/data/tables/source_documents/other.lance", 3, 6) is None  # another table


@pytest.mark.parametrize(
    ("records", "since", "now"),
    [
        ([(4, 3, ["a.md"]), (6, 5, ["b.md"])], 3, 6),  # version 5 has no record (a crash between commit and record)
        ([(4, 3, ["a.md"]), (5, 4, None)], 3, 5),  # too many documents to list
        ([(5, 3, ["a.md"])], 4, 5),  # the chain jumps over the version last consumed
        ([(4, 3, ["a.md"])], None, 4),  # nothing consumed yet
        ([(4, 3, ["a.md"])], 5, 4),  # consumed a version newer than the table's
        ([(4, 3, [f"d{i}" for i in range(MAX_LISTED)]), (5, 4, ["more.md"])], 3, 5),  # union too large
    ],
)
def test_anything_not_known_from_the_records_is_none(
    log: ChangeLog, records: list[tuple[int, int, list[str] | None]], since: int | None, now: int
) -> None:
    for version, base, ids in records:
        log.record(URL, version, base, ids)
    assert log.changed_since(URL, since, now) is None


def test_a_table_written_whole_forgets_its_records(log: ChangeLog) -> None:
    log.record(URL, 4, 3, ["a.md"])
    log.forget(URL)
    assert log.changed_since(URL, 3, 4) is None


@pytest.mark.parametrize(
    ("recorded", "own", "expected"),
    [
        ({"config_hash": "h", "table_version": 7, "source_version": 3, "quarantined": 0}, 7, 3),
        ({"config_hash": "other", "table_version": 7, "source_version": 3}, 7, None),  # another recipe
        ({"config_hash": "h", "table_version": 6, "source_version": 3}, 7, None),  # someone else wrote the table
        ({"config_hash": "h", "table_version": 7, "source_version": 3, "quarantined": 2}, 7, None),  # retry those
        ({"config_hash": "h", "table_version": 7, "source_version": 3, "stale_rows": 1}, 7, None),
        ({"config_hash": "h", "table_version": 7}, 7, None),  # never recorded what it consumed
        ({}, None, None),
    ],
)
def test_the_version_a_step_last_consumed(recorded: dict, own: int | None, expected: int | None) -> None:
    assert consumed_version(recorded, "h", own, "source_version") == expected
