"""A table-sourced tenant through the real pipeline: initial load, changes through the slot, truncate, tenants
split by a column, and a crash between the index commit and the slot's confirmation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from embedops.core import cdc
from embedops.core.embedder import SpaceEmbedder
from embedops.core.search import search_tenant
from embedops.errors import RunFailedError
from embedops.pipelines.cdc import cdc_sensor, sync_table_tenant, table_source_checks_schedule
from embedops.pipelines.check_runs import run_checks
from embedops.pipelines.runs import run_ingest
from embedops.resources.pager import PagerResource
from tests.cdc.tables import ENV, execute, source
from tests.conftest import Project
from tests.pipelines.test_monitoring import ROUTING_KEY, FakePagerDuty, tick
from tests.postgres import PgServer

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def ingest_table(project: Project, tenant: str, spec: cdc.TableSource) -> None:
    run_ingest(project.defs, project.instance, tenant, [project.spaces.serving_space], source=spec.location)


def indexed(project: Project, tenant: str) -> dict[str, str]:
    """doc_id -> the text of its chunks, as the index holds them."""
    table = project.store.export(tenant, project.spaces.serving_space.space_id)
    out: dict[str, str] = {}
    for row in sorted(table.to_pylist(), key=lambda r: (r["doc_id"], r["seq"])):
        out[row["doc_id"]] = (out.get(row["doc_id"], "") + " " + row["text"]).strip()
    return out


def top_doc(project: Project, tenant: str, query: str) -> str:
    space = project.spaces.serving_space
    return search_tenant(project.store, space, SpaceEmbedder(space), tenant, query, k=1)[0].doc_id


def test_changes_through_the_slot_reach_the_index(project: Project, items: PgServer) -> None:
    spec = source()
    execute(items, "INSERT INTO items VALUES (1, 'Refunds', 'Refunds are paid within five days.', NULL), "
            "(2, 'Shipping', 'Parcels ship from the Oslo warehouse.', NULL), (3, NULL, NULL, NULL)")
    ingest_table(project, "acme", spec)
    assert set(indexed(project, "acme")) == {"items/1", "items/2"}  # items/3 has no text: quarantined
    quarantine = project.workspace.tables().read("source_quarantine", ("acme",)).to_pylist()
    assert [(q["doc_id"], q["reason"]) for q in quarantine] == [
        ("items/3", "empty document: title, body are NULL or blank")]

    execute(items, "UPDATE items SET body = 'Refunds are paid in bitcoin only.' WHERE id = 1")
    execute(items, "DELETE FROM items WHERE id = 2")
    execute(items, "INSERT INTO items VALUES (4, 'Opening hours', 'The help desk opens at nine.', NULL)")
    before = datetime.now(UTC)
    summary = sync_table_tenant(project.defs, project.instance, "acme")
    assert (summary.changed, summary.deleted, summary.confirmed) == (2, 1, True)
    assert summary.lag_p99_s is not None and 0 <= summary.lag_p99_s < 120
    now = indexed(project, "acme")
    assert set(now) == {"items/1", "items/4"} and "bitcoin" in now["items/1"]  # the deleted row's vectors left
    assert top_doc(project, "acme", "when does the help desk open") == "items/4"
    docs = {r["doc_id"]: r for r in project.workspace.tables().read("source_documents", ("acme",)).to_pylist()}
    assert docs["items/1"]["modified_at"] <= before  # the source's commit time, not the read's
    assert cdc.pending_changes(spec).empty  # confirmed after the index commit
    reports = {r.check: r for r in run_checks(project.defs, project.instance, tenant="acme",
                                              names=["freshness", "reconciliation"])}
    assert all(r.passed for r in reports.values()), [r.description for r in reports.values()]
    assert 0 < reports["freshness"].metadata["p99_lag_hours"] < 120 / 3600  # source commit -> index, per tenant
    [event] = project.instance.fetch_materializations(dg.AssetKey("source_documents"), limit=1).records
    assert event.asset_materialization.metadata["source_position"].value == summary.upto_lsn  # type: ignore[union-attr]

    execute(items, "TRUNCATE items")
    execute(items, "INSERT INTO items VALUES (5, 'Returns', 'Returns need the original box.', NULL)")
    summary = sync_table_tenant(project.defs, project.instance, "acme")
    assert summary.truncated and summary.deleted == 2
    assert set(indexed(project, "acme")) == {"items/5"}

    execute(items, "ALTER TABLE items RENAME COLUMN body TO content")  # the source stops, naming the column
    [report] = run_checks(project.defs, project.instance, tenant="acme", names=["table_source_columns"])
    assert (report.passed, report.severity, report.ids) == (False, "ERROR", ["body"])
    execute(items, "INSERT INTO items VALUES (6, 'Six', 'six', NULL)")
    with pytest.raises(RunFailedError, match="has no column body"):
        sync_table_tenant(project.defs, project.instance, "acme")
    assert not cdc.pending_changes(spec).empty  # nothing confirmed: the change waits for the fix


def test_tenants_split_by_a_column_never_see_each_other(project: Project, items: PgServer) -> None:
    execute(items, "INSERT INTO items VALUES (1, 'Acme', 'Acme sells anvils.', 'acme'), "
            "(2, 'Globex', 'Globex sells hammocks.', 'globex')")
    ingest_table(project, "acme", source("acme"))
    ingest_table(project, "globex", source("globex"))
    assert set(indexed(project, "acme")) == {"items/1"} and set(indexed(project, "globex")) == {"items/2"}
    execute(items, "INSERT INTO items VALUES (3, 'Globex', 'Globex sells garden gnomes.', 'globex')")
    execute(items, "UPDATE items SET org = 'globex' WHERE id = 1")  # the row moves to the other tenant
    sync_table_tenant(project.defs, project.instance, "acme")
    sync_table_tenant(project.defs, project.instance, "globex")
    assert indexed(project, "acme") == {}
    assert set(indexed(project, "globex")) == {"items/1", "items/2", "items/3"}


def test_the_sensor_requests_a_run_per_tenant_with_pending_changes_and_the_run_applies_them(
    project: Project, items: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute(items, "INSERT INTO items VALUES (1, 'A', 'acme text', 'acme'), (2, 'G', 'globex text', 'globex')")
    ingest_table(project, "acme", source("acme"))
    ingest_table(project, "globex", source("globex"))
    execute(items, "UPDATE items SET body = 'acme text, edited' WHERE id = 1")
    workspace = project.workspace
    with dg.build_sensor_context(instance=project.instance, resources={"workspace": workspace}) as context:
        result = cdc_sensor(context)
    assert isinstance(result, dg.SensorResult)
    requests = result.run_requests or []
    assert [r.tags["embedops/tenant"] for r in requests] == ["acme"]
    config = requests[0].run_config["ops"]["apply_table_changes"]["config"]
    assert config["tenant"] == "acme" and config["upto_lsn"] == requests[0].tags["embedops/upto_lsn"]
    assert not cdc.pending_changes(source("acme")).empty  # the sensor confirms nothing of a tenant with changes

    # the launched run, in process: its op builds the Definitions from the environment, as a worker does
    settings = project.settings
    for name, value in (("EMBEDOPS_HOME", settings.home), ("EMBEDOPS_SOURCES", settings.sources_root),
                        ("EMBEDOPS_DATABASE_URL", settings.database_url), ("EMBEDOPS_DATA_URL", settings.data_url)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("EMBEDOPS_SPACES", raising=False)
    run = project.defs.resolve_job_def("table_changes_job").execute_in_process(
        instance=project.instance, run_config=requests[0].run_config, tags=requests[0].tags)
    assert run.success
    [output] = [e for e in run.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata  # type: ignore[union-attr]
    assert metadata["changed"].value == 1 and metadata["confirmed"].value is True
    assert metadata["upto_lsn"].value == config["upto_lsn"] and metadata["lag_p99_s"].value >= 0
    assert "edited" in indexed(project, "acme")["items/1"] and cdc.pending_changes(source("acme")).empty

    # a run that fails (the text column renamed) is not relaunched at every tick
    execute(items, "UPDATE items SET body = 'acme text, edited twice' WHERE id = 1")
    execute(items, "ALTER TABLE items RENAME COLUMN body TO content")
    with dg.build_sensor_context(instance=project.instance, resources={"workspace": workspace}) as context:
        [request] = cdc_sensor(context).run_requests or []  # type: ignore[union-attr]
    failed = project.defs.resolve_job_def("table_changes_job").execute_in_process(
        instance=project.instance, run_config=request.run_config, tags=request.tags, raise_on_error=False)
    assert not failed.success
    with dg.build_sensor_context(instance=project.instance, resources={"workspace": workspace}) as context:
        assert not cdc_sensor(context).run_requests  # type: ignore[union-attr]


CRASH_WORKER = """
import os, signal, sys
from pathlib import Path
import dagster as dg
from embedops.core import cdc
from embedops.core.settings import Settings
from embedops.definitions import build_defs
from embedops.pipelines import runs
from embedops.pipelines.cdc import sync_table_tenant

