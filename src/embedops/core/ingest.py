"""The incremental pipeline as plain functions: documents -> chunks -> embeddings (index rows).

Each step reads the previous materialization and writes the new one to ``out`` (a TableWriter, or a
Collector in memory), returning what changed, so that unchanged text costs nothing, a changed chunk
costs one model call and a deleted document leaves. Both steps stream: they hold ids, checksums and
hashes for the whole tenant, and texts and vectors one batch at a time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedops.core.cache import EmbeddingCache
from embedops.core.chunking import Chunk, chunk_in_space
from embedops.core.embedder import Embedder, Prefetching
from embedops.core.fingerprints import cache_key, chunk_id, sha256_text
from embedops.core.settings import DEFAULT_MAX_MODEL_FAILURE_SHARE
from embedops.core.spaces import SpaceSpec
from embedops.core.stores.base import index_schema
from embedops.core.tables import BATCH_ROWS, Rows, Sink, batches, columns, count, where_in
from embedops.errors import ModelFailureError, ModelLoadError

CHUNKS_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("doc_id", pa.string()),
        ("chunk_id", pa.string()),
        ("seq", pa.int32()),
        ("text", pa.string()),
        ("text_hash", pa.string()),
        ("token_count", pa.int32()),
        ("source_checksum", pa.string()),
        ("source_modified_at", pa.timestamp("us", tz="UTC")),
        ("space_id", pa.string()),
        ("config_hash", pa.string()),
    ]
)


@dataclass
class DocumentDiff:
    """Documents of this run against the previous materialization, by id."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


def diff_documents(previous: dict[str, str], current: dict[str, str]) -> DocumentDiff:
    """Compare {doc_id: checksum} maps: what was added, changed, deleted or left alone."""
    diff = DocumentDiff()
    for doc_id, checksum in sorted(current.items()):
        if doc_id not in previous:
            diff.added.append(doc_id)
        elif previous[doc_id] != checksum:
            diff.changed.append(doc_id)
        else:
            diff.unchanged.append(doc_id)
    diff.deleted = sorted(set(previous) - set(current))
    return diff


@dataclass
class ChunkPlan:
    rows: int  # in the table, after the run
    diff: DocumentDiff
    quarantined: list[dict]
    unchanged_documents: int | None = None  # when ``diff`` does not list them
    unchanged: bool = False  # no new version was written
    added_documents: int | None = None  # when ``diff`` does not list them (a first table: every document)

    def counts(self) -> dict[str, int]:
        found = self.diff.counts()
        if self.unchanged_documents is not None:
            found["unchanged"] = self.unchanged_documents
        if self.added_documents is not None:
            found["added"] = self.added_documents
        return found

    @property
    def documents(self) -> int:
        found = self.counts()
        return found["added"] + found["changed"] + found["unchanged"]


DOCUMENTS_PER_BATCH = 256
STAMP_TYPE = CHUNKS_SCHEMA.field("source_modified_at").type


