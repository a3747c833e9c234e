"""Dagster on PostgreSQL: a real server, the production profile deploy/dagster.postgres.yaml, a real
pipeline run; then the rows are read back from PostgreSQL with psycopg2, not through Dagster."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from embedops.core.embedder import SpaceEmbedder
from embedops.pipelines.check_runs import run_checks
from embedops.pipelines.partitions import tenant_space_key
from tests.conftest import Project, make_project
from tests.postgres import PgServer, query

pytestmark = pytest.mark.postgres

PROFILE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.postgres.yaml"
DOCS: dict[str, str | bytes] = {
    "lamp.md": "# Lamps\n\nA lighthouse lamp burned whale oil, then kerosene, then electricity.",
    "bells.txt": "Fog bells\n\nIn fog, bells warned ships when the light could not be seen.",
}


def test_the_production_profile_keeps_runs_events_and_checks_in_postgres(
    postgres: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: SpaceEmbedder
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROFILE, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in {"HOST": "127.0.0.1", "PORT": str(postgres.port), "DB": postgres.db_name,
                        "USER": postgres.user, "PASSWORD": postgres.password}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.run_coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs > 1
        assert [limit["key"] for limit in queue.tag_concurrency_limits] == ["dagster/partition/tenant"]

        project: Project = dataclasses.replace(make_project(tmp_path), instance=instance)
        project.write("acme", DOCS)
        summary = project.ingest("acme")
        assert (summary.documents, summary.quarantined) == (2, []) and summary.index_rows == summary.chunks >= 2
        space = project.spaces.serving_space
        key = str(tenant_space_key("acme", space.name))
        # checks the pipeline runs itself land with the ingest; run one other (reconciliation if there is one)
        # the way `embedops check` does
        check_keys = project.defs.resolve_asset_graph().asset_check_keys
        evaluated = {k for k in check_keys if check_rows(postgres, k)}
        others = sorted(check_keys - evaluated, key=lambda k: (k.name != "reconciliation", k.to_user_string()))
        if others:
            reports = run_checks(project.defs, instance, tenant="acme", names=[others[0].name])
            assert reports, f"no evaluation of {others[0].to_user_string()}"
            evaluated.add(others[0])

    runs = dict(query(postgres, "SELECT run_id, status FROM runs"))
    assert {run_id: runs.get(run_id) for run_id in summary.run_ids} == dict.fromkeys(summary.run_ids, "SUCCESS")
    embed_run = summary.run_ids[1]
    assert query(postgres, "SELECT value FROM run_tags WHERE run_id = %s AND key = %s",
                 embed_run, "dagster/partition/tenant") == [("acme",)]

    materialized = set(query(postgres, "SELECT asset_key, partition FROM event_logs "
                                       "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"))
    assert materialized >= {
        (dg.AssetKey("source_documents").to_string(), "acme"),
        *((dg.AssetKey(name).to_string(), key) for name in ("document_chunks", "chunk_embeddings", "vector_index")),
    }
    assert query(postgres, "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
                 embed_run, DagsterEventType.RUN_SUCCESS.value) == [(1,)]

    for check_key in evaluated:  # evaluated (passed or failed, not only planned), on the partition ingested
        rows = check_rows(postgres, check_key)
        assert rows and set(rows) <= {(p, s) for p in (key, "acme") for s in ("SUCCEEDED", "FAILED")}, rows


def check_rows(server: PgServer, check_key: dg.AssetCheckKey) -> list[tuple]:
    return query(server, "SELECT partition, execution_status FROM asset_check_executions "
                         "WHERE asset_key = %s AND check_name = %s",
                 check_key.asset_key.to_string(), check_key.name)
