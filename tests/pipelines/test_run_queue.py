"""A partition backfill launched the way the Dagster UI launches it runs hottest tenant first.

Real parts: the Dagster webserver receives the UI's GraphQL mutation, the Dagster daemon turns the
backfill into runs and dequeues them through HotFirstRunCoordinator, and every run is its own process
on the instance in DAGSTER_HOME. The space is the fast static model, with a second chunker as the
new space, so the runs take seconds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from embedops.core.settings import Settings
from embedops.definitions import build_defs
from embedops.pipelines.partitions import tenant_space_key
from embedops.pipelines.queue import HotFirstRunCoordinator
from embedops.pipelines.runs import run_ingest
from tests.migration.conftest import STATIC
from tests.processes import Background, free_port, graphql, wait_for, webserver_up

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TENANTS = {"acme": 1, "globex": 0, "initech": 3}  # recorded searches: initech is hottest, globex coldest
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on PartitionSetNotFoundError { message }
  }
}
"""


def _instance_yaml(dagster_home: Path, max_concurrent_runs: int) -> None:
    """The project's dagster.yaml, with the queue's slots set for the test."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["run_coordinator"]["class"] == HotFirstRunCoordinator.__name__
    config["run_coordinator"]["config"].update(max_concurrent_runs=max_concurrent_runs, dequeue_interval_seconds=1)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump({**config, "telemetry": {"enabled": False}}))


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    """Three tenants ingested into the serving space, a second space declared, searches recorded."""
    spaces_file = tmp_path / "spaces.yaml"
    narrow = {**STATIC, "name": "static-narrow", "chunker": {"max_tokens": 40, "overlap_tokens": 8, "min_tokens": 4}}
    spaces_file.write_text(yaml.safe_dump({"alias": "docs", "serving": "static", "spaces": [STATIC, narrow]}))
    env = {
        **os.environ,
        "EMBEDOPS_HOME": str(tmp_path / "home"),
        "EMBEDOPS_SOURCES": str(tmp_path / "sources"),
        "EMBEDOPS_SPACES": str(spaces_file),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "HF_HUB_OFFLINE": "1",
    }
    settings = Settings.from_env(env)
    (tmp_path / "dagster").mkdir()
    _instance_yaml(tmp_path / "dagster", max_concurrent_runs=0)
    defs = build_defs(settings)
    registry = defs.resources["workspace"].registry()  # type: ignore[attr-defined]
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        for tenant, searches in TENANTS.items():
            folder = settings.sources_root / tenant
            folder.mkdir(parents=True)
            (folder / "guide.md").write_text(f"# {tenant}\n\nHow {tenant} ships parcels, bills customers and "
                                             "rotates its keys, in a few short sentences.\n")
            run_ingest(defs, instance, tenant, [defs.resources["workspace"].spaces().get("static")],  # type: ignore[attr-defined]
                       source=folder)
            for _ in range(searches):
                registry.log_search(tenant, "static")
    return settings, env


def test_a_backfill_launched_like_the_ui_runs_hottest_tenant_first(
    deployment: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = deployment
    dagster_home = Path(env["DAGSTER_HOME"])
    workspace = ["-w", str(REPO / "workspace.yaml")]

    # 1. the backfill dialog's request, to a real webserver; the queue holds every run (0 slots)
    port = free_port()
    web = Background([str(BIN / "dagster-webserver"), *workspace, "-h", "127.0.0.1", "-p", str(port)],
                     tmp_path / "webserver.log", env, cwd=REPO)
    try:
        wait_for(lambda: webserver_up(port), 90, "the Dagster webserver", web)
        params = {
            "assetSelection": [{"path": [name]} for name in ("document_chunks", "chunk_embeddings", "vector_index")],
            "partitionNames": [str(tenant_space_key(t, "static-narrow")) for t in sorted(TENANTS)],
            "fromFailure": False,
            # the launchpad's run config: steps in the run's own process, to keep the test short
            "runConfigData": {"execution": {"config": {"in_process": {}}}},
        }
        launched = graphql(port, LAUNCH, {"params": params})["data"]["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
    finally:
        web.stop()
    backfill = {"dagster/backfill": launched["backfillId"]}

    def runs(status: dg.DagsterRunStatus | None = None) -> list[dg.RunRecord]:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            filters = dg.RunsFilter(tags=backfill, statuses=[status] if status else None)
            return list(instance.get_run_records(filters=filters))

    daemon = Background([str(BIN / "dagster-daemon"), "run", *workspace], tmp_path / "daemon-1.log", env, cwd=REPO)
    try:
        wait_for(lambda: len(runs(dg.DagsterRunStatus.QUEUED)) == len(TENANTS), 120, "three queued runs", daemon)
    finally:
        daemon.stop()
    queued = {r.dagster_run.tags["dagster/partition/tenant"]: r.dagster_run.tags for r in runs()}
    assert {t: (tags["dagster/priority"], tags["embedops/searches"]) for t, tags in queued.items()} == {
        "initech": ("3", "3"),
        "acme": ("2", "1"),
        "globex": ("1", "0"),
    }

    # 2. one slot: the daemon dequeues by priority, so the runs start hottest first
    _instance_yaml(dagster_home, max_concurrent_runs=1)
    daemon = Background([str(BIN / "dagster-daemon"), "run", *workspace], tmp_path / "daemon-2.log", env, cwd=REPO)
    try:
        wait_for(lambda: len(runs(dg.DagsterRunStatus.SUCCESS)) == len(TENANTS), 300, "three finished runs", daemon)
    finally:
        daemon.stop()
    started = sorted(runs(), key=lambda r: r.start_time or 0)
    assert [r.dagster_run.tags["dagster/partition/tenant"] for r in started] == ["initech", "acme", "globex"]
    store = build_defs(settings).resources["vector_store"].open()  # type: ignore[attr-defined]
    narrow = build_defs(settings).resources["workspace"].spaces().get("static-narrow")  # type: ignore[attr-defined]
    assert all(store.count(t, narrow.space_id) >= 1 for t in TENANTS)