def plan_chunks(
    documents: Rows,
    previous: Rows | None,
    space: SpaceSpec,
    chunker: Chunker | Callable[[str], int],
    out: Sink,
    unknown_share: Callable[[str], float] | None = None,
) -> ChunkPlan:
    """Chunk the documents for ``space`` into ``out``, reusing the previous chunks of every unchanged document.

    Reused chunks are copied batch by batch from ``previous``; the rest go to ``chunker`` a few hundred
    documents at a time (a ``Chunker``, or a token counter to chunk in this process with ``LocalChunker``).
    A document's chunks are written together, in order. With ``unknown_share`` (the model tokenizer's, see
    `Embedder.unknown_share`), a document with a chunk the model reads as mostly unknown tokens is
    quarantined: that chunk's vector would mean nothing.

    Without ``previous`` (a first table) every document is new: nothing is held per document, so memory does
    not grow with the tenant, and the plan counts the documents added rather than listing them.
    """
    if not isinstance(chunker, Chunker):  # a token counter: chunk in this process
        chunker = LocalChunker(space, chunker, unknown_share)
    quarantined: list[dict] = []
    if previous is None or not count(previous):
        added = 0
        for done in _chunk_into(out, chunker, batches(documents, CHUNK_COLUMNS, size=DOCUMENTS_PER_BATCH),
                                count(documents)):
            quarantined.extend(done.quarantined)
            added += len(done.doc_ids())
        return ChunkPlan(out.rows, DocumentDiff(), quarantined, added_documents=added)
    config_hash = space.config_hash
    docs = columns(documents, ["doc_id", "checksum", "modified_at"])
    checksums = dict(zip(docs["doc_id"].to_pylist(), docs["checksum"].to_pylist(), strict=True))
    prev_checksums: dict[str, str] = {}
    same_recipe: set[str] = set()
    prev = columns(previous, ["doc_id", "source_checksum", "config_hash"])
    for doc_id, checksum, recipe in zip(*(prev[c].to_pylist() for c in prev.column_names), strict=True):
        prev_checksums[doc_id] = checksum
        if recipe == config_hash:
            same_recipe.add(doc_id)
    reused = {d for d in same_recipe if checksums.get(d) == prev_checksums[d]}
    if reused:
        modified = dict(zip(docs["doc_id"].to_pylist(), docs["modified_at"].to_pylist(), strict=True))
        for part in batches(previous):
            kept = where_in(part, "doc_id", reused)
            kept = kept.filter(pc.equal(kept["config_hash"], config_hash))
            stamps = pa.array([modified[d] for d in kept["doc_id"].to_pylist()], STAMP_TYPE)
            kept = kept.set_column(kept.schema.get_field_index("source_modified_at"), "source_modified_at", stamps)
            out.write(kept.select(CHUNKS_SCHEMA.names).cast(CHUNKS_SCHEMA))

    current = {d: checksums[d] for d in reused}
    parts = (  # the documents to chunk: a set lookup per document (an Arrow value set would hash all of ``reused``)
        part.filter(pa.array([d not in reused for d in part["doc_id"].to_pylist()], pa.bool_())) if reused else part
        for part in batches(documents, CHUNK_COLUMNS, size=DOCUMENTS_PER_BATCH)
    )
    for done in _chunk_into(out, chunker, parts, len(checksums) - len(reused)):
        quarantined.extend(done.quarantined)
        current.update((d, checksums[d]) for d in done.doc_ids())
    # a document whose chunk recipe changed counts as changed, not unchanged
    previous_for_diff = {d: (c if d in same_recipe else f"{c}:recipe-changed") for d, c in prev_checksums.items()}
    return ChunkPlan(out.rows, diff_documents(previous_for_diff, current), quarantined)


# The columns of a document that chunking reads (and a Ray worker receives).
CHUNK_COLUMNS = ["tenant", "doc_id", "suffix", "checksum", "modified_at", "text"]
# How often the run's log hears how many documents are chunked (seconds).
CHUNK_PROGRESS_EVERY_S = 10.0


@dataclass
class ChunkedBatch:
    """What a chunker made of a batch of documents: their chunk rows (CHUNKS_SCHEMA, in document order, each
    document's chunks in order) and the documents it quarantined."""

    rows: pa.Table
    quarantined: list[dict]

    @property
    def documents(self) -> int:
        return len(self.doc_ids()) + len(self.quarantined)

    def doc_ids(self) -> list[str]:
        """The documents chunked, in order."""
        return list(dict.fromkeys(self.rows["doc_id"].to_pylist()))


@runtime_checkable
class Chunker(Protocol):
    """Cuts batches of documents (CHUNK_COLUMNS) into chunk rows in a space's recipe: ``LocalChunker`` in the run's
    process, or ``RayChunker`` (core/distributed.py) on a Ray cluster. The seam both ``plan_chunks`` and
    ``apply_chunks`` go through; either way the run's own process commits the rows."""

    def chunk_batches(self, parts: Iterable[pa.Table], documents: int) -> Iterator[ChunkedBatch]:
        """The chunks of ``parts`` (``documents`` documents in all), one result per batch, in order."""
        ...

    def report(self) -> dict[str, Any]:
        """Where the documents were chunked, for the materialization's metadata (empty in process)."""
        ...


