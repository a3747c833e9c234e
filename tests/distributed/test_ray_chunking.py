"""document_chunks on a two-node local Ray cluster: the same chunk table as in process (ids, texts, token counts,
order, quarantine), a change below the threshold chunked in the run's own process, a worker killed mid-run retried
by Ray, a tokenizer the workers cannot load failing with one error; and without a cluster, no Ray at all."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from embedops.core import ingest
from embedops.core.embedder import SpaceEmbedder
from embedops.core.ingest import CHUNKS_SCHEMA, Chunker, ChunkPlan, LocalChunker, plan_chunks
from embedops.core.spaces import ModelSpec, SpaceSpec
from embedops.core.tables import Collector
from embedops.definitions import build_defs
from embedops.errors import ModelLoadError
from embedops.resources import EmbedderResource
from tests.conftest import Project
from tests.distributed.conftest import corpus, ray_worker_pids, static_project

ray = pytest.importorskip("ray")
import embedops.core.distributed as distributed  # noqa: E402

# a document that leaves nothing to embed (zero-width spaces only): quarantined in process and on Ray alike
EMPTY = {"note-empty.md": "\u200b\u200b\u200b"}


def chunk_table(project: Project, tenant: str) -> pa.Table:
    """The stored chunk table in its own order (the order the run wrote it)."""
    return project.workspace.tables().dataset("document_chunks", (tenant, "static")).to_table()


def quarantined(project: Project, tenant: str) -> list[dict]:
    return project.workspace.tables().dataset("chunk_quarantine", (tenant, "static")).to_table().to_pylist()


def chunks_metadata(project: Project) -> dict:
    event = project.instance.get_latest_materialization_event(dg.AssetKey("document_chunks"))
    assert event is not None and event.asset_materialization is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def source_documents(root: Path, files: dict[str, str]) -> tuple[pa.Table, SpaceSpec]:
    """A tenant's source_documents table (read in process) and the static space."""
    project = static_project(root)
    project.write("acme", files)
    project.ingest("acme")
    return project.workspace.tables().dataset("source_documents", ("acme",)).to_table(), project.spaces.get("static")


def on_ray(root: Path, address: str, min_documents: int) -> Project:
    """A deployment whose chunking and embedding go to the cluster at ``address`` from ``min_documents`` on."""
    project = static_project(root)
    project.defs = build_defs(project.settings, EmbedderResource(
        ray_address=address, ray_actors=2, ray_batch_size=16, ray_chunk_min_documents=min_documents))
    return project


def test_a_tenant_chunked_on_ray_gives_the_in_process_chunk_table(ray_cluster: str, tmp_path: Path) -> None:
    files = {**corpus(40), **EMPTY}
    local, remote = static_project(tmp_path / "local"), on_ray(tmp_path / "ray", ray_cluster, min_documents=1)
    for project in (local, remote):
        project.write("acme", files)
        project.age("acme")
    expected, found = local.ingest("acme"), remote.ingest("acme")

    theirs, ours = chunk_table(local, "acme"), chunk_table(remote, "acme")
    assert ours.num_rows == theirs.num_rows > 40
    for name in ("doc_id", "chunk_id", "seq", "text", "text_hash", "token_count", "source_checksum"):
        assert ours[name].to_pylist() == theirs[name].to_pylist(), name
    assert found.chunks == expected.chunks
    meta = chunks_metadata(remote)
    assert meta["chunked_on"] == "ray" and meta["ray_chunk_documents"] == len(files)
    quarantine = [quarantined(p, "acme") for p in (remote, local)]
    assert quarantine[0] == quarantine[1] == [
        {"doc_id": "note-empty.md", "stage": "chunking", "reason": "no text left after preprocessing"}]


def test_ray_chunker_keeps_document_order_across_many_batches(ray_cluster: str, tmp_path: Path) -> None:
    """Many small batches over two workers (so they finish out of order) still come back in document order."""
    documents, space = source_documents(tmp_path, {**corpus(60), **EMPTY})
    model = SpaceEmbedder(space)

    def plan(chunker: Chunker) -> tuple[ChunkPlan, pa.Table]:
        out = Collector(CHUNKS_SCHEMA)
        return plan_chunks(documents, None, space, chunker, out), out.table()

    expected, local_rows = plan(LocalChunker.of(space, model))
    messages: list[str] = []
    chunker = distributed.RayChunker(space, ray_cluster, LocalChunker.of(space, model), min_documents=1,
                                     batch_size=3, log=messages.append)
    found, ray_rows = plan(chunker)

    assert ray_rows.equals(local_rows)
    assert (found.rows, found.diff, found.quarantined) == (expected.rows, expected.diff, expected.quarantined)
    assert found.quarantined and chunker.report()["ray_chunk_documents"] == 61
    assert messages[-1].startswith("static: chunked 61 of 61 document(s) on Ray")


