"""RAY: the same corpus embedded in process and on a local Ray cluster of 1 and of 2 nodes (each node 1 CPU),
with the static model and with all-MiniLM-L6-v2; and the pipeline's own work per chunk (everything but the
model), with a profile of where it goes.

Every configuration embeds the same chunk rows (cut once per space, in process) through ``embed_chunks`` into an
in-memory sink with a fresh embedding cache, so what differs is only where the model runs. Ray figures include
the pool's start (actors loading the model); the cluster's own start is reported apart. ``--gpu`` instead runs a
one-node cluster with the machine's GPUs (one replica per GPU, ``num_gpus=1``) on a larger MiniLM corpus.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import os
import pstats
import time
from datetime import UTC, datetime

import pyarrow as pa

from bench.context import Context
from bench.data import synthetic_docs

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep Ray's services on 127.0.0.1

NODE = {"num_cpus": 1, "object_store_memory": 200 * 2**20, "node_ip_address": "127.0.0.1"}
SIZES = {"static": 20_000, "minilm": 1_000}  # documents (about 2 chunks each)
QUICK_SIZES = {"static": 2_000, "minilm": 40}
GPU_DOCUMENTS = 20_000
BATCH = {"static": 1024, "minilm": 64}  # texts per batch sent to one replica
GPU_BATCH = 1024  # a GPU replica embeds a batch in a fraction of a second: larger batches keep it busy


def run(ctx: Context, gpu: bool = False) -> dict:
    from bench.tools import space_for

    sizes = QUICK_SIZES if ctx.quick else SIZES
    out: dict = {"models": {}, "gpu": gpu, "load_start": list(os.getloadavg())}
    models = ["minilm"] if gpu else ["static", "minilm"]
    for model in models:
        _, space = space_for(model, ctx.tmp / f"ray-{model}")
        documents = GPU_DOCUMENTS if gpu else sizes[model]
        chunks = chunk_table(ctx, space, documents)
        ctx.log(f"RAY: {model}, {documents} documents, {chunks.num_rows} chunks")
        row: dict = {"documents": documents, "chunks": chunks.num_rows, "configs": {}}
        if not gpu:
            row["configs"]["in process"] = embed_in_process(ctx, space, chunks)
        for nodes in ([1] if gpu else [1, 2]):
            label = "1 node, GPUs" if gpu else f"{nodes} node{'s' if nodes > 1 else ''}"
            row["configs"][label] = embed_on_ray(ctx, space, chunks, nodes, GPU_BATCH if gpu else BATCH[model], gpu)
            ctx.log(f"RAY: {model} {label}: {row['configs'][label]}")
        base = row["configs"].get("1 node")
        two = row["configs"].get("2 nodes")
        if base and two:
            row["speedup_2_over_1"] = round(base["seconds"] / two["seconds"], 2)
            row["pool_speedup_2_over_1"] = round(base["pool_seconds"] / two["pool_seconds"], 2)
            if base["steady_texts_per_s"]:
                row["steady_speedup_2_over_1"] = round(two["steady_texts_per_s"] / base["steady_texts_per_s"], 2)
        out["models"][model] = row
    if not gpu:
        out["overhead"] = overhead(ctx, sizes["static"])  # the corpus the scaling rows embed
    out["load_end"] = list(os.getloadavg())
    return out


def chunk_table(ctx: Context, space, documents: int) -> pa.Table:  # type: ignore[no-untyped-def]
    """The chunk rows of ``documents`` synthetic documents in ``space``'s recipe (cut in process)."""
    from embedops.core.embedder import SpaceEmbedder

    return chunk_table_with(ctx, space, documents, SpaceEmbedder(space))[0]


def _embed(ctx: Context, space, chunks: pa.Table, encoder, name: str) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    from embedops.core.cache import EmbeddingCache
    from embedops.core.ingest import embed_chunks
    from embedops.core.stores.base import index_schema
    from embedops.core.tables import Collector

    cache = EmbeddingCache(str(ctx.tmp / f"cache-{name}-{time.monotonic_ns()}"))
    started = time.perf_counter()
    result = embed_chunks(chunks, space, encoder, cache, Collector(index_schema(space.dimension)))
    return time.perf_counter() - started, result


