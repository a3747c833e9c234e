"""The cutover sensor measures a ready candidate by itself, and its gate reconciles exactly as the check does."""

from __future__ import annotations

import pytest

from embedops.pipelines.backfill import run_backfill
from embedops.pipelines.check_runs import run_checks
from embedops.pipelines.migration import cutover_sensor
from tests.migration.conftest import STORE_KINDS, MakeMigration, run_job, sensor_tick, skip_reason


@pytest.mark.parametrize("store_kind", STORE_KINDS)
def test_the_sensor_evaluates_a_ready_candidate_and_refuses_where_reconciliation_fails(
    make_migration: MakeMigration,
) -> None:
    project = make_migration("static", "minilm")
    minilm = project.spaces.get("minilm")

    # not built yet: no evaluation is started, the tick names the tenants
    tick = sensor_tick(project, cutover_sensor)
    assert tick.run_requests == [] and "tenant 'acme': not materialized" in skip_reason(tick)

    # built: the sensor launches the golden-set evaluation itself, then the cutover on the next tick
    run_backfill(project.defs, project.instance, minilm)
    [evaluation] = sensor_tick(project, cutover_sensor).run_requests
    assert (evaluation.job_name, evaluation.partition_key) == ("golden_set_evaluation_job", "minilm")
    assert run_job(project, "golden_set_evaluation_job", evaluation).success
    [cutover] = sensor_tick(project, cutover_sensor).run_requests
    assert cutover.job_name == "cutover_job"

    # a row lost from the candidate's index: the reconciliation check fails, and the gate with the same words
    lost = project.store.export("acme", minilm.space_id).column("chunk_id")[0].as_py()
    project.store.delete("acme", minilm.space_id, [lost])
    [check] = run_checks(project.defs, project.instance, tenant="acme", space="minilm", names=["reconciliation"])
    assert not check.passed and lost in check.ids
    tick = sensor_tick(project, cutover_sensor)
    assert tick.run_requests == []
    assert f"tenant 'acme': reconciliation fails: {check.description}" in skip_reason(tick)

    # the backfill sees the tenant as not done and re-syncs it; the gate passes again
    report = run_backfill(project.defs, project.instance, minilm)
    assert [(s.tenant, s.action) for s in report.steps] == [("acme", "materialized"), ("globex", "skipped")]
    [again] = sensor_tick(project, cutover_sensor).run_requests
    assert again.job_name == "cutover_job"
