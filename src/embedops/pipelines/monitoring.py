"""The monitoring automation: the nightly schedules that read every tenant's sources in full (finding
edits that kept a file's size and modification time) and run every check on every materialized
partition (through the checks jobs of pipelines/jobs.py), and the sensor that pages on-call for checks
failing at ERROR severity."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from embedops.assets.metadata import listed
from embedops.core.monitoring.pager import Evaluation
from embedops.errors import PagerDeliveryError
from embedops.pipelines.dagster_internals import latest_check_evaluations
from embedops.pipelines.execution import launched_by
from embedops.pipelines.jobs import monitoring_checks_job, source_checks_job, source_documents_job
from embedops.resources.monitoring import MonitoringResource
from embedops.resources.pager import PagerResource


def check_run_requests(
    instance: dg.DagsterInstance,
    asset: str,
    run_key_prefix: str,
    tags: dict[str, str],
    run_config: dict[str, Any] | None = None,
) -> list[dg.RunRequest]:
    """One run of the checks job (or of the job ``run_config`` configures) per materialized partition of ``asset``."""
    return [
        dg.RunRequest(run_key=f"{run_key_prefix}:{key}", partition_key=key, tags=tags, run_config=run_config or {})
        for key in sorted(instance.get_materialized_partitions(dg.AssetKey(asset)))
    ]


def _nightly(
    context: dg.ScheduleEvaluationContext, asset: str, name: str, run_config: dict[str, Any] | None
) -> list[dg.RunRequest] | dg.SkipReason:
    when = context.scheduled_execution_time or datetime.now(UTC)
    tags = launched_by("schedule", name)
    requests = check_run_requests(context.instance, asset, f"nightly:{when:%Y-%m-%d}", tags, run_config)
    return requests or dg.SkipReason(f"no partition of {asset} is materialized yet: ingest a tenant first")


def _nightly_schedule(
    name: str,
    job: dg.UnresolvedAssetJobDefinition,
    asset: str,
    what: str,
    cron: str = "0 2 * * *",
    run_config: dict[str, Any] | None = None,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every night at {_at(cron)} UTC: {what} (one run of {job.name} each).",
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        return _nightly(context, asset, name, run_config)

    return nightly


def _at(cron: str) -> str:
    minute, hour = cron.split()[:2]
    return f"{int(hour):02d}:{int(minute):02d}"


# before the checks: the reconciliation then compares the index with sources read in full
nightly_source_verify_schedule = _nightly_schedule(
    "nightly_source_verify_schedule", source_documents_job, "source_documents",
    "every file of every tenant read again, so an edit that kept a file's size and modification time is found",
    cron="30 1 * * *", run_config={"ops": {"source_documents": {"config": {"verify": True}}}},
)


nightly_reconciliation_schedule = _nightly_schedule(
    "nightly_reconciliation_schedule", monitoring_checks_job, "vector_index",
    "every check of every materialized tenant x space",
)
nightly_source_checks_schedule = _nightly_schedule(
    "nightly_source_checks_schedule", source_checks_job, "source_documents",
    "the source documents checks of every materialized tenant",
)


def latest_evaluations(
    instance: dg.DagsterInstance, keys: Iterable[dg.AssetCheckKey], after: int | None
) -> tuple[list[Evaluation], int]:
    """The latest completed evaluation of every (check, partition) that changed after storage id ``after``."""
    records, cursor = latest_check_evaluations(instance, keys, after)
    found = []
    for record in records:
        data = record.evaluation
        ids = data.metadata.get("failing_ids")
        found.append(Evaluation(
            check=record.check_key.name, asset=record.check_key.asset_key.to_user_string(),
            partition=record.partition, passed=data.passed, severity=data.severity.value,
            description=data.description or "",
            details={"run_id": record.run_id, "failing_ids": listed(ids)},
        ))
    return found, cursor


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Pages on-call (PagerDuty Events API v2) once per check, asset and partition failing at ERROR; "
    "resolves the page when the check passes again. Off until EMBEDOPS_PAGER_URL is set.",
)
def pager_sensor(
    context: dg.SensorEvaluationContext, pager: PagerResource, monitoring: MonitoringResource
) -> dg.SensorResult | dg.SkipReason:
    """Pages on-call once per (check, asset, partition) failing at ERROR; resolves it when it passes."""
    if not pager.configured:
        return dg.SkipReason(
            "no pager configured: set EMBEDOPS_PAGER_URL (and EMBEDOPS_PAGER_ROUTING_KEY) to page on ERROR checks"
        )
    repository = context.repository_def
    keys = list(repository.asset_graph.asset_check_keys) if repository else []
    evaluations, cursor = latest_evaluations(context.instance, keys, int(context.cursor) if context.cursor else None)
    outbox = monitoring.outbox()
    try:
        queued = [a for a in (outbox.observe(e) for e in evaluations) if a]
        sent, error = 0, None
        for item in outbox.pending():  # in order; stop at the first failure so a resolve never overtakes
            try:
                pager.send(item.event)
            except PagerDeliveryError as exc:
                outbox.mark_failed(item.id, str(exc))
                error = str(exc)
                break
            outbox.mark_sent(item.id)
            sent += 1
        waiting = len(outbox.pending())
    finally:
        outbox.close()
    if error:
        context.log.warning(error)
    message = f"{len(evaluations)} evaluation(s) read, {len(queued)} event(s) queued, {sent} sent, {waiting} waiting"
    context.log.info(message)
    return dg.SensorResult(cursor=str(cursor), skip_reason=None if sent or queued else message)
