"""What a run has to redo, found with Arrow compute over id and hash columns (never per row in Python
over the whole tenant), and the filters that take the old rows out in the same commit.

``document_changes`` compares the documents with the chunks they were last cut into; ``embedding_work``
compares the chunks with the embeddings made of them. Both return only the change, so a step that
changes one document of a million writes that document's rows and no others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from embedops.core.cache import EmbeddingCache
from embedops.core.changelog import MAX_LISTED, ChangeLog
from embedops.core.embedder import Embedder
from embedops.core.ingest import (
    CHUNK_COLUMNS,
    CHUNKS_SCHEMA,
    DOCUMENTS_PER_BATCH,
    Chunker,
    ChunkPlan,
    DocumentDiff,
    EmbeddingResult,
    embed_chunks,
)
from embedops.core.settings import DEFAULT_MAX_MODEL_FAILURE_SHARE
from embedops.core.spaces import SpaceSpec
from embedops.core.stores.base import index_schema
from embedops.core.tables import (
    Collector,
    Rows,
    TableStore,
    batches,
    columns,
    count,
    in_filter,
    where_in,
    worth_a_change,
)

# Above this many rows to pick out of a table, scan it in batches rather than give Lance an ``IN`` list. Measured
# on chunk_embeddings at 100,135 rows: an ``IN`` list of 2,000 doc ids 0.07 s, a scan of every column 0.1 s; so a
# change the change log lists (up to ``changelog.MAX_LISTED`` documents) is always read through the filter.
MAX_PICK_IDS = MAX_LISTED

_EMBEDDING_KEY = ["chunk_id", "seq", "text_hash", "source_checksum", "config_hash"]


@dataclass
class DocumentChanges:
    """Documents of this run against the chunks of the last materialization, by id.

    ``touched`` documents have the same text but a new modification time: their chunks are rewritten
    with the new time, and they count as unchanged.
    """

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    touched: list[str] = field(default_factory=list)

    @property
    def redo(self) -> list[str]:
        """The documents to chunk again."""
        return sorted(self.added + self.changed + self.touched)

    @property
    def size(self) -> int:
        return len(self.added) + len(self.changed) + len(self.deleted) + len(self.touched)


def document_changes(documents: Rows, previous: Rows, config_hash: str) -> DocumentChanges:
    """Compare the documents (doc_id, checksum, modified_at) with the previous chunks of each document.

    A document chunked in another recipe (``config_hash``) is changed.
    """
    docs = columns(documents, ["doc_id", "checksum", "modified_at"])
    prev = columns(previous, ["doc_id", "source_checksum", "config_hash", "source_modified_at"])
    same = pc.fill_null(pc.equal(prev["config_hash"], config_hash), False)
    # one row per document: whether every chunk of it has the recipe, and its checksum and time
    per_doc = (
        prev.append_column("same_recipe", same)
        .group_by("doc_id")
        .aggregate([("same_recipe", "all"), ("source_checksum", "min"), ("source_checksum", "max"),
                    ("source_modified_at", "min"), ("source_modified_at", "max")])
    )
    joined = docs.join(per_doc, "doc_id", join_type="full outer")
    doc_id = joined["doc_id"]
    is_new = pc.is_null(joined["source_checksum_min"])
    is_gone = pc.is_null(joined["checksum"])
    content_same = pc.and_(
        pc.and_(pc.equal(joined["checksum"], joined["source_checksum_min"]),
                pc.equal(joined["checksum"], joined["source_checksum_max"])),
        joined["same_recipe_all"],
    )
    content_same = pc.fill_null(content_same, False)
    time_same = pc.fill_null(
        pc.and_(pc.equal(joined["modified_at"], joined["source_modified_at_min"]),
                pc.equal(joined["modified_at"], joined["source_modified_at_max"])),
        False,
    )
    present = pc.invert(pc.or_(is_new, is_gone))

    def ids(mask: pa.ChunkedArray | pa.Array) -> list[str]:
        return sorted(doc_id.filter(mask).to_pylist())

    return DocumentChanges(
        added=ids(pc.and_(is_new, pc.invert(is_gone))),
        changed=ids(pc.and_(present, pc.invert(content_same))),
        deleted=ids(is_gone),
        unchanged=pc.sum(pc.and_(present, content_same).cast(pa.int64())).as_py() or 0,
        touched=ids(pc.and_(pc.and_(present, content_same), pc.invert(time_same))),
    )


@dataclass
class EmbeddingWork:
    """The chunks to embed (again) and the documents whose old embedding rows must go."""

    chunk_ids: list[str]
    redone_docs: list[str]  # every current chunk of these is in ``chunk_ids``; their other rows are removed


def embedding_work(chunks: Rows, embeddings: Rows) -> EmbeddingWork:
    """Which chunks have no current (non-stale) embedding with the same key, and which documents hold
    embedding rows of chunks that no longer exist (all their chunks are redone, their old rows removed)."""
    names = [*_EMBEDDING_KEY, "doc_id"]
    have = columns(chunks, names)
    made = columns(embeddings, [*names, "stale"] if "stale" in _names(embeddings) else names)
    if "stale" in made.column_names:
        current = made.filter(pc.invert(pc.fill_null(made["stale"], False))).select(names)
    else:
        current = made.select(names)
    todo = have.join(current.select(_EMBEDDING_KEY), _EMBEDDING_KEY, join_type="left anti")
    gone = made.select(["chunk_id", "doc_id"]).join(have.select(["chunk_id"]), "chunk_id", join_type="left anti")
    # a stale row whose chunk is still current is rewritten by the merge; any other stale row is gone
    docs = pc.unique(pa.concat_arrays([*gone["doc_id"].chunks, pa.array([], pa.string())]))
    if len(docs):
        whole = where_in(have, "doc_id", set(docs.to_pylist()))
        chunk_ids = pc.unique(pa.concat_arrays([*todo["chunk_id"].chunks, *whole["chunk_id"].chunks,
                                                pa.array([], pa.string())]))
    else:
        chunk_ids = pc.unique(pa.concat_arrays([*todo["chunk_id"].chunks, pa.array([], pa.string())]))
    return EmbeddingWork(sorted(chunk_ids.to_pylist()), sorted(docs.to_pylist()))


def pick(rows: Rows, column: str, values: Iterable[str]) -> pa.Table:
    """The rows whose ``column`` is one of ``values``, in their order; a short list goes to Lance as a filter."""
    wanted = sorted(set(values))
    if isinstance(rows, pa.Table) or len(wanted) > MAX_PICK_IDS or not hasattr(rows, "to_table"):
        parts = [where_in(part, column, wanted) for part in batches(rows)]
        schema = rows.schema
        return pa.concat_tables(parts) if parts else schema.empty_table()
    if not wanted:
        return rows.schema.empty_table()
    return rows.to_table(filter=in_filter(column, wanted))


def _names(rows: Rows) -> list[str]:
    return list(rows.schema.names)


def _version_of(rows: Rows) -> int | None:
    """The version of a stored table (a Lance dataset) as it was opened; None for rows in memory."""
    found = getattr(rows, "version", None)
    return int(found) if isinstance(found, int) else None


def apply_chunks(
    tables: TableStore,
    partition: tuple[str, str],
    documents: Rows,
    previous: Rows | None,
    space: SpaceSpec,
    chunker: Chunker,
    run_id: str = "local",
    only: set[str] | None = None,
    log: ChangeLog | None = None,
) -> ChunkPlan | None:
    """Chunk only the added and changed documents and commit them, with the removal of the changed and
    deleted documents' old rows, as ONE new version of ``document_chunks``; no version when nothing changed.

    ``only``: the documents that can have changed since the chunks were last made (``ChangeLog.changed_since``);
    only their rows are read and compared, the rest are known to be current. Without it every document's id and
    hash columns are compared. The commit is recorded in ``log`` for the next step.

    None when there is no table yet or the change is too large for one filter: then the caller writes a
    new table (``plan_chunks``). ``chunker`` (in process, or on a Ray cluster) is given only the documents to
    chunk, and nothing when none is.
    """
    if previous is None:
        return None
    base = _version_of(previous)
    if only is not None:
        changes = document_changes(pick(documents, "doc_id", only), pick(previous, "doc_id", only),
                                   space.config_hash)
        changes.unchanged = count(documents) - len(changes.added) - len(changes.changed)
    else:
        changes = document_changes(documents, previous, space.config_hash)
    if not worth_a_change(changes.size):
        return None
    out = Collector(CHUNKS_SCHEMA)
    quarantined: list[dict] = []
    chunked: set[str] = set()
    if changes.redo:
        parts = batches(pick(documents, "doc_id", changes.redo), CHUNK_COLUMNS, size=DOCUMENTS_PER_BATCH)
        for done in chunker.chunk_batches(parts, len(changes.redo)):
            quarantined.extend(done.quarantined)
            chunked.update(done.doc_ids())
            out.write(done.rows)
    old = changes.changed + changes.deleted + changes.touched
    unchanged = not (out.rows or old)
    version: int | None = None
    if out.rows:
        version = tables.apply("document_chunks", partition, CHUNKS_SCHEMA, out.table(), "chunk_id",
                               delete_where=in_filter("doc_id", old) if old else None)
    elif old:
        version = tables.delete("document_chunks", partition, in_filter("doc_id", old))
    if version is not None and log is not None:
        log.record(tables.url("document_chunks", partition), version, base, [*old, *chunked])
    diff = DocumentDiff(
        added=[d for d in changes.added if d in chunked],
        changed=[d for d in changes.changed if d in chunked],
        deleted=sorted(changes.deleted + [d for d in changes.changed if d not in chunked]),
    )
    rows = tables.count_rows("document_chunks", partition) or 0
    return ChunkPlan(rows, diff, quarantined, unchanged_documents=changes.unchanged, unchanged=unchanged)


@dataclass
class EmbeddingChange:
    result: EmbeddingResult
    rows: int  # in the table, after the run
    unchanged: bool  # no new version was written


def apply_embeddings(
    tables: TableStore,
    partition: tuple[str, str],
    chunks: Rows,
    previous: Rows | None,
    space: SpaceSpec,
    encoder: Callable[[], Embedder],
    cache: EmbeddingCache,
    max_failure_share: float = DEFAULT_MAX_MODEL_FAILURE_SHARE,
    only: set[str] | None = None,
    log: ChangeLog | None = None,
) -> EmbeddingChange | None:
    """Embed only the chunks without a current embedding (``embedding_work``) and commit them, with the
    removal of the rows of chunks that are gone, as ONE new version of ``chunk_embeddings``.

    A document the model failed on keeps its previous rows, marked stale (``embed_chunks``), none of them
    removed. None when there is no table yet or the change is too large for one filter (the caller
    writes a new table). ``encoder`` is called only when there is something to embed.

    ``only``: the documents whose chunks can have changed since the embeddings were last made
    (``ChangeLog.changed_since``); only their rows are read and compared. The commit is recorded in ``log``.
    """
    if previous is None:
        return None
    base = _version_of(previous)
    mine = pick(chunks, "doc_id", only) if only is not None else chunks
    theirs = pick(previous, "doc_id", only) if only is not None else previous
    work = embedding_work(mine, theirs)
    if not worth_a_change(len(work.redone_docs)):
        return None
    schema = index_schema(space.dimension)
    if not work.chunk_ids and not work.redone_docs:
        return EmbeddingChange(EmbeddingResult(count(previous), 0, 0, []), count(previous), unchanged=True)
    out = Collector(schema)
    result = EmbeddingResult(0, 0, 0, [])
    if work.chunk_ids:
        todo = pick(mine, "chunk_id", work.chunk_ids).sort_by([("doc_id", "ascending"), ("seq", "ascending")])
        result = embed_chunks(todo, space, encoder(), cache, out, previous=theirs,
                              max_failure_share=max_failure_share)
    failed = {q["doc_id"] for q in result.quarantined}
    old = [d for d in work.redone_docs if d not in failed]
    version: int | None = None
    written = out.table()
    if out.rows:
        version = tables.apply("chunk_embeddings", partition, schema, written, "chunk_id",
                               delete_where=in_filter("doc_id", old) if old else None)
    elif old:
        version = tables.delete("chunk_embeddings", partition, in_filter("doc_id", old))
    if version is not None and log is not None:
        log.record(tables.url("chunk_embeddings", partition), version, base, [*old, *written["doc_id"].to_pylist()])
    rows = tables.count_rows("chunk_embeddings", partition) or 0
    return EmbeddingChange(result, rows, unchanged=not (out.rows or old))
