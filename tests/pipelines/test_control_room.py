"""The Dagster UI as the control room, through a real webserver and daemon on 127.0.0.1.

The webserver receives the GraphQL requests the UI sends (the Launchpad's partition picker, the
materialize dialog's backfill); the daemon runs the sensors, turns the backfill into runs and
dequeues them through the project's dagster.yaml (HotFirstRunCoordinator, runs of one partition
taking turns). Every run is its own process. The space is the fast static model.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from embedops.core.settings import Settings
from embedops.definitions import build_defs
from embedops.pipelines.execution import LAUNCHED_BY
from embedops.pipelines.runs import run_ingest
from tests.migration.conftest import STATIC
from tests.pipelines.test_run_queue import LAUNCH as LAUNCH_BACKFILL
from tests.processes import Background, free_port, graphql, wait_for, webserver_up

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = {"repositoryLocationName": "embedops", "repositoryName": "__repository__"}
DOC = "# {t}\n\nHow {t} ships parcels, bills customers and rotates its keys, in a few short sentences.\n"

PARTITION = """
query Partition($repo: RepositorySelector!, $set: String!, $name: String!) {
  partitionSetOrError(repositorySelector: $repo, partitionSetName: $set) {
    __typename
    ... on PartitionSet {
      partition(partitionName: $name) {
        tagsOrError { __typename ... on PartitionTags { results { key value } } }
        runConfigOrError { __typename ... on PartitionRunConfig { yaml } }
      }
    }
  }
}
"""
LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""
SENSOR_TICK = """
query Tick($sensor: SensorSelector!) {
  sensorOrError(sensorSelector: $sensor) {
    __typename
    ... on Sensor { sensorState { ticks(limit: 1) { status cursor } } }
  }
}
"""


@dataclass
class ControlRoom:
    port: int
    dagster_home: Path
    daemon: Background

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = graphql(self.port, query, variables)
        assert "errors" not in body, body
        return body["data"]

    def launch(self, job: str, partition: str) -> str:
        """What the Launchpad does: the partition's tags and config from the picker, then launchRun."""
        found = self.graphql(PARTITION, {"repo": LOCATION, "set": f"{job}_partition_set", "name": partition})
        chosen = found["partitionSetOrError"]["partition"]
        tags = chosen["tagsOrError"]["results"]
        params = {
            "selector": {**LOCATION, "pipelineName": job},
            "runConfigData": yaml.safe_load(chosen["runConfigOrError"]["yaml"]) or {},
            "executionMetadata": {"tags": tags},
        }
        launched = self.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return str(launched["run"]["runId"])

    def runs(self, **tags: str) -> list[dg.DagsterRun]:
        with dg.DagsterInstance.from_config(str(self.dagster_home)) as instance:
            return list(instance.get_runs(dg.RunsFilter(tags=tags or None)))

    def finished(self, run_ids: list[str]) -> list[dg.RunRecord]:
        """Wait for the runs to end; their records, in start order."""
        def records() -> list[dg.RunRecord]:
            with dg.DagsterInstance.from_config(str(self.dagster_home)) as instance:
                return list(instance.get_run_records(dg.RunsFilter(run_ids=run_ids)))

        wait_for(lambda: all(r.dagster_run.is_finished for r in records()) and len(records()) == len(run_ids),
                 300, f"runs {run_ids} to finish", self.daemon)
        return sorted(records(), key=lambda r: r.start_time or 0)

    def sensor_cursor(self, name: str) -> int | None:
        sensor = {**LOCATION, "sensorName": name}
        ticks = self.graphql(SENSOR_TICK, {"sensor": sensor})["sensorOrError"]["sensorState"]["ticks"]
        cursor = ticks[0]["cursor"] if ticks else None
        return int(cursor) if cursor else None


