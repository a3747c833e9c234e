"""Chunking and embedding on a Ray cluster.

Chunking: ``RayChunker`` sends batches of documents through Ray Data ``map_batches`` tasks; each worker loads only
the space's tokenizer and sends back the chunk rows and quarantine reasons as Arrow tables, in document order. The
run's own process writes and commits them as in process (``plan_chunks``, ``apply_chunks``). Fewer documents than
its threshold are chunked in the run's process.

Embedding: a run's cache misses go through Ray Data's streaming ``map_batches`` to an
actor pool of model replicas (one per GPU where the cluster has GPUs, one per CPU otherwise).

Only the texts change hands: the run's own process still reads the chunks and the cache, writes the cache
and the tables, and counts model calls, through the same code as in process (``embed_chunks``); this
module's ``RayEmbedder`` stands in for the model there. ``prefetch`` starts the pool on every missing
text at once, and ``encode`` hands back each text's vector as the results stream in.

Ray (with Ray Data) is the optional ``ray`` extra: only this module imports it, and only when a Ray
address is set (EMBEDOPS_RAY_ADDRESS, see core/settings.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from embedops.core.embedder import SpaceEmbedder, load_tokenizer
from embedops.core.fingerprints import cache_key
from embedops.core.ingest import (
    CHUNK_COLUMNS,
    CHUNKS_SCHEMA,
    DOCUMENTS_PER_BATCH,
    ChunkedBatch,
    Chunker,
    ChunkProgress,
    chunk_batch,
    encode_group,
)
from embedops.core.memory import bound_heap
from embedops.core.settings import DEFAULT_RAY_ACTORS, DEFAULT_RAY_BATCH_SIZE, DEFAULT_RAY_CHUNK_MIN_DOCUMENTS
from embedops.core.spaces import SpaceSpec
from embedops.errors import ModelLoadError, RayClusterError, redacted

# A replica that dies while loading its model is replaced this many times in a row before the run fails:
# a model that cannot load fails fast, a worker lost to its node still gets a new one.
INIT_DEATHS = 2
# How often the run's log hears how far the pool is (seconds).
PROGRESS_EVERY_S = 10.0
# Texts a replica gives its model per call (the model's own batch; the pool's batches are larger).
MODEL_BATCH = 64

Log = Callable[[str], None]


class ModelReplica:
    """One copy of a space's model on a Ray worker: batches of (key, text) in, (key, vector, error) out.

    A text the model fails on comes back with its error and no vector, as in process (the group is halved
    until only the bad texts fail); a model that cannot load fails the replica's start.
    """

    def __init__(self, space: SpaceSpec) -> None:
        bound_heap()
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.embedder = SpaceEmbedder(space, batch_size=MODEL_BATCH, device=device)
        _ = self.embedder.max_seq_length  # loads the model now: a replica that cannot load it never starts

    def __call__(self, batch: pa.Table) -> pa.Table:
        group = list(zip(batch["key"].to_pylist(), batch["text"].to_pylist(), strict=True))
        done = encode_group(self.embedder, group)
        dimension = self.embedder.dimension
        flat = np.concatenate([v if v is not None else np.zeros(dimension, np.float32) for _, v, _ in done])
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dimension)
        valid = pa.array([v is not None for _, v, _ in done])
        return pa.table({
            "key": [k for k, _, _ in done],
            "vector": pa.compute.if_else(valid, vectors, pa.nulls(len(done), vectors.type)),
            "error": pa.array([e for _, _, e in done], pa.string()),
        })


class RemoteModelError(Exception):
    """The model failed on a text on a Ray worker (the worker's error is the message)."""


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` as a driver, once per process."""
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        raise RayClusterError(
            f"the Ray cluster at EMBEDOPS_RAY_ADDRESS={redacted(address)} could not be reached ({exc}); start it "
            "(`ray start --head`), fix the address, or unset EMBEDOPS_RAY_ADDRESS to embed in process"
        ) from exc


def replica_resources() -> tuple[float | None, float | None]:
    """(num_cpus, num_gpus) of a model replica: one GPU where the cluster has GPUs, else one CPU."""
    return (None, 1) if ray.cluster_resources().get("GPU", 0) > 0 else (1, None)


class RayEmbedder:
    """Embeds a space's texts on a Ray cluster; an ``Embedder`` to ``embed_chunks`` (see the module's note).

    Nothing reaches the cluster, and no connection is made, until ``prefetch`` is given at least one text.
    """

    def __init__(
        self,
        space: SpaceSpec,
        address: str,
        actors: int = DEFAULT_RAY_ACTORS,
        batch_size: int = DEFAULT_RAY_BATCH_SIZE,
        log: Log | None = None,
    ) -> None:
        self.space = space
        self.address = address
        self.actors = actors
        self.batch_size = batch_size
        self.identity = space.model.identity
        self.dimension = space.dimension
        self.calls = 0
        self.log = log or (lambda _message: None)
        self._local: SpaceEmbedder | None = None  # for chunking's token counts, loaded only if asked
        self._stream: Generator[pa.Table, None, None] | None = None
        self._ready: dict[str, np.ndarray] = {}
        self._failed: dict[str, str] = {}
        self._total = self._received = self._first_rows = 0
        self._started = self._first = self._finished = 0.0
        self._last_log = 0.0

    # -- the Embedder protocol ------------------------------------------------------------------------

    @property
    def max_seq_length(self) -> int:
        return self._model.max_seq_length

    def count_tokens(self, text: str) -> int:
        return self._model.count_tokens(text)

    def unknown_share(self, text: str) -> float:
        return self._model.unknown_share(text)

    def learn_words(self, texts: Iterable[str]) -> None:
        self._model.learn_words(texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        """The vectors of ``texts`` (each given to ``prefetch`` before), waiting for the pool as needed."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        keys = [cache_key(self.identity, t) for t in texts]
        self.calls += len(texts)
        self._wait_for(keys)
        failed = [self._failed[k] for k in keys if k in self._failed]
        if failed:
            raise RemoteModelError(failed[0])
        vectors = np.stack([self._ready[k] for k in keys])
        for key in keys:
            self._ready.pop(key, None)
        return vectors

    # -- the Prefetching protocol ---------------------------------------------------------------------

    def prefetch(self, texts: Iterable[tuple[str, str]]) -> None:
        pairs = list(texts)
        self._total = len(pairs)
        if not pairs:
            return
        connect(self.address)
        self._started = self._last_log = time.monotonic()
        self.log(f"{self.space.name}: embedding {len(pairs)} text(s) on the Ray cluster with {self.actors} "
                 f"model replica(s), {self.batch_size} texts a batch")
        self._stream = self._results(pairs)

    def progress(self) -> dict[str, float]:
        """Texts sent to the cluster, received back, and throughput; empty when nothing was sent."""
        if not self._total:
            return {}
        now = self._finished or time.monotonic()
        seconds = now - self._started
        return {
            "ray_texts": self._total,
            "ray_texts_embedded": self._received,
            "ray_seconds": round(seconds, 3),
            "ray_texts_per_s": round(self._received / seconds, 1) if seconds > 0 else 0.0,
            "ray_actors": self.actors,
            # until the first vectors came back: the pool's start (replicas loading the model)
            "ray_first_result_s": round((self._first or now) - self._started, 3),
            # after it: the pool's steady rate
            "ray_steady_texts_per_s": round((self._received - self._first_rows) / (now - self._first), 1)
            if self._first and now > self._first else 0.0,
        }

    # -- inside -----------------------------------------------------------------------------------------

    @property
    def _model(self) -> SpaceEmbedder:
        if self._local is None:
            self._local = SpaceEmbedder(self.space)
        return self._local

    def _results(self, pairs: list[tuple[str, str]]) -> Generator[pa.Table, None, None]:
        """The pool's output batches as they finish."""
        context = ray.data.DataContext.get_current()
        context.max_consecutive_actor_init_deaths = INIT_DEATHS
        context.enable_progress_bars = False
        size = self.batch_size
        blocks = [
            pa.table({"key": [k for k, _ in pairs[i : i + size]], "text": [t for _, t in pairs[i : i + size]]})
            for i in range(0, len(pairs), size)
        ]
        cpus, gpus = replica_resources()
        dataset = ray.data.from_arrow(blocks).map_batches(
            ModelReplica,
            fn_constructor_args=(self.space,),
            batch_size=size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(self.actors, len(blocks))),
            num_cpus=cpus,
            num_gpus=gpus,
        )
        yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")

    def _wait_for(self, keys: list[str]) -> None:
        """Read the pool's output until every key has come back (a vector or an error)."""
        while any(k not in self._ready and k not in self._failed for k in keys):
            if self._stream is None:
                raise RuntimeError(f"{len(keys)} text(s) were asked of the Ray pool but never sent to it")
            try:
                batch = next(self._stream)
            except StopIteration:
                self._stream = None
                continue
            except Exception as exc:
                self._stream = None
                raise self._explained(exc) from exc
            self._take(batch)
            if self._received >= self._total:  # all back: end Ray Data's execution now, while still connected
                self._stream.close()
                self._stream = None

    def _take(self, batch: pa.Table) -> None:
        keys = batch["key"].to_pylist()
        errors = batch["error"].to_pylist()
        vectors = batch["vector"]
        flat = vectors.combine_chunks() if isinstance(vectors, pa.ChunkedArray) else vectors
        values = flat.values.to_numpy(zero_copy_only=False).reshape(-1, self.dimension)
        offset = flat.offset
        for i, (key, error) in enumerate(zip(keys, errors, strict=True)):
            if error is None:
                self._ready[key] = values[offset + i]
            else:
                self._failed[key] = error
        self._received += len(keys)
        now = time.monotonic()
        if not self._first:
            self._first, self._first_rows = now, len(keys)
        if self._received >= self._total:
            self._finished = now
        if now - self._last_log >= PROGRESS_EVERY_S or self._received >= self._total:
            self._last_log = now
            rate = self._received / max(now - self._started, 1e-9)
            self.log(f"{self.space.name}: embedded {self._received} of {self._total} text(s) on Ray "
                     f"({rate:.0f} texts/s)")

    def _explained(self, exc: Exception) -> Exception:
        return explained(exc, self.address, self.space,
                         f"the model of space {self.space.name!r} ({INIT_DEATHS + 1} model replicas failed to start)")


def explained(exc: Exception, address: str, space: SpaceSpec, what: str) -> Exception:
    """A model (or tokenizer) that cannot load on the workers as ONE ModelLoadError naming ``what`` and its cause,
    without the workers' traceback; anything else as is."""
    text = str(exc)
    if "ModelLoadError" not in text:
        return exc
    cause = text[text.rfind("ModelLoadError") :].splitlines()[0].removeprefix("ModelLoadError: ")
    return ModelLoadError(f"the Ray workers at {redacted(address)} could not load {what}: {cause}")


# A document's quarantine reason travels back from a chunking worker in this column (null on a chunk row).
REASON = "quarantine_reason"
# The driver hands Ray Data the documents to chunk this many at a time (each window's texts are held in the
# object store until chunked), so a tenant of millions of documents never sits in memory at once.
WINDOW_DOCUMENTS = 50_000
WINDOW_BYTES = 256 * 2**20


def chunk_on_worker(batch: pa.Table, space: SpaceSpec) -> pa.Table:
    """A Ray task: chunk a batch of documents with the space's tokenizer (no model weights). The chunk rows, then
    one row per quarantined document (``doc_id`` and its reason in ``quarantine_reason``, the rest null)."""
    bound_heap()  # once per worker process, like the tokenizer below
    tokens = load_tokenizer(space.model)  # once per worker process: it is shared within the process
    done = chunk_batch(batch, space, tokens.count_tokens, tokens.unknown_share, tokens.learn_words)
    rows = done.rows.append_column(REASON, pa.nulls(done.rows.num_rows, pa.string()))
    schema = rows.schema
    reasons = pa.Table.from_pylist(
        [{"doc_id": q["doc_id"], "tenant": None, REASON: q["reason"]} for q in done.quarantined], schema=schema
    )
    return pa.concat_tables([rows, reasons])


def _windows(parts: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The documents in order, as tables of at most WINDOW_DOCUMENTS documents (or about WINDOW_BYTES of them)."""
    held: list[pa.Table] = []
    rows = size = 0
    for part in parts:
        if not part.num_rows:
            continue
        held.append(part)
        rows += part.num_rows
        size += part.nbytes
        if rows >= WINDOW_DOCUMENTS or size >= WINDOW_BYTES:
            yield pa.concat_tables(held)
            held, rows, size = [], 0, 0
    if held:
        yield pa.concat_tables(held)


class RayChunker:
    """Chunks a space's documents on a Ray cluster (see the module's note); a ``Chunker`` to ``plan_chunks`` and
    ``apply_chunks``. Fewer than ``min_documents`` documents go to ``local`` (the run's process) instead, and
    nothing connects to the cluster for them."""

    def __init__(
        self,
        space: SpaceSpec,
        address: str,
        local: Chunker,
        min_documents: int = DEFAULT_RAY_CHUNK_MIN_DOCUMENTS,
        batch_size: int = DOCUMENTS_PER_BATCH,
        log: Log | None = None,
    ) -> None:
        self.space = space
        self.address = address
        self.local = local
        self.min_documents = min_documents
        self.batch_size = batch_size
        self.log = log or (lambda _message: None)
        self.sent = 0  # documents sent to the cluster
        self._progress: ChunkProgress | None = None

    def chunk_batches(self, parts: Iterable[pa.Table], documents: int) -> Iterator[ChunkedBatch]:
        if documents < self.min_documents:
            if documents:
                self.log(f"{self.space.name}: {documents} document(s) to chunk, fewer than the {self.min_documents} "
                         "worth sending to the Ray cluster (ray_chunk_min_documents): chunking them in this process")
            yield from self.local.chunk_batches(parts, documents)
            return
        connect(self.address)
        self.sent += documents
        self.log(f"{self.space.name}: chunking {documents} document(s) on the Ray cluster, "
                 f"{self.batch_size} a batch")
        progress = self._progress = ChunkProgress(self.space, documents, "on Ray", self.log)
        for window in _windows(parts):
            for done in self._chunk_window(window):
                progress.add(done.documents)
                yield done

    def report(self) -> dict[str, Any]:
        """Where the documents were chunked: on Ray (how many, how fast) or in process below the threshold."""
        found: dict[str, Any] = {
            "chunked_on": "ray" if self.sent else "process",
            "ray_chunk_min_documents": self.min_documents,
            "ray_chunk_documents": self.sent,
        }
        if self._progress is not None:
            seconds = self._progress.seconds
            found["ray_chunk_seconds"] = round(seconds, 3)
            found["ray_chunk_documents_per_s"] = round(self._progress.done / seconds, 1) if seconds > 0 else 0.0
        return found

    def _chunk_window(self, window: pa.Table) -> Iterator[ChunkedBatch]:
        """One window's chunks, batch by batch in document order, as Ray Data's tasks finish them."""
        size = self.batch_size
        window = window.select(CHUNK_COLUMNS)
        blocks = [window.slice(i, size) for i in range(0, window.num_rows, size)]
        dataset = ray.data.from_arrow(blocks).map_batches(
            cast(Any, chunk_on_worker),  # Ray's types miss a function's keyword arguments (``fn_kwargs``)
            fn_kwargs={"space": self.space},
            batch_size=size,
            batch_format="pyarrow",
            num_cpus=1,
        )
        dataset.context.execution_options.preserve_order = True  # document order, as in process
        dataset.context.enable_progress_bars = False
        for batch in self._batches(dataset):
            reasons = batch[REASON]
            is_row = pc.is_null(reasons)
            rows = batch.filter(is_row).select(CHUNKS_SCHEMA.names).cast(CHUNKS_SCHEMA)
            quarantined = batch.filter(pc.invert(is_row)).select(["doc_id", REASON]).to_pylist()
            yield ChunkedBatch(rows, [{"doc_id": q["doc_id"], "stage": "chunking", "reason": q[REASON]}
                                      for q in quarantined])

    def _batches(self, dataset: ray.data.Dataset) -> Iterator[pa.Table]:
        """The dataset's output blocks; a tokenizer the workers cannot load fails with one ModelLoadError (a task
        that raises is not retried: only a lost worker is)."""
        try:
            for found in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                yield cast(pa.Table, found)
        except Exception as exc:
            error = explained(exc, self.address, self.space,
                              f"the tokenizer of space {self.space.name!r} to chunk its documents")
            if error is exc:
                raise
            raise error from exc


def cluster_summary() -> dict[str, Any]:
    """The connected cluster's nodes and resources (for logs and benchmarks)."""
    return {"nodes": len([n for n in ray.nodes() if n.get("Alive")]), **ray.cluster_resources()}
