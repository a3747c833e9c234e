"""What a run has to redo: documents against their chunks, chunks against their embeddings (Arrow only)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from embedops.core.delta import document_changes, embedding_work, in_filter

STAMP = pa.timestamp("us", tz="UTC")


def _at(hour: int) -> datetime:
    return datetime(2026, 1, 1, hour, tzinfo=UTC)


def _docs(items: dict[str, tuple[str, int]]) -> pa.Table:
    return pa.table({"doc_id": pa.array(list(items), pa.string()),
                     "checksum": pa.array([c for c, _ in items.values()], pa.string()),
                     "modified_at": pa.array([_at(h) for _, h in items.values()], STAMP)})


def _chunks(items: list[tuple[str, str, str, int]]) -> pa.Table:
    doc, checksum, recipe, hour = zip(*items, strict=True) if items else ((), (), (), ())
    return pa.table({"doc_id": pa.array(doc, pa.string()), "source_checksum": pa.array(checksum, pa.string()),
                     "config_hash": pa.array(recipe, pa.string()),
                     "source_modified_at": pa.array([_at(h) for h in hour], STAMP)})


@pytest.mark.parametrize(
    ("docs", "chunks", "expected"),
    [
        ({"a": ("1", 1)}, [], {"added": ["a"], "changed": [], "deleted": [], "unchanged": 0, "touched": []}),
        ({"a": ("1", 1)}, [("a", "1", "r", 1), ("a", "1", "r", 1)],
         {"added": [], "changed": [], "deleted": [], "unchanged": 1, "touched": []}),
        ({"a": ("2", 1)}, [("a", "1", "r", 1)],
         {"added": [], "changed": ["a"], "deleted": [], "unchanged": 0, "touched": []}),
        ({}, [("a", "1", "r", 1)], {"added": [], "changed": [], "deleted": ["a"], "unchanged": 0, "touched": []}),
        ({"a": ("1", 2)}, [("a", "1", "r", 1)],
         {"added": [], "changed": [], "deleted": [], "unchanged": 1, "touched": ["a"]}),
        # one chunk of the document in another recipe: the document is changed
        ({"a": ("1", 1)}, [("a", "1", "r", 1), ("a", "1", "old", 1)],
         {"added": [], "changed": ["a"], "deleted": [], "unchanged": 0, "touched": []}),
    ],
)
def test_document_changes(docs: dict, chunks: list, expected: dict) -> None:
    found = document_changes(_docs(docs), _chunks(chunks), "r")
    assert {k: getattr(found, k) for k in expected} == expected


def _keys(rows: list[tuple[str, str, str]], stale: list[bool] | None = None) -> pa.Table:
    """(chunk_id, doc_id, text_hash) rows, the other key columns fixed."""
    table = pa.table({
        "chunk_id": [r[0] for r in rows], "doc_id": [r[1] for r in rows], "seq": pa.array(range(len(rows)), pa.int32()),
        "text_hash": [r[2] for r in rows], "source_checksum": ["c"] * len(rows), "config_hash": ["r"] * len(rows),
    })
    return table if stale is None else table.append_column("stale", pa.array(stale))


def test_embedding_work_is_the_new_chunks_and_every_chunk_of_a_document_that_lost_one() -> None:
    chunks = _keys([("a0", "a", "h0"), ("a1", "a", "h1"), ("b0", "b", "x0"), ("b1", "b", "x9"), ("c0", "c", "y")])
    embeddings = _keys([("a0", "a", "h0"), ("a1", "a", "h1"), ("b0", "b", "x0"), ("b2", "b", "x2"),
                        ("c0", "c", "y"), ("d0", "d", "z")], stale=[False, False, False, False, True, False])
    work = embedding_work(chunks, embeddings)
    # b lost b2 and gained b1: all of b again; c's only row is stale: retried; d is gone
    assert work.chunk_ids == ["b0", "b1", "c0"]
    assert work.redone_docs == ["b", "d"]


def test_embedding_work_of_an_unchanged_table_is_nothing() -> None:
    rows = _keys([("a0", "a", "h0"), ("b0", "b", "x0")])
    work = embedding_work(rows, rows.append_column("stale", pa.array([False, False])))
    assert (work.chunk_ids, work.redone_docs) == ([], [])


def test_in_filter_quotes_ids() -> None:
    assert in_filter("doc_id", ["it's.md", "a.md"]) == "doc_id IN ('a.md', 'it''s.md')"
    assert in_filter("doc_id", []) == "false"