@pytest.fixture(scope="module")
def control_room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlRoom]:
    """Two tenants in the static space, their sources registered outside the watched sources root
    (the folder sensor stays idle); a webserver and a daemon on the project's dagster.yaml."""
    root = tmp_path_factory.mktemp("control-room")
    spaces_file = root / "spaces.yaml"
    spaces_file.write_text(yaml.safe_dump({"alias": "docs", "serving": "static", "spaces": [STATIC]}))
    env = {
        **os.environ, "EMBEDOPS_HOME": str(root / "home"), "EMBEDOPS_SOURCES": str(root / "watched"),
        "EMBEDOPS_SPACES": str(spaces_file), "DAGSTER_HOME": str(root / "dagster"), "HF_HUB_OFFLINE": "1",
    }
    dagster_home = root / "dagster"
    dagster_home.mkdir()
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())  # the project's queue, as shipped
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump({**config, "telemetry": {"enabled": False}}))
    settings = Settings.from_env(env)
    defs = build_defs(settings)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for tenant in ("acme", "globex"):
            folder = root / "sources" / tenant
            folder.mkdir(parents=True)
            (folder / "guide.md").write_text(DOC.format(t=tenant))
            run_ingest(defs, instance, tenant, [settings_space(defs)], source=folder)
    workspace = ["-w", str(REPO / "workspace.yaml")]
    port = free_port()
    web = Background([str(BIN / "dagster-webserver"), *workspace, "-h", "127.0.0.1", "-p", str(port)],
                     root / "webserver.log", env, cwd=root)
    daemon = Background([str(BIN / "dagster-daemon"), "run", *workspace], root / "daemon.log", env, cwd=root)
    room = ControlRoom(port, dagster_home, daemon)
    try:
        wait_for(lambda: webserver_up(port), 120, "the Dagster webserver", web)
        # dual_write_sensor's first tick starts watching from now
        wait_for(lambda: room.sensor_cursor("dual_write_sensor") is not None, 180, "dual_write_sensor's first tick",
                 daemon)
        yield room
    finally:
        daemon.stop()
        web.stop()


def settings_space(defs: dg.Definitions) -> Any:
    return defs.resources["workspace"].spaces().get("static")  # type: ignore[union-attr]


def _checks(dagster_home: Path, run_id: str) -> dict[str, tuple[bool, str | None]]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    found = {}
    for event in events:
        data = event.dagster_event.asset_check_evaluation_data  # type: ignore[union-attr]
        found[data.check_name] = (data.passed, data.partition)
    return found


def test_the_checks_of_one_partition_run_from_the_launchpad(control_room: ControlRoom) -> None:
    run_id = control_room.launch("monitoring_checks_job", "static|acme")
    [record] = control_room.finished([run_id])
    assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert record.dagster_run.tags[LAUNCHED_BY] == "ui"
    assert _checks(control_room.dagster_home, run_id) == {
        name: (True, "static|acme")
        for name in ("reconciliation", "sentinel_drift", "nn_stability", "distribution_shift", "freshness",
                     "one_space_per_collection", "provenance_complete", "document_chunks_quality")
    }
    [tenant_run] = control_room.finished([control_room.launch("source_checks_job", "globex")])
    assert tenant_run.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert _checks(control_room.dagster_home, tenant_run.dagster_run.run_id) == {
        "source_documents_quality": (True, "globex"), "replication_slot_lag": (True, "globex"),
        "table_source_columns": (True, "globex"),
    }


def test_two_runs_of_one_partition_never_run_at_once(control_room: ControlRoom) -> None:
    # two slots in the queue, two launches of one partition: the second waits for the first
    first, second = (control_room.launch("embed_space_job", "static|globex") for _ in range(2))
    done = control_room.finished([first, second])
    assert [r.dagster_run.status for r in done] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert done[0].end_time is not None and done[1].start_time is not None
    assert done[0].end_time <= done[1].start_time


def test_a_backfill_from_the_ui_gets_no_second_run_from_dual_write(control_room: ControlRoom) -> None:
    (control_room.dagster_home.parent / "sources" / "acme" / "billing.md").write_text(
        "# Billing\n\nAcme bills monthly in arrears; a failed card payment is retried after three days.\n"
    )
    params = {
        "assetSelection": [{"path": [a]} for a in
                           ("source_documents", "document_chunks", "chunk_embeddings", "vector_index")],
        "partitionNames": ["acme"],
        "fromFailure": False,
    }
    launched = control_room.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = launched["backfillId"]
    wait_for(lambda: len(control_room.runs(**{"dagster/backfill": backfill})) == 2, 300,
             "the backfill's two runs (sources, then chunks to index)", control_room.daemon)
    runs = control_room.runs(**{"dagster/backfill": backfill})
    done = control_room.finished([r.run_id for r in runs])
    assert [r.dagster_run.status for r in done] == [dg.DagsterRunStatus.SUCCESS] * 2
    assert {r.dagster_run.tags[LAUNCHED_BY] for r in done} == {f"backfill:{backfill}"}

    # dual_write_sensor has seen the backfill's new source_documents, and left the partition to it
    with dg.DagsterInstance.from_config(str(control_room.dagster_home)) as instance:
        seen = instance.fetch_materializations(dg.AssetKey("source_documents"), limit=1).records[0].storage_id
    wait_for(lambda: (control_room.sensor_cursor("dual_write_sensor") or 0) >= seen, 180,
             "a dual_write_sensor tick after the backfill read the sources", control_room.daemon)
    assert control_room.runs(**{"embedops/trigger": "dual-write"}) == []