class ChunkProgress:
    """Documents chunked of the total, to the run's log every CHUNK_PROGRESS_EVERY_S and at the end."""

    def __init__(self, space: SpaceSpec, total: int, where: str, log: Callable[[str], None] | None) -> None:
        self.space, self.total, self.where, self.log = space.name, total, where, log
        self.done = 0
        self.started = self.last = time.monotonic()
        self.finished = 0.0

    def add(self, documents: int) -> None:
        self.done = min(self.total, self.done + documents)
        now = time.monotonic()
        if self.done >= self.total:
            self.finished = self.finished or now
        if self.log and (now - self.last >= CHUNK_PROGRESS_EVERY_S or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            self.log(f"{self.space}: chunked {self.done} of {self.total} document(s) {self.where} "
                     f"({rate:.0f} documents/s)")

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


class LocalChunker:
    """Chunks in the run's own process with a token counter (the space's tokenizer, loaded on the first count)."""

    def __init__(
        self,
        space: SpaceSpec,
        count_tokens: Callable[[str], int],
        unknown_share: Callable[[str], float] | None = None,
        log: Callable[[str], None] | None = None,
        learn_words: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.space, self.count_tokens, self.unknown_share, self.log = space, count_tokens, unknown_share, log
        self.learn_words = learn_words

    @classmethod
    def of(cls, space: SpaceSpec, model: Embedder, log: Callable[[str], None] | None = None) -> LocalChunker:
        """Chunk with ``model``'s tokenizer (its token counts and unknown-token shares, and its batch word
        counting when it has one)."""
        return cls(space, model.count_tokens, model.unknown_share, log, getattr(model, "learn_words", None))

    def chunk_batches(self, parts: Iterable[pa.Table], documents: int) -> Iterator[ChunkedBatch]:
        progress = ChunkProgress(self.space, documents, "in this process", self.log)
        for part in parts:
            if not part.num_rows:
                continue
            done = chunk_batch(part, self.space, self.count_tokens, self.unknown_share, self.learn_words)
            progress.add(part.num_rows)
            yield done

    def report(self) -> dict[str, Any]:
        return {}


def _chunk_into(out: Sink, chunker: Chunker, parts: Iterable[pa.Table], documents: int) -> Iterator[ChunkedBatch]:
    """Chunk ``parts`` (``documents`` in all) and write their rows to ``out`` about ``BATCH_ROWS`` at a time, a
    document's rows together and in order; yields each batch as it is chunked. Exhaust it: the last rows are
    written at the end."""
    pending: list[pa.Table] = []
    held = 0
    for done in chunker.chunk_batches(parts, documents):
        pending.append(done.rows)
        held += done.rows.num_rows
        if held >= BATCH_ROWS:
            out.write(pa.concat_tables(pending))
            pending, held = [], 0
        yield done
    out.write(pa.concat_tables(pending) if pending else CHUNKS_SCHEMA.empty_table())


def chunk_batch(
    part: pa.Table,
    space: SpaceSpec,
    count_tokens: Callable[[str], int],
    unknown_share: Callable[[str], float] | None,
    learn_words: Callable[[list[str]], None] | None = None,
) -> ChunkedBatch:
    """The chunk rows of a batch of documents (CHUNK_COLUMNS), and the documents quarantined; in process or on a
    Ray worker alike. ``learn_words`` (the tokenizer's, see `Tokenizer.learn_words`) is given the batch's texts
    first, so that their new words are counted in one encoding."""
    rows: list[dict] = []
    quarantined: list[dict] = []
    docs = part.to_pylist()
    if learn_words is not None:
        learn_words([doc["text"] for doc in docs])
    for doc in docs:
        pieces = chunk_rows(doc, space, count_tokens, unknown_share)
        if isinstance(pieces, str):
            quarantined.append({"doc_id": doc["doc_id"], "stage": "chunking", "reason": pieces})
        else:
            rows.extend(pieces)
    return ChunkedBatch(pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA), quarantined)


# A chunk is unreadable to the model when more than this share of its visible characters are unknown tokens.
MAX_UNKNOWN_SHARE = 0.5


def chunk_rows(
    doc: dict, space: SpaceSpec, count_tokens: Callable[[str], int], unknown_share: Callable[[str], float] | None
) -> list[dict] | str:
    """The chunk rows of one document in the space's recipe, or why it has none to embed."""
    pieces = chunk_in_space(doc["text"], doc["suffix"], space, count_tokens)
    if not pieces:
        return "no text left after preprocessing"
    unreadable = _unreadable(pieces, unknown_share) if unknown_share else None
    if unreadable:
        return unreadable
    rows = []
    seen: Counter[str] = Counter()
    space_id, config_hash = space.space_id, space.config_hash
    for piece in pieces:
        text_hash = sha256_text(piece.text)
        rows.append(
            {
                "tenant": doc["tenant"],
                "doc_id": doc["doc_id"],
                "chunk_id": chunk_id(doc["doc_id"], text_hash, seen[text_hash]),
                "seq": piece.seq,
                "text": piece.text,
                "text_hash": text_hash,
                "token_count": piece.token_count,
                "source_checksum": doc["checksum"],
                "source_modified_at": doc["modified_at"],
                "space_id": space_id,
                "config_hash": config_hash,
            }
        )
        seen[text_hash] += 1
    return rows


def _unreadable(pieces: list[Chunk], unknown_share: Callable[[str], float]) -> str | None:
    """Why the model cannot read one of the chunks (mostly unknown tokens), or None."""
    for piece in pieces:
        share = unknown_share(piece.text)
        if share > MAX_UNKNOWN_SHARE:
            body = piece.text[len(piece.heading) + 1 :] if piece.heading else piece.text
            return (
                f"chunk {piece.seq + 1} of {len(pieces)} is {share:.0%} text the model reads as unknown tokens "
                f"(it starts {body[:40]!r}), so its vector would mean nothing; remove that text or index this "
                "document in a space whose model reads it"
            )
    return None


@dataclass
class EmbeddingResult:
    rows: int
    model_calls: int
    cache_hits: int
    quarantined: list[dict]
    model_failures: int = 0
    stale_rows: int = 0


class _FailureBudget:
    """Counts the texts the model failed on, and stops the run once they pass the allowed share.

    ``ceiling`` bounds the texts the run can give the model (its chunk rows), so the share of the
    texts given so far can be judged before the run ends: once failures pass ``share`` of the
    ceiling, they pass it of the final count too, and going on would only spend model time.
    """

    def __init__(self, space: SpaceSpec, model: str, share: float, ceiling: int) -> None:
        self.space, self.model, self.share, self.ceiling = space, model, share, ceiling
        self.given = 0
        self.failed = 0
        self.first_cause = ""

    def record(self, failures: int, given: int, cause: str | None) -> None:
        self.given += given
        self.failed += failures
        if cause and not self.first_cause:
            self.first_cause = cause
        if self.failed > self.share * self.ceiling:
            self.fail()

    def check(self) -> None:
        if self.failed and (self.failed == self.given or self.failed > self.share * self.given):
            self.fail()

    def fail(self) -> None:
        raise ModelFailureError(
            f"space {self.space.name!r} ({self.space.space_id}): model {self.model} failed on {self.failed} "
            f"of {self.given} text(s) given to it, more than the allowed {self.share:.0%} "
            f"(EMBEDOPS_MAX_MODEL_FAILURE_SHARE); first cause: {self.first_cause}. Nothing was synced and "
            "the served index is unchanged; fix the model (its package or the space's model path) and re-run"
        )


def embed_chunks(
    chunks: Rows,
    space: SpaceSpec,
    encoder: Embedder,
    cache: EmbeddingCache,
    out: Sink,
    group_size: int = 1024,
    batch_rows: int = BATCH_ROWS,
    previous: Rows | None = None,
    max_failure_share: float = DEFAULT_MAX_MODEL_FAILURE_SHARE,
) -> EmbeddingResult:
    """Index rows for the chunks into ``out``: cached vectors where the cache has them, the model for the rest.

    Chunks are read ``batch_rows`` at a time, cut so that a document never straddles two batches.
    Missing texts go to the model ``group_size`` at a time (the model batches them itself, sorted by
    length, which pads less than fixed slices), and each group's vectors are cached as it finishes,
    so a text met again in a later batch is a cache hit.

    A failure of the model is not the document's fault: when the model fails on more than
    ``max_failure_share`` of the texts it is given (or on all of them) this raises ModelFailureError
    and nothing is written; below that, each document the model failed on keeps its rows of
    ``previous`` (the last materialization), marked ``stale``, and is listed; it has no cached
    vectors, so the next run gives its texts to the model again.
    """
    schema = index_schema(space.dimension)
    model_calls = cache_hits = 0
    failed_docs: dict[str, str] = {}
    budget = _FailureBudget(space, encoder.identity, max_failure_share, count(chunks))
    if isinstance(encoder, Prefetching):  # a remote pool starts on every text the loop below will ask for
        encoder.prefetch(missing_texts(chunks, encoder.identity, cache, batch_rows))
    for part in whole_documents(batches(chunks, size=batch_rows)):
        texts, doc_ids = part["text"].to_pylist(), part["doc_id"].to_pylist()
        keys = [cache_key(encoder.identity, text) for text in texts]
        cached = cache.get_many(keys)
        missing = {k: text for k, text in zip(keys, texts, strict=True) if k not in cached}
        failed: dict[str, str] = {}
        todo = list(missing.items())
        for start in range(0, len(todo), group_size):
            group = todo[start : start + group_size]
            done = []
            for key, vector, error in encode_group(encoder, group):
                if vector is None:
                    failed[key] = error or "no vector"
                else:
                    done.append((key, vector))
            stamp = cache.put_many(encoder.identity, done)
            cached.update((key, (vector, stamp)) for key, vector in done)
            budget.record(len(group) - len(done), len(group), next(iter(failed.values()), None))
        for key, doc_id in zip(keys, doc_ids, strict=True):
            if key in failed:
                failed_docs.setdefault(doc_id, failed[key])
        if failed_docs:
            keep = [doc_id not in failed_docs for doc_id in doc_ids]
            part = part.filter(pa.array(keep, pa.bool_()))
            keys = [key for key, kept in zip(keys, keep, strict=True) if kept]
        out.write(_index_rows(part, [cached[key] for key in keys], space, encoder.identity, schema))
        model_calls += len(missing)
        cache_hits += sum(1 for k in keys if k not in missing)
    budget.check()
    kept = _keep_stale(previous, set(failed_docs), schema, out)
    quarantined = [
        {
            "doc_id": doc_id,
            "stage": "embedding",
            "reason": f"model failed: {why}; "
            + (f"kept {kept[doc_id]} previous vector(s), marked stale" if doc_id in kept else "no previous vectors")
            + "; retried on the next run",
        }
        for doc_id, why in sorted(failed_docs.items())
    ]
    return EmbeddingResult(
        rows=out.rows,
        model_calls=model_calls,
        cache_hits=cache_hits,
        quarantined=quarantined,
        model_failures=budget.failed,
        stale_rows=sum(kept.values()),
    )


def missing_texts(
    chunks: Rows, identity: str, cache: EmbeddingCache, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[str, str]]:
    """The (cache key, text) pairs of ``chunks`` the cache lacks, each once, in the order ``embed_chunks``
    gives them to the model."""
    seen: set[str] = set()
    for part in whole_documents(batches(chunks, size=batch_rows)):
        texts = part["text"].to_pylist()
        keys = [cache_key(identity, t) for t in texts]
        cached = cache.get_many(keys)
        for key, text in zip(keys, texts, strict=True):
            if key not in cached and key not in seen:
                seen.add(key)
                yield key, text


def _keep_stale(previous: Rows | None, doc_ids: set[str], schema: pa.Schema, out: Sink) -> dict[str, int]:
    """Copy the previous rows of ``doc_ids`` into ``out`` marked stale; how many rows each document kept."""
    kept: Counter[str] = Counter()
    if previous is None or not doc_ids:
        return kept
    for part in batches(previous):
        rows = where_in(part, "doc_id", doc_ids)
        if not rows.num_rows:
            continue
        if "stale" in rows.column_names:  # tables written before the column existed lack it
            rows = rows.drop_columns(["stale"])
        rows = rows.append_column("stale", pa.repeat(True, rows.num_rows))
        out.write(rows.select(schema.names).cast(schema))
        kept.update(rows["doc_id"].to_pylist())
    return kept


def whole_documents(parts: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """Re-cut batches of chunk rows so that each document's rows are in one batch (rows of a
    document are contiguous in the ledger)."""
    carry: pa.Table | None = None
    for part in parts:
        if carry is not None:
            part = pa.concat_tables([carry, part])
        if part.num_rows == 0:
            continue
        start = pc.index(part["doc_id"], part["doc_id"][-1]).as_py()  # where the last document begins
        if start:
            yield part.slice(0, start)
        carry = part.slice(start)
    if carry is not None and carry.num_rows:
        yield carry


def encode_group(
    encoder: Embedder, group: list[tuple[str, str]]
) -> list[tuple[str, np.ndarray | None, str | None]]:
    """Encode (key, text) pairs in one call; when it fails, halve the group so only the bad texts fail."""
    try:
        vectors = encoder.encode([t for _, t in group])
        _check_vectors(vectors, encoder.dimension, len(group))
        return [(k, v, None) for (k, _), v in zip(group, vectors, strict=True)]
    except ModelLoadError:  # no text's fault: the run fails with it (halving would only load it again)
        raise
    except Exception as exc:
        if len(group) == 1:
            return [(group[0][0], None, f"{type(exc).__name__}: {exc}")]
        half = len(group) // 2
        return encode_group(encoder, group[:half]) + encode_group(encoder, group[half:])


def _check_vectors(vectors: np.ndarray, dimension: int, count: int) -> None:
    if vectors.shape != (count, dimension) or not np.isfinite(vectors).all():
        raise ValueError(f"model returned vectors of shape {vectors.shape} or non-finite values")


# The index columns copied from a chunk row as they are.
_CHUNK_INDEX_COLUMNS = ("chunk_id", "tenant", "doc_id", "seq", "text", "text_hash", "source_checksum", "config_hash")


def _index_rows(
    part: pa.Table, found: list[tuple[np.ndarray, datetime]], space: SpaceSpec, model: str, schema: pa.Schema
) -> pa.Table:
    """The index rows of chunk rows ``part``, given each row's (vector, time it was embedded)."""
    rows = part.num_rows
    flat = np.concatenate([vector for vector, _ in found]) if rows else np.zeros(0, np.float32)
    columns = {name: part[name] for name in _CHUNK_INDEX_COLUMNS}
    columns.update(
        space_id=pa.repeat(pa.scalar(space.space_id), rows),
        space_name=pa.repeat(pa.scalar(space.name), rows),
        model=pa.repeat(pa.scalar(model), rows),
        embedded_at=pa.array([stamp for _, stamp in found], pa.timestamp("us", tz="UTC")),
        stale=pa.repeat(pa.scalar(False), rows),
        vector=pa.FixedSizeListArray.from_arrays(pa.array(flat.astype(np.float32, copy=False)), space.dimension),
    )
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
