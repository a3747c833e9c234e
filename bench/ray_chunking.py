"""Chunking on Ray: the same synthetic documents cut into chunk rows in process and by ``RayChunker`` on a local
Ray cluster of 1 and of 2 nodes (each node 1 CPU), with the static model's tokenizer.

``python -m bench.ray_chunking [--documents 5000] [--data DIR]`` prints the figures as JSON. Each configuration goes
through ``plan_chunks`` into an in-memory sink; the Ray figures are taken twice on the same cluster (``cold``: the
workers start and import embedops; ``warm``: they are up), with the cluster's own start apart. Every run's chunk table
is checked equal to the in-process one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep Ray's services on 127.0.0.1

NODE = {"num_cpus": 1, "object_store_memory": 200 * 2**20, "node_ip_address": "127.0.0.1"}


def documents_table(data: Path, n: int) -> pa.Table:
    """``n`` synthetic documents as a source_documents table."""
    from bench.data import synthetic_docs
    from embedops.core.sources import DOCUMENTS_SCHEMA

    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"tenant": "bench", "doc_id": name, "suffix": ".md", "size": len(text), "modified_at": stamp,
             "checksum": hashlib.sha256(text.encode()).hexdigest(), "text": text, "read_at": stamp}
            for name, text in synthetic_docs(data, n).items()]
    return pa.Table.from_pylist(rows, schema=DOCUMENTS_SCHEMA)


def chunk(documents: pa.Table, space, chunker) -> tuple[float, pa.Table]:  # type: ignore[no-untyped-def]
    from embedops.core.ingest import CHUNKS_SCHEMA, plan_chunks
    from embedops.core.tables import Collector

    out = Collector(CHUNKS_SCHEMA)
    started = time.perf_counter()
    plan_chunks(documents, None, space, chunker, out)
    return time.perf_counter() - started, out.table()


def run(data: Path, n: int, tmp: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from bench.tools import space_for
    from embedops.core.distributed import RayChunker
    from embedops.core.embedder import SpaceEmbedder
    from embedops.core.ingest import LocalChunker

    _, space = space_for("static", tmp / "ray-chunking")
    documents = documents_table(data, n)
    model = SpaceEmbedder(space)
    model.count_tokens("warm up")  # the tokenizer loads outside the timing, as on a warm worker
    out: dict = {"documents": n, "load_start": list(os.getloadavg()), "configs": {}}
    seconds, expected = chunk(documents, space, LocalChunker.of(space, model))
    out["chunks"] = expected.num_rows
    out["configs"]["in process"] = {"seconds": round(seconds, 2), "documents_per_s": round(n / seconds, 1)}
    for nodes in (1, 2):
        started = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        for _ in range(nodes - 1):
            cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        figures: dict = {"cluster_start_s": round(time.perf_counter() - started, 1)}
        try:
            for phase in ("cold", "warm"):
                chunker = RayChunker(space, cluster.address, LocalChunker.of(space, model), min_documents=1)
                seconds, found = chunk(documents, space, chunker)
                assert found.equals(expected), f"{nodes} node(s), {phase}: a different chunk table"
                figures[f"{phase}_seconds"] = round(seconds, 2)
                figures[f"{phase}_documents_per_s"] = round(n / seconds, 1)
        finally:
            ray.shutdown()
            cluster.shutdown()
        out["configs"][f"{nodes} node{'s' if nodes > 1 else ''}"] = figures
    out["load_end"] = list(os.getloadavg())
    return out


def main(argv: list[str] | None = None) -> None:
    import tempfile

    from bench.data import data_root

    parser = argparse.ArgumentParser(prog="python -m bench.ray_chunking", description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args(argv)
    print(json.dumps(run(data_root(args.data), args.documents, Path(tempfile.mkdtemp(prefix="ray-chunking-"))),
                     indent=2))


if __name__ == "__main__":
    main()
