"""Fixtures for model migrations with two real models: MiniLM and the static (model2vec) model.

The golden set is a slice of BEIR SciFact (40 judged queries, their relevant abstracts and 100
distractors, each cut to 400 characters). Embedding it with MiniLM takes ~20 s on this machine, so
it is done once per session into an embedding cache that every migration project starts from:
the cache is keyed on (model identity, exact text), so this only saves model calls.

A project's vector store is LanceDB; a test parametrized over ``store_kind`` with ``STORE_KINDS``
runs on Weaviate too (the FAKE server of tests/fakes/weaviate_fake.py, one per test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import lance
import numpy as np
import pyarrow.compute as pc
import pytest
import yaml

from embedops.assets.metadata import plain
from embedops.core.cache import EmbeddingCache
from embedops.core.embedder import SpaceEmbedder
from embedops.core.evaluation import index_golden
from embedops.core.golden import load_beir, slice_golden, write_beir
from embedops.core.migration import TenantStatus, tenant_status
from embedops.core.settings import control_url
from embedops.core.spaces import DEFAULT_MODEL, SpaceSpec
from embedops.core.stores.lance import LanceStore
from embedops.core.tables import TableStore
from tests.conftest import SHARED_DATA, Project, make_project, on_weaviate

MINILM = {"name": "minilm", "dimension": 384, "model": {"name": DEFAULT_MODEL.name, "package": DEFAULT_MODEL.package}}
STATIC = {
    "name": "static",
    "dimension": 64,
    "model": {"name": "tokenlearn-static", "backend": "model2vec", "package": "static_model"},
}
SPACES = {"minilm": MINILM, "static": STATIC}

ACME = {
    "billing.md": "# Billing\n\nAcme bills monthly in arrears. A failed card payment is retried after three days.",
    "keys.md": "# API keys\n\nAPI keys are created per workspace and can be rotated at any time without downtime.",
}
GLOBEX = {
    "shipping.md": "# Shipping\n\nGlobex ships parcels from two warehouses; express orders leave the same day.",
    "returns.txt": "Returns\n\nUnused items can be returned within thirty days for a full refund.",
    "storage.md": "# Storage\n\nPallets are stored in racks and counted every night by the warehouse robots.",
}


@pytest.fixture(scope="session")
def golden_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = SHARED_DATA / "scifact"
    if not (source / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact golden set not found at {source} (set EMBEDOPS_SHARED_DATA)")
    return write_beir(slice_golden(load_beir(source), 40, 100, 400), tmp_path_factory.mktemp("golden") / "scifact")


@pytest.fixture(scope="session")
def warm_cache(tmp_path_factory: pytest.TempPathFactory, golden_dir: Path, minilm: SpaceEmbedder) -> Path:
    """An embedding cache holding both models' vectors of the golden slice (chunks and queries)."""
    from embedops.core.evaluation import cached_encode
    from embedops.core.spaces import parse_config

    root = tmp_path_factory.mktemp("warm")
    cache = EmbeddingCache(str(root / "data"))
    golden = load_beir(golden_dir)
    for space in parse_config({"spaces": [MINILM, STATIC]}).spaces:
        embedder = SpaceEmbedder(space)
        store = LanceStore(root / "lance", aliases=control_url(root))
        index_golden(golden, space, embedder, cache, store, TableStore(root / "tables"))
        cached_encode(list(golden.queries.values()), embedder, cache)
    cache.close()
    return root / "data" / "cache"


def copy_cache(warm_cache: Path, data_root: str) -> None:
    """Put every vector of the warm cache (``warm_cache``'s data root) into the cache under ``data_root``."""
    warm = lance.dataset(str(warm_cache / "vectors.lance")).to_table(columns=["key", "model", "vector"])
    cache = EmbeddingCache(data_root)
    for model in set(warm["model"].to_pylist()):
        rows = warm.filter(pc.equal(warm["model"], model))
        vectors = [np.asarray(v, dtype=np.float32) for v in rows["vector"].to_pylist()]
        cache.put_many(model, zip(rows["key"].to_pylist(), vectors, strict=True))
    cache.close()


MakeMigration = Callable[..., Project]
STORE_KINDS = ("lancedb", "weaviate")


