"""chunk_embeddings on a two-node local Ray cluster: the same output as in process, incremental, and failures
handled (a worker killed mid-run is retried; a model the workers cannot load fails with one clear error)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from embedops.core.cache import EmbeddingCache
from embedops.core.ingest import embed_chunks
from embedops.core.spaces import ModelSpec, SpaceSpec
from embedops.core.stores.base import index_schema
from embedops.core.tables import Collector
from embedops.errors import ModelLoadError
from tests.conftest import Project
from tests.distributed.conftest import corpus, ray_worker_pids, static_project

ray = pytest.importorskip("ray")
import embedops.core.distributed as distributed  # noqa: E402

PROVENANCE = ["chunk_id", "tenant", "doc_id", "seq", "text", "text_hash", "source_checksum", "space_id",
              "space_name", "model", "config_hash"]


def embeddings(project: Project, tenant: str) -> pa.Table:
    table = project.workspace.tables().dataset("chunk_embeddings", (tenant, "static")).to_table()
    return table.sort_by("chunk_id")


def assert_same_embeddings(ours: pa.Table, theirs: pa.Table) -> None:
    assert ours.num_rows == theirs.num_rows > 0
    for name in PROVENANCE:
        assert ours[name].to_pylist() == theirs[name].to_pylist(), name
    np.testing.assert_allclose(np.stack(ours["vector"].to_numpy(zero_copy_only=False)),
                               np.stack(theirs["vector"].to_numpy(zero_copy_only=False)), rtol=1e-5, atol=1e-6)


def test_a_tenant_embedded_on_ray_equals_the_in_process_result(ray_cluster: str, tmp_path: Path) -> None:
    files = corpus(30)
    local, remote = static_project(tmp_path / "local"), static_project(tmp_path / "ray", ray_cluster)
    for project in (local, remote):
        project.write("acme", files)
        project.age("acme")
    expected = local.ingest("acme")
    found = remote.ingest("acme")

    assert (found.chunks, found.model_calls, found.cache_hits, found.index_rows) == (
        expected.chunks, expected.model_calls, expected.cache_hits, expected.index_rows)
    assert found.model_calls > 16  # more than one batch went to the pool
    assert_same_embeddings(embeddings(remote, "acme"), embeddings(local, "acme"))
    event = remote.instance.get_latest_materialization_event(dg.AssetKey("chunk_embeddings"))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.metadata["ray_texts_embedded"].value == found.model_calls

    # an unchanged tenant sends nothing: this process does not even join the cluster again
    ray.shutdown()
    again = remote.ingest("acme")
    assert again.model_calls == 0 and again.space_unchanged
    assert not ray.is_initialized()

    # one changed document: only its texts go to the cluster
    remote.write("acme", {"note-003.md": "# Note 3\n\nA new first line that no other document has."})
    changed = remote.ingest("acme")
    local.write("acme", {"note-003.md": "# Note 3\n\nA new first line that no other document has."})
    local.ingest("acme")
    assert changed.model_calls == 1 and ray.is_initialized()
    assert_same_embeddings(embeddings(remote, "acme"), embeddings(local, "acme"))


def _chunks(tmp_path: Path, documents: int) -> tuple[pa.Table, SpaceSpec]:
    """The chunk rows of a small tenant, cut in process, and their space."""
    project = static_project(tmp_path / "chunks")
    project.write("acme", corpus(documents))
    project.ingest("acme")
    chunks = project.workspace.tables().dataset("document_chunks", ("acme", "static")).to_table()
    return chunks.sort_by([("doc_id", "ascending"), ("seq", "ascending")]), project.spaces.get("static")


def test_a_worker_killed_mid_embedding_is_retried_with_the_same_result(
    ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks, space = _chunks(tmp_path, 60)
    schema = index_schema(space.dimension)
    local_out = Collector(schema)
    from embedops.core.embedder import SpaceEmbedder

    expected = embed_chunks(chunks, space, SpaceEmbedder(space), EmbeddingCache(str(tmp_path / "c1")), local_out)

    killed: list[int] = []

    def kill_a_replica(message: str) -> None:
        if killed or not message.startswith(f"{space.name}: embedded"):
            return
        pids = ray_worker_pids("MapWorker", "ModelReplica")
        assert pids, "no model replica found to kill"
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    monkeypatch.setattr(distributed, "PROGRESS_EVERY_S", 0.0)  # every batch reports, so the kill lands early
    encoder = distributed.RayEmbedder(space, ray_cluster, actors=2, batch_size=4, log=kill_a_replica)
    ray_out = Collector(schema)
    found = embed_chunks(chunks, space, encoder, EmbeddingCache(str(tmp_path / "c2")), ray_out)

    assert killed and encoder.progress()["ray_texts_embedded"] == expected.model_calls
    assert (found.model_calls, found.cache_hits, found.quarantined) == (
        expected.model_calls, expected.cache_hits, expected.quarantined)
    assert_same_embeddings(ray_out.table().sort_by("chunk_id").drop_columns(["embedded_at"]),
                           local_out.table().sort_by("chunk_id").drop_columns(["embedded_at"]))


def test_a_model_the_workers_cannot_load_fails_with_one_error_and_writes_nothing(
    ray_cluster: str, tmp_path: Path
) -> None:
    chunks, _ = _chunks(tmp_path, 3)
    folder = tmp_path / "model"
    import static_model

    shutil.copytree(Path(static_model.__file__).parent / "model", folder)
    space = SpaceSpec(name="copied", dimension=64,
                      model=ModelSpec(name="copied-static", backend="model2vec", path=str(folder)))
    encoder = distributed.RayEmbedder(space, ray_cluster, actors=2, batch_size=4)  # the identity is taken here
    for weights in folder.glob("*.safetensors"):
        weights.unlink()  # the workers find no weights
    cache = EmbeddingCache(str(tmp_path / "cache"))
    out = Collector(index_schema(space.dimension))

    with pytest.raises(ModelLoadError) as caught:
        embed_chunks(chunks, space, encoder, cache, out)

    message = str(caught.value)
    assert "could not load the model of space 'copied'" in message and "copied-static" in message
    assert "Traceback" not in message and message.count("\n") == 0
    assert out.rows == 0 and len(cache) == 0


def test_a_dagster_ray_resource_in_the_definitions_sends_the_embedding_to_its_cluster(
    ray_cluster: str, tmp_path: Path
) -> None:
    from dagster_ray import RayResource

    from embedops.definitions import build_defs
    from embedops.resources import EmbedderResource

    class ExistingCluster(RayResource):
        """dagster-ray's resource for a cluster that is already up (a test stand-in for KubeRayCluster)."""

        address: str

        @property
        def host(self) -> str:
            return "127.0.0.1"

        @property
        def name(self) -> str:
            return "existing"

        @property
        def ray_address(self) -> str:
            return self.address

    ray.shutdown()
    project = static_project(tmp_path)
    project.defs = build_defs(project.settings, EmbedderResource(ray_cluster=ExistingCluster(address=ray_cluster)))
    project.write("acme", corpus(4))
    found = project.ingest("acme")

    meta = project.instance.get_latest_materialization_event(dg.AssetKey("chunk_embeddings")).asset_materialization
    assert meta is not None
    assert found.model_calls > 0 and meta.metadata["ray_texts_embedded"].value == found.model_calls
