"""A local Ray cluster of two nodes on 127.0.0.1 (one CPU, a 100 MB object store each), started once for the
session by the first test that asks for it and shut down by it; tests that do not ask never start Ray."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from embedops.core.settings import Settings
from tests.conftest import Project, make_project

# Ray picks the machine's outward address for its services unless told to stay on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

STATIC = {
    "name": "static",
    "dimension": 64,
    "model": {"name": "tokenlearn-static", "backend": "model2vec", "package": "static_model"},
    "chunker": {"max_tokens": 40, "overlap_tokens": 4, "min_tokens": 8},  # a few chunks per small document
}
NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20, "node_ip_address": "127.0.0.1"}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The address of a two-node local Ray cluster (the test process joins it as a driver when it embeds)."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()


def static_project(root: Path, ray_address: str = "", ray_batch_size: int = 16) -> Project:
    """A deployment whose one space embeds with the static model; on Ray when ``ray_address`` is given."""
    root.mkdir(parents=True, exist_ok=True)
    spaces_file = root / "spaces.yaml"
    spaces_file.write_text(yaml.safe_dump({"serving": "static", "spaces": [STATIC]}), encoding="utf-8")
    project = make_project(root, spaces_file)
    if not ray_address:
        return project
    settings = Settings(**{**project.settings.__dict__, "ray_address": ray_address, "ray_actors": 2,
                           "ray_batch_size": ray_batch_size})
    return make_project_from(settings)


def make_project_from(settings: Settings) -> Project:
    import dagster as dg

    from embedops.definitions import build_defs

    return Project(settings=settings, defs=build_defs(settings), instance=dg.DagsterInstance.ephemeral())


def corpus(documents: int, paragraphs: int = 3) -> dict[str, str]:
    """Small synthetic documents, each text distinct (some repeated across documents, to exercise the cache)."""
    files = {}
    for d in range(documents):
        body = "\n\n".join(
            f"Paragraph {p} of note {d % 7}: the {['billing', 'shipping', 'storage'][p % 3]} team reviews item {d}."
            for p in range(paragraphs)
        )
        files[f"note-{d:03d}.md"] = f"# Note {d}\n\n{body}"
    return files


def ray_worker_pids(*marks: str) -> list[int]:
    """PIDs of the Ray workers under this test's cluster whose process title has every one of ``marks`` (Ray names
    a worker after what it runs: ``ray::MapWorker(MapBatches(ModelReplica))``, ``...(chunk_on_worker)``)."""
    ours = {os.getpid()}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if all(mark in title for mark in marks) and descends_from(int(entry.name), ours):
            pids.append(int(entry.name))
    return pids


def descends_from(pid: int, ancestors: set[int]) -> bool:
    """Whether ``pid``'s chain of parents reaches one of ``ancestors`` (the test process started the raylets)."""
    while pid > 1:
        if pid in ancestors:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat[stat.rfind(")") + 2 :].split()[1])
    return False