@pytest.fixture
def store_kind() -> str:
    """The vector store of a migration project; ``@pytest.mark.parametrize("store_kind", STORE_KINDS)`` for each."""
    return "lancedb"


def cli_env(project: Project, dagster_home: Path) -> dict[str, str]:
    """The environment of an `embedops` command on ``project``, its vector store included."""
    s, store = project.settings, project.defs.resources["vector_store"]
    env = {
        "EMBEDOPS_HOME": str(s.home),
        "EMBEDOPS_SOURCES": str(s.sources_root),
        "EMBEDOPS_USER": "tester",
        "EMBEDOPS_SPACES": str(s.spaces_file),
        "DAGSTER_HOME": str(dagster_home),
        "EMBEDOPS_VECTOR_STORE": store.kind,
        **({"EMBEDOPS_DATABASE_URL": s.database_url} if s.database_url else {}),
        **({"EMBEDOPS_DATA_URL": s.data_url} if s.data_url else {}),
    }
    if store.kind == "weaviate":
        env["EMBEDOPS_WEAVIATE_URL"] = store.weaviate_url
        env["EMBEDOPS_WEAVIATE_GRPC_PORT"] = str(store.weaviate_grpc_port)
    return env


@pytest.fixture
def make_migration(
    request: pytest.FixtureRequest, tmp_path: Path, golden_dir: Path, warm_cache: Path, store_kind: str
) -> Iterator[MakeMigration]:
    """A project declaring ``serving`` (serving) and ``candidate``, both tenants ingested into serving."""
    server = request.getfixturevalue("weaviate_server") if store_kind == "weaviate" else None
    made: list[Project] = []  # projects on Weaviate

    def make(serving: str, candidate: str, weights: dict[str, float] | None = None, ingest: bool = True) -> Project:
        spaces_file = tmp_path / "spaces.yaml"
        spaces_file.write_text(
            yaml.safe_dump(
                {
                    "alias": "docs",
                    "serving": serving,
                    "spaces": [SPACES[serving], SPACES[candidate]],
                    "migration": {"golden": str(golden_dir), "tolerance": 0.01, "tenant_weights": weights or {}},
                }
            )
        )
        project = make_project(tmp_path, spaces_file)
        if server is not None:
            made.append(on_weaviate(project, server))
        copy_cache(warm_cache, project.settings.data_root)
        project.write("acme", ACME)
        project.write("globex", GLOBEX)
        if ingest:
            for tenant in ("acme", "globex"):
                project.ingest(tenant, serving)
        return project

    yield make
    for project in made:  # the Weaviate connections the tests opened, before the server stops
        project.store.close()


def sensor_tick(project: Project, sensor: Any, cursor: str | None = None) -> dg.SensorResult:
    """One evaluation of ``sensor`` on the project's instance and resources."""
    resources = {"workspace": project.workspace, "vector_store": project.defs.resources["vector_store"]}
    with dg.build_sensor_context(instance=project.instance, cursor=cursor, resources=resources) as context:
        return sensor(context)


def evaluate(project: Project, space: str) -> dict[str, Any]:
    """Materialize golden_set_evaluation for ``space``; its metadata as plain values."""
    result = project.defs.resolve_job_def("golden_set_evaluation_job").execute_in_process(
        instance=project.instance, partition_key=space
    )
    event = result.asset_materializations_for_node("golden_set_evaluation")[0]
    return plain(event.metadata)


def skip_reason(result: dg.SensorResult) -> str:
    reason = result.skip_reason
    return "" if reason is None else str(getattr(reason, "skip_message", reason))


def run_job(
    project: Project, job: str, request: dg.RunRequest | None = None, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    """Execute ``job`` in process, as a sensor's ``request`` asks when one is given."""
    if request is not None:
        kwargs.update(run_config=request.run_config, tags=request.tags, partition_key=request.partition_key)
    return project.defs.resolve_job_def(job).execute_in_process(instance=project.instance, **kwargs)


def status(project: Project, tenant: str, space: SpaceSpec) -> TenantStatus:
    """The tenant's materialization and reconciliation state in ``space``."""
    return tenant_status(project.workspace.tables(), project.store, tenant, space, project.source(tenant))