def test_a_change_below_the_threshold_is_chunked_in_process(ray_cluster: str, tmp_path: Path) -> None:
    project = on_ray(tmp_path, ray_cluster, min_documents=5)
    project.write("acme", corpus(8))
    project.age("acme")
    project.ingest("acme")
    assert chunks_metadata(project)["chunked_on"] == "ray"  # 8 new documents: on the cluster

    before = chunk_table(project, "acme")
    edit = {"note-003.md": "# Note 3\n\nA new first line that no other document has."}
    project.write("acme", edit)
    project.ingest("acme")

    meta = chunks_metadata(project)  # one changed document: below 5, in the run's process
    assert (meta["chunked_on"], meta["ray_chunk_documents"], meta["ray_chunk_min_documents"]) == ("process", 0, 5)
    assert (meta["added"], meta["changed"]) == (0, 1)
    after = chunk_table(project, "acme")
    texts = [r["text"] for r in after.to_pylist() if r["doc_id"] == "note-003.md"]
    assert len(texts) == 1 and "A new first line that no other document has." in texts[0]
    others = [pa.compute.not_equal(t["doc_id"], "note-003.md") for t in (before, after)]
    assert sorted(after.filter(others[1])["chunk_id"].to_pylist()) == sorted(
        before.filter(others[0])["chunk_id"].to_pylist())


def test_below_the_threshold_nothing_reaches_the_cluster(ray_cluster: str, tmp_path: Path) -> None:
    """A small change does not even connect to the cluster to chunk."""
    documents, space = source_documents(tmp_path, corpus(3))
    model = SpaceEmbedder(space)
    messages: list[str] = []
    chunker = distributed.RayChunker(space, ray_cluster, LocalChunker.of(space, model), min_documents=4,
                                     log=messages.append)
    ray.shutdown()

    out = Collector(CHUNKS_SCHEMA)
    plan = plan_chunks(documents, None, space, chunker, out)

    assert not ray.is_initialized()
    assert plan.rows == out.rows > 3 and chunker.report()["chunked_on"] == "process"
    assert "fewer than the 4 worth sending to the Ray cluster" in messages[0]


def test_a_worker_killed_mid_chunking_is_retried_with_the_same_result(
    ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents, space = source_documents(tmp_path, corpus(40, paragraphs=60))  # a few dozen chunks a document
    model = SpaceEmbedder(space)
    expected = Collector(CHUNKS_SCHEMA)
    plan_chunks(documents, None, space, LocalChunker.of(space, model), expected)

    killed: list[int] = []

    def kill_a_worker(message: str) -> None:
        """After the first batch is back, kill the first worker seen running a chunking task (Ray names the
        process after the task it runs, and ``ray::IDLE`` between tasks)."""
        deadline = time.monotonic() + 10
        while not killed and " chunked " in message and time.monotonic() < deadline:
            pids = ray_worker_pids("chunk_on_worker")
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.005)

    monkeypatch.setattr(ingest, "CHUNK_PROGRESS_EVERY_S", 0.0)  # every batch reports, so the kill lands early
    chunker = distributed.RayChunker(space, ray_cluster, LocalChunker.of(space, model), min_documents=1,
                                     batch_size=1, log=kill_a_worker)
    found = Collector(CHUNKS_SCHEMA)
    plan_chunks(documents, None, space, chunker, found)

    assert killed, "no worker was seen running a chunking task"
    assert chunker.report()["ray_chunk_documents"] == 40
    assert found.table().equals(expected.table())


def test_a_tokenizer_the_workers_cannot_load_fails_with_one_error(ray_cluster: str, tmp_path: Path) -> None:
    documents, _ = source_documents(tmp_path / "project", corpus(3))
    folder = tmp_path / "model"
    import static_model

    shutil.copytree(Path(static_model.__file__).parent / "model", folder)
    for name in ("tokenizer.json", "model.safetensors"):
        (folder / name).unlink()  # the workers find neither the tokenizer nor the weights
    space = SpaceSpec(name="copied", dimension=64,
                      model=ModelSpec(name="copied-static", backend="model2vec", path=str(folder)))
    chunker = distributed.RayChunker(space, ray_cluster, LocalChunker.of(space, SpaceEmbedder(space)),
                                     min_documents=1)
    out = Collector(CHUNKS_SCHEMA)

    with pytest.raises(ModelLoadError) as caught:
        plan_chunks(documents, None, space, chunker, out)

    message = str(caught.value)
    assert "could not load the tokenizer of space 'copied'" in message and "copied-static" in message
    assert "Traceback" not in message and message.count("\n") == 0
    assert out.rows == 0


def test_without_a_cluster_documents_are_chunked_in_process_and_ray_is_never_imported(tmp_path: Path) -> None:
    """The embedded default: no Ray address, so the chunker is the in-process one, and chunking imports no Ray."""
    code = (
        "import sys\n"
        "import pyarrow as pa\n"
        "from embedops.core.ingest import LocalChunker\n"
        "from embedops.core.spaces import DEFAULT_SPACE\n"
        "from embedops.resources import EmbedderResource\n"
        "chunker = EmbedderResource().chunker(DEFAULT_SPACE)\n"
        "doc = {'tenant': 'acme', 'doc_id': 'a.md', 'suffix': '.md', 'checksum': 'c', 'modified_at': None,\n"
        "       'text': '# A\\n\\nSome text to cut.'}\n"
        "done = list(chunker.chunk_batches([pa.Table.from_pylist([doc])], 1))\n"
        "assert isinstance(chunker, LocalChunker) and chunker.report() == {}\n"
        "print(done[0].doc_ids(), sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "EMBEDOPS_RAY_ADDRESS"} | {"EMBEDOPS_HOME": str(tmp_path)}
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "['a.md'] []"