home, sources, point = sys.argv[1], sys.argv[2], sys.argv[3]
settings = Settings(home=Path(home), sources_root=Path(sources), spaces_file=None, max_document_bytes=64 * 1024,
                    database_url=os.environ.get("EMBEDOPS_DATABASE_URL", ""),
                    data_url=os.environ.get("EMBEDOPS_DATA_URL", ""))
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "before-confirm":  # the index has committed; the slot is not told
    cdc.confirm = killed
else:  # the source documents are read and written; nothing is embedded
    execute_job = runs.execute_job
    runs.execute_job = lambda defs, job, *a, **k: killed() if job == "embed_space_job" else execute_job(
        defs, job, *a, **k)
sync_table_tenant(build_defs(settings), dg.DagsterInstance.ephemeral(), "acme")
"""


@pytest.mark.parametrize("point", ["before-confirm", "before-embed"])
def test_kill_before_confirmation_then_rerun_converges_to_a_clean_load(
    project: Project, items: PgServer, tmp_path: Path, point: str
) -> None:
    """Killed between the index commit and the confirmation, or before the embed: the re-run applies the same
    changes again, loses none, doubles none, and leaves the index as a fresh full load of the table would."""
    spec = source()
    execute(items, "INSERT INTO items VALUES (1, 'Fog', 'Fog closes the harbour.', NULL), "
            "(2, 'Wind', 'Wind turns the mills.', NULL)")
    ingest_table(project, "acme", spec)
    execute(items, "UPDATE items SET body = 'Fog closes the harbour at dawn.' WHERE id = 1")
    execute(items, "DELETE FROM items WHERE id = 2")
    execute(items, "INSERT INTO items VALUES (3, 'Rain', 'Rain fills the wells.', NULL)")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", ENV: items.url,
           "EMBEDOPS_DATABASE_URL": project.settings.database_url, "EMBEDOPS_DATA_URL": project.settings.data_url}
    done = subprocess.run([sys.executable, "-c", CRASH_WORKER, str(project.settings.home),
                           str(project.settings.sources_root), point], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert not cdc.pending_changes(spec).empty  # never confirmed
    crashed = indexed(project, "acme")
    assert set(crashed) == ({"items/1", "items/3"} if point == "before-confirm" else {"items/1", "items/2"})

    execute(items, "UPDATE items SET title = 'Rain and hail' WHERE id = 3")  # a change after the crash
    summary = sync_table_tenant(project.defs, project.instance, "acme")  # replays the same changes, and the new one
    assert summary.confirmed and cdc.pending_changes(spec).empty
    final = indexed(project, "acme")
    rows = project.store.export("acme", project.spaces.serving_space.space_id).to_pylist()
    assert len({r["chunk_id"] for r in rows}) == len(rows)  # nothing applied twice

    fresh = make_fresh(tmp_path, items)  # a clean full load of the final table
    assert final == indexed(fresh, "acme")


def make_fresh(tmp_path: Path, items: PgServer) -> Project:
    from tests.conftest import make_project

    fresh = make_project(tmp_path / "fresh")
    execute(items, "SELECT 1")
    ingest_table(fresh, "acme", cdc.TableSource(ENV, "items", "id", ("title", "body")))
    return fresh


def test_slot_lag_check_fails_while_the_consumer_is_stopped_and_passes_after_it_catches_up(
    on_disk: Project, items: PgServer, pagerduty: FakePagerDuty
) -> None:
    project = on_disk  # the schedule reads the instance as in production
    execute(items, "INSERT INTO items VALUES (1, 'One', 'The first row.', NULL)")
    ingest_table(project, "acme", source())
    project.settings.home.mkdir(parents=True, exist_ok=True)
    (project.settings.home / "monitoring.yaml").write_text(
        "replication_slot:\n  warn_bytes: 20000\n  error_bytes: 100000\n")

    def slot_check() -> tuple[bool, str, str]:
        [report] = run_checks(project.defs, project.instance, tenant="acme", names=["replication_slot_lag"])
        return report.passed, report.severity, report.description

    assert slot_check()[0]
    pager = PagerResource(url=pagerduty.url, routing_key=ROUTING_KEY)
    first = tick(project, pager, None)
    assert isinstance(first, dg.SensorResult)
    for i in range(2, 200):  # the consumer is stopped: nobody syncs
        execute(items, "INSERT INTO items VALUES (%s, 'Row', %s, NULL)", i, f"row {i} " + "x" * 800)
    passed, severity, description = slot_check()
    assert (passed, severity) == (False, "ERROR") and "embedops sources drop-slot" in description
    project.write("globex", {"a.txt": "a folder tenant"})
    project.ingest("globex")
    with dg.build_schedule_context(instance=project.instance, resources={"workspace": project.workspace},
                                   scheduled_execution_time=datetime.now(UTC)) as when:
        requests = table_source_checks_schedule(when)  # every 5 minutes: the table tenants only
    assert isinstance(requests, list) and [r.partition_key for r in requests] == ["acme"]
    scheduled = project.defs.resolve_job_def("table_source_checks_job").execute_in_process(
        instance=project.instance, partition_key="acme")
    evaluations = {e.check_name: e.passed for e in scheduled.get_asset_check_evaluations()}
    assert evaluations == {"replication_slot_lag": False, "table_source_columns": True}
    paged = tick(project, pager, first.cursor)  # the ERROR pages on-call through the pager path
    assert pagerduty.actions() == ["trigger"] and isinstance(paged, dg.SensorResult)
    assert pagerduty.accepted[0]["dedup_key"] == "embedops/source_documents/replication_slot_lag/acme"
    sync_table_tenant(project.defs, project.instance, "acme")
    assert slot_check()[0]
    tick(project, pager, paged.cursor)
    assert pagerduty.actions() == ["trigger", "resolve"]