def embed_in_process(ctx: Context, space, chunks: pa.Table) -> dict:  # type: ignore[no-untyped-def]
    from embedops.core.embedder import SpaceEmbedder

    encoder = SpaceEmbedder(space)
    encoder.encode(["warm up"])  # the model loads outside the timing, as a long-running worker's would be
    seconds, result = _embed(ctx, space, chunks, encoder, "local")
    return {"seconds": round(seconds, 2), "texts": result.model_calls,  # type: ignore[attr-defined]
            "texts_per_s": round(result.model_calls / seconds, 1)}  # type: ignore[attr-defined]


def embed_on_ray(ctx: Context, space, chunks: pa.Table, nodes: int, batch: int, gpu: bool) -> dict:  # type: ignore[no-untyped-def]
    import ray
    from ray.cluster_utils import Cluster

    from embedops.core.distributed import RayEmbedder

    started = time.perf_counter()
    if gpu:
        ray.init(include_dashboard=False, num_cpus=os.cpu_count(), logging_level="WARNING")
        address, cluster = "auto", None
        actors = int(ray.cluster_resources().get("GPU", 0)) or 1
    else:
        cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        for _ in range(nodes - 1):
            cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        address, actors = cluster.address, nodes
    start_s = time.perf_counter() - started
    try:
        encoder = RayEmbedder(space, address, actors=actors, batch_size=batch, log=ctx.log)
        seconds, result = _embed(ctx, space, chunks, encoder, f"ray{nodes}")
        progress = encoder.progress()
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    return {"seconds": round(seconds, 2), "texts": result.model_calls,  # type: ignore[attr-defined]
            "texts_per_s": round(result.model_calls / seconds, 1),  # type: ignore[attr-defined]
            "pool_seconds": progress.get("ray_seconds", 0.0), "actors": actors,
            "first_result_s": progress.get("ray_first_result_s", 0.0),
            "steady_texts_per_s": progress.get("ray_steady_texts_per_s", 0.0),
            "cluster_start_s": round(start_s, 1)}


class _TimedEncoder:
    """The static model, with the time spent inside encode() added up (the model's share of a run)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.identity, self.dimension, self.calls = inner.identity, inner.dimension, 0
        self.seconds = 0.0

    @property
    def max_seq_length(self) -> int:
        return int(self.inner.max_seq_length)

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def unknown_share(self, text: str) -> float:
        return float(self.inner.unknown_share(text))

    def learn_words(self, texts: list[str]) -> None:
        self.inner.learn_words(texts)

    def encode(self, texts: list[str]):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return self.inner.encode(texts)
        finally:
            self.seconds += time.perf_counter() - started


def overhead(ctx: Context, documents: int) -> dict:
    """Chunk and embed ``documents`` in process with the static model, all of it under cProfile: the wall
    time minus the model's own encode() per chunk, and the functions the rest goes to. The model and the
    chunker's tokenizer are loaded, and the synthetic documents made, before the clock starts."""
    from bench.tools import space_for
    from embedops.core import embedder
    from embedops.core.embedder import SpaceEmbedder

    _, space = space_for("static", ctx.tmp / "overhead")
    figures: dict = {"documents": documents}
    for profiled in (False, True):  # timed without the profiler's cost, then profiled
        embedder._load_tokenizer.cache_clear()  # each pass counts with an empty word memo, as a new process does
        encoder = _TimedEncoder(SpaceEmbedder(space))
        encoder.encode(["warm up"])
        encoder.seconds = 0.0
        loading = time.perf_counter()
        encoder.count_tokens("warm up")  # the chunker's tokenizer loads once per process, like the model
        figures.setdefault("tokenizer_load_seconds", round(time.perf_counter() - loading, 2))
        docs = synthetic_docs(ctx.data, documents)  # the corpus is the input, not the pipeline's work
        profile = cProfile.Profile()
        started = time.perf_counter()
        if profiled:
            profile.enable()
        chunks, tokenizer_s = chunk_table_with(ctx, space, docs, encoder)
        chunk_s = time.perf_counter() - started
        seconds, _ = _embed(ctx, space, chunks, encoder, "overhead")
        profile.disable()
        total = time.perf_counter() - started
        if profiled:
            stream = io.StringIO()
            pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(14)
            lines = [line.strip() for line in stream.getvalue().splitlines()]
            figures["top"] = [line for line in lines if line and (line[0].isdigit() or line.startswith("ncalls"))]
            continue
        figures.update({"chunks": chunks.num_rows, "seconds": round(total, 2), "chunking_seconds": round(chunk_s, 2),
                        "chunker_tokenizer_seconds": round(tokenizer_s, 2),
                        "embedding_seconds": round(seconds, 2), "model_seconds": round(encoder.seconds, 2),
                        "own_ms_per_chunk": round((total - encoder.seconds) / chunks.num_rows * 1000, 4)})
    return figures


