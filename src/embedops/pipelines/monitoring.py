"""The monitoring automation: a checks-only job, the nightly schedule that runs every check on every
materialized partition, and the sensor that pages on-call for checks failing at ERROR severity."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import dagster as dg

from embedops.core.monitoring.pager import Evaluation
from embedops.errors import PagerDeliveryError
from embedops.pipelines.dagster_internals import latest_check_evaluations
from embedops.pipelines.partitions import tenant_space_partitions
from embedops.resources.monitoring import MonitoringResource
from embedops.resources.pager import PagerResource

TENANT_SPACE_ASSETS = ("document_chunks", "vector_index")
TENANT_ASSETS = ("source_documents",)

monitoring_checks_job = dg.define_asset_job(
    "monitoring_checks_job",
    selection=dg.AssetSelection.checks_for_assets(*TENANT_ASSETS, *TENANT_SPACE_ASSETS),
    description="Every check of the index and its tables, for the partition named by the run's tags.",
)


def check_keys(keys: Iterable[dg.AssetCheckKey], assets: Iterable[str]) -> list[dg.AssetCheckKey]:
    """The checks (of ``keys``) that target one of ``assets``, in a stable order."""
    wanted = {dg.AssetKey(a) for a in assets}
    return sorted((k for k in keys if k.asset_key in wanted), key=lambda k: (k.asset_key.to_string(), k.name))


def partition_tags(key: str | dg.MultiPartitionKey) -> dict[str, str]:
    """Tags that make a run of the (unpartitioned) checks job evaluate one partition."""
    if isinstance(key, dg.MultiPartitionKey):
        return dict(tenant_space_partitions.get_tags_for_partition_key(key))
    return {"dagster/partition": key}


def check_run_requests(
    instance: dg.DagsterInstance, all_check_keys: Iterable[dg.AssetCheckKey], run_key_prefix: str
) -> list[dg.RunRequest]:
    """One run per materialized tenant x space partition and one per materialized tenant."""
    keys = list(all_check_keys)
    requests = []
    index_checks = check_keys(keys, TENANT_SPACE_ASSETS)
    for raw in sorted(instance.get_materialized_partitions(dg.AssetKey("vector_index"))):
        key = tenant_space_partitions.get_partition_key_from_str(raw)
        requests.append(dg.RunRequest(run_key=f"{run_key_prefix}:{raw}", tags=partition_tags(key),
                                      asset_check_keys=index_checks))
    tenant_checks = check_keys(keys, TENANT_ASSETS)
    for tenant in sorted(instance.get_materialized_partitions(dg.AssetKey("source_documents"))):
        requests.append(dg.RunRequest(run_key=f"{run_key_prefix}:{tenant}", tags=partition_tags(tenant),
                                      asset_check_keys=tenant_checks))
    return requests


@dg.schedule(
    cron_schedule="0 2 * * *",
    job=monitoring_checks_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_reconciliation_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    """Every night at 02:00 UTC: every check on every materialized partition."""
    repository = context.repository_def
    keys = repository.asset_graph.asset_check_keys if repository else []
    when = context.scheduled_execution_time or datetime.now(UTC)
    requests = check_run_requests(context.instance, keys, f"nightly:{when:%Y-%m-%d}")
    return requests or dg.SkipReason("nothing is materialized yet: ingest a tenant first")


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
            details={"run_id": record.run_id, "failing_ids": ids.value if ids is not None else []},
        ))
    return found, cursor


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
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
