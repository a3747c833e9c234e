"""What the sensors request, and who the runs say launched them (build_sensor_context, a real instance)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from embedops.errors import RunFailedError
from embedops.pipelines.backfill import space_backfill_sensor
from embedops.pipelines.execution import LAUNCHED_BY, execute_job
from embedops.pipelines.migration import dual_write_sensor
from embedops.pipelines.partitions import tenant_space_key
from tests.conftest import Project
from tests.migration.conftest import run_job, sensor_tick, skip_reason


def test_dual_write_never_requests_a_partition_that_a_run_already_writes(ingested: Project) -> None:
    project = ingested
    space = project.spaces.serving_space.name
    key = tenant_space_key("acme", space)
    cursor = sensor_tick(project, dual_write_sensor).cursor

    # `embedops ingest` embeds the tenant itself right after reading it: nothing to add
    project.write("acme", {"faq.md": "# FAQ\n\nInvoices are sent on the first day of each month."})
    summary = project.ingest("acme")
    result = sensor_tick(project, dual_write_sensor, cursor)
    assert list(result.run_requests) == [] and f"acme/{space}" in skip_reason(result)
    assert project.instance.get_run_by_id(summary.run_ids[0]).tags[LAUNCHED_BY] == "cli"

    # sources read on their own (as the folder sensor does) are sent on, once, tagged with who asked
    project.write("acme", {"faq.md": "# FAQ\n\nInvoices are sent on the second day of each month."})
    run_job(project, "source_documents_job", partition_key="acme")
    run_job(project, "source_documents_job", partition_key="acme")
    result = sensor_tick(project, dual_write_sensor, result.cursor)
    assert [r.partition_key for r in result.run_requests] == [key]
    assert result.run_requests[0].tags[LAUNCHED_BY] == "sensor:dual_write_sensor"

    # while a run of the partition is in progress, the next change is left to it
    job = project.defs.resolve_job_def("embed_space_job")
    tags = job.partitions_def.get_tags_for_partition_key(key)  # type: ignore[union-attr]
    project.instance.create_run_for_job(job, tags=tags, status=dg.DagsterRunStatus.STARTED)
    project.write("acme", {"faq.md": "# FAQ\n\nInvoices are sent on the third day of each month."})
    run_job(project, "source_documents_job", partition_key="acme")
    result = sensor_tick(project, dual_write_sensor, result.cursor)
    assert list(result.run_requests) == [] and f"acme/{space}" in skip_reason(result)


def test_dual_write_sends_nothing_on_when_the_sources_were_read_again_unchanged(ingested: Project) -> None:
    project = ingested
    project.age("acme")
    run_job(project, "source_documents_job", partition_key="acme")  # records the files' new times
    cursor = sensor_tick(project, dual_write_sensor).cursor

    read = run_job(project, "source_documents_job", partition_key="acme")
    result = sensor_tick(project, dual_write_sensor, cursor)

    assert read.asset_materializations_for_node("source_documents")[0].metadata["unchanged"].value is True
    assert list(result.run_requests) == [] and skip_reason(result) == "no source document changed"
    assert int(result.cursor or 0) > int(cursor or 0)


def test_the_backfill_sensor_says_when_no_space_is_building(ingested: Project) -> None:
    assert skip_reason(sensor_tick(ingested, space_backfill_sensor)) == "no space is building"


def test_a_partition_invented_in_the_ui_fails_at_once_and_writes_nothing(ingested: Project) -> None:
    project, home = ingested, ingested.settings.home
    project.instance.add_dynamic_partitions("tenants", ["nobody"])  # the materialize dialog's "Add a partition"
    project.instance.add_dynamic_partitions("spaces", ["bogus"])

    def written() -> set[Path]:  # a reader's SQLite -wal/-shm files and lock files are not data
        return {p for p in home.rglob("*") if p.is_file() and "locks" not in p.parts
                and not p.name.endswith(("-wal", "-shm"))}

    before = written()
    serving = project.spaces.serving_space.name
    for job, key, error in (
        ("embed_space_job", "bogus|acme", "space 'bogus' is not declared"),
        ("embed_space_job", f"{serving}|nobody", "tenant 'nobody' is not declared"),
        ("monitoring_checks_job", f"{serving}|nobody", "tenant 'nobody' is not declared"),
    ):
        with pytest.raises(RunFailedError) as failed:
            execute_job(project.defs, job, project.instance, key)
        steps = failed.value.failures  # the first step (and, in the checks job, each check) says why
        assert steps and all(error in f.error for f in steps), str(failed.value)
        if job == "embed_space_job":
            assert [f.step for f in steps] == ["document_chunks"]
    assert written() == before