def chunk_table_with(ctx: Context, space, documents: int | dict[str, str], encoder) -> tuple[pa.Table, float]:  # type: ignore[no-untyped-def]
    """``chunk_table`` with a given encoder, and the seconds the chunker spent in its tokenizer. ``documents`` is
    a number of synthetic documents, or the documents themselves (name -> text). The documents go through
    `chunk_batch` a batch at a time, as a run chunks them."""
    from embedops.core.ingest import CHUNKS_SCHEMA, DOCUMENTS_PER_BATCH, chunk_batch

    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    timed = _TimedTokens(encoder)
    docs = documents if isinstance(documents, dict) else synthetic_docs(ctx.data, documents)
    rows = [
        {"tenant": "bench", "doc_id": name, "text": text, "suffix": ".md", "modified_at": stamp,
         "checksum": hashlib.sha256(text.encode()).hexdigest()}
        for name, text in docs.items()
    ]
    parts = []
    for start in range(0, len(rows), DOCUMENTS_PER_BATCH):
        part = pa.Table.from_pylist(rows[start : start + DOCUMENTS_PER_BATCH])
        parts.append(chunk_batch(part, space, timed.count_tokens, timed.unknown_share, timed.learn_words).rows)
    return (pa.concat_tables(parts) if parts else CHUNKS_SCHEMA.empty_table()), timed.seconds


class _TimedTokens:
    """Token counts and unknown shares, timed apart: the chunker's use of the tokenizer is the pipeline's own work
    (the model's share is its encode() alone, as in SCALE)."""

    def __init__(self, encoder: _TimedEncoder) -> None:
        self.encoder = encoder
        self.seconds = 0.0

    def count_tokens(self, text: str) -> int:
        started = time.perf_counter()
        try:
            return self.encoder.count_tokens(text)
        finally:
            self.seconds += time.perf_counter() - started

    def unknown_share(self, text: str) -> float:
        started = time.perf_counter()
        try:
            return self.encoder.unknown_share(text)
        finally:
            self.seconds += time.perf_counter() - started

    def learn_words(self, texts: list[str]) -> None:
        started = time.perf_counter()
        try:
            self.encoder.learn_words(texts)
        finally:
            self.seconds += time.perf_counter() - started


def markdown(ray_results: dict | None) -> list[str]:
    """The RAY section of the report (and the GPU section: how to run it, and the figure when taken)."""
    if not ray_results:
        return []
    if ray_results.get("gpu"):
        return gpu_markdown(ray_results)
    lines = ["## RAY: one tenant's embedding on a Ray cluster of 1 and 2 nodes", "",
             "The same chunk rows embedded through `embed_chunks` with a fresh cache: in process, and by "
             "`RayEmbedder` on a local `ray.cluster_utils.Cluster` of 1 and 2 nodes, each node limited to 1 CPU "
             "(Ray Data `map_batches` over an actor pool of one model replica per node). `seconds` is the whole "
             "call (cache lookups, the pool's start and model load on each replica, writing rows); `pool s` is "
             "from the first text sent to the last vector back, `first s` until the first vectors came back (the "
             "replicas' start), `steady texts/s` the rate after that. Cluster start is apart. The machine's load "
             f"average (1, 5, 15 min) was {_load(ray_results, 'load_start')} at the start and "
             f"{_load(ray_results, 'load_end')} at the end, on {os.cpu_count()} cores: other work shared them, so "
             "compare the rows with each other, not with other runs.", "",
             "| model | chunks | config | seconds | texts/s | pool s | first s | steady texts/s | cluster start s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, row in ray_results.get("models", {}).items():
        for label, c in row["configs"].items():
            lines.append(f"| {model} | {row['chunks']} | {label} | {c['seconds']} | {c['texts_per_s']} | "
                         f"{c.get('pool_seconds', '-')} | {c.get('first_result_s', '-')} | "
                         f"{c.get('steady_texts_per_s', '-')} | {c.get('cluster_start_s', '-')} |")
    lines.append("")
    for model, row in ray_results.get("models", {}).items():
        if "speedup_2_over_1" in row:
            lines.append(f"- {model}: 2 nodes / 1 node = {row['speedup_2_over_1']}x on the whole call, "
                         f"{row['pool_speedup_2_over_1']}x on the pool, "
                         f"{row.get('steady_speedup_2_over_1', '-')}x at the steady rate (goal 1.7x)")
    ov = ray_results.get("overhead")
    if ov:
        lines += ["", f"Pipeline's own work per chunk (static model, in process, {ov['documents']} documents, "
                  f"{ov['chunks']} chunks, the model and tokenizer loaded before, the tokenizer in "
                  f"{ov.get('tokenizer_load_seconds', '?')} s): {ov['seconds']} s in all, of which the model's "
                  "encode() "
                  f"{ov['model_seconds']} s and the chunker's tokenizer calls {ov['chunker_tokenizer_seconds']} s "
                  f"(counted as the pipeline's): **{ov['own_ms_per_chunk']} ms per chunk** "
                  "(goal 0.1). Top functions by own time (a second, profiled pass):", "", "```", *ov["top"], "```"]
    return lines + [""]


GPU_HOWTO = [
    "On a machine with one or more NVIDIA GPUs, CUDA-enabled torch, and this repository installed with "
    "`pip install -c constraints.txt -e '.[bench,ray]'`, from the repository root:", "",
    "```bash", "python -m bench --only RAY --gpu --publish", "```", "",
    f"This starts a one-node Ray cluster on the machine (Ray detects its GPUs), cuts {GPU_DOCUMENTS:,} synthetic "
    "documents (about 40,000 chunks) in all-MiniLM-L6-v2's recipe, and embeds them with one model replica per GPU "
    f"(`num_gpus=1`, the model on `cuda`), {GPU_BATCH} texts a batch; it replaces this section with the figures. "
    "It takes "
    "a few minutes: about a minute to cut the chunks on the CPU, the pool's start, then the embedding.",
    "",
    "What to expect: one data-center GPU embeds all-MiniLM-L6-v2 at well over 10,000 texts/s on its own, so "
    "the figure measures the pipeline around it: the driver's cache lookups and row building (see the pipeline's "
    "own work per chunk in the RAY section), Ray Data's transfer of text and vectors, and each replica's "
    "tokenizer. With more GPUs, raise `EMBEDOPS_RAY_ACTORS` to their number and the batch size "
    "(`EMBEDOPS_RAY_BATCH_SIZE`, 512 to 1024) until the steady rate stops rising.",
]


def _load(results: dict, key: str) -> str:
    return ", ".join(f"{x:.1f}" for x in results.get(key) or []) or "?"


def gpu_markdown(ray_results: dict) -> list[str]:
    """The GPU section: how to run it, and the figures of a ``--gpu`` run."""
    lines = ["## GPU: the RAY benchmark on a GPU node", "", *GPU_HOWTO, ""]
    for model, row in ray_results.get("models", {}).items():
        for label, c in row["configs"].items():
            lines.append(f"- {model}, {row['chunks']} chunks, {label} ({c['actors']} replica(s)): {c['seconds']} s, "
                         f"{c['texts_per_s']} texts/s in all, {c['steady_texts_per_s']} texts/s steady, first "
                         f"vectors after {c['first_result_s']} s")
    return lines + [""]
