"""Keeping a table-sourced tenant in step with its table: apply what the slot holds, then confirm it.

``sync_table_tenant`` is the one act (the CLI's `embedops sources sync` and the job's op both call it): peek
the tenant's slot up to an LSN, apply those changes (one source_documents run, one embed run per active space;
a TRUNCATE drops every document of the tenant in the same single commit per space), and only after the index
commit confirm the LSN to the slot. A crash anywhere before the confirmation replays the same changes next
time; bodies are read by primary key at apply time, so a replay converges to the table's current state.

``cdc_sensor`` peeks every table-sourced tenant's slot each tick and launches ``table_changes_job`` for each
tenant with pending changes, with the LSN the run applies up to (a tenant whose last run failed is retried
after RETRY_AFTER_S; the checks say why it fails). ``table_source_checks_schedule`` runs the slot-lag and
column checks of every table-sourced tenant every 5 minutes (an ERROR pages through pager_sensor), so a stopped
or failing consumer is found before the source's WAL fills its disk.
"""


import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import numpy as np

from embedops.core import cdc
from embedops.core.tenants import validate_tenant
from embedops.errors import ConfigError, EmbedopsError
from embedops.pipelines.execution import launched_by
from embedops.pipelines.in_flight import ACTIVE
from embedops.pipelines.partitions import tenant_partitions
from embedops.resources import WorkspaceResource

TENANT_TAG = "embedops/tenant"
LSN_TAG = "embedops/upto_lsn"
RETRY_AFTER_S = 300.0


@dataclass
class SyncSummary:
    """What one sync of a table-sourced tenant applied, and how long its changes waited."""

    tenant: str
    upto_lsn: str
    changed: int = 0
    deleted: int = 0
    truncated: bool = False
    confirmed: bool = False
    lag_p50_s: float | None = None  # source commit -> index commit, over the changes applied
    lag_p99_s: float | None = None
    lag_max_s: float | None = None
    apply_s: float = 0.0
    run_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def table_source_of(workspace: WorkspaceResource, tenant: str) -> cdc.TableSource | None:
    """The tenant's table source, or None when its sources are a folder or a prefix."""
    location = workspace.registry().source_dir(validate_tenant(tenant), workspace.settings.sources_root)
    return cdc.TableSource.from_location(location) if cdc.is_table_location(location) else None


def table_tenants(workspace: WorkspaceResource) -> dict[str, cdc.TableSource]:
    """Every registered tenant whose source is a table."""
    return {t: cdc.TableSource.from_location(loc) for t, loc in workspace.registry().tenants().items()
            if cdc.is_table_location(loc)}


def known_documents(workspace: WorkspaceResource, tenant: str) -> set[str] | None:
    """The tenant's documents as last read (None before the first read)."""
    table = workspace.tables().read_columns("source_documents", (tenant,), ["doc_id"])
    return set(table["doc_id"].to_pylist()) if table is not None else None


def sync_table_tenant(
    defs: dg.Definitions, instance: dg.DagsterInstance, tenant: str, upto: str | None = None
) -> SyncSummary:
    """Apply the tenant's pending changes up to ``upto`` (default: the server's current LSN), then confirm."""
    from embedops.pipelines.runs import apply_changes

    workspace: WorkspaceResource = defs.resources["workspace"]  # type: ignore[index]
    source = table_source_of(workspace, tenant)
    if source is None:
        raise ConfigError(f"tenant {tenant!r} does not read a table, so it has no changes to sync; declare one with "
                          f"`embedops sources add-postgres --tenant {tenant} ...`")
    changes = cdc.pending_changes(source, upto, known_documents(workspace, tenant))
    summary = SyncSummary(tenant, changes.upto, len(changes.changed), len(changes.deleted), changes.truncated)
    if not changes.empty:
        started = time.monotonic()
        deleted = set(changes.deleted)
        if changes.truncated:  # every document the tenant has leaves; rows written after the truncate come back
            deleted |= known_documents(workspace, tenant) or set()
        summaries = apply_changes(defs, instance, tenant, changes.changed, deleted - changes.changed,
                                  committed_at=changes.committed_at, position=changes.upto)
        committed = datetime.now(UTC)  # every space's index has committed
        summary.deleted = len(deleted - changes.changed)
        summary.apply_s = round(time.monotonic() - started, 3)
        summary.run_ids = sorted({r for s in summaries for r in s.run_ids})
        lags = [(committed - at).total_seconds() for at in changes.committed_at.values()]
        if lags:
            summary.lag_p50_s, summary.lag_p99_s = (round(float(np.percentile(lags, q)), 3) for q in (50, 99))
            summary.lag_max_s = round(max(lags), 3)
    cdc.confirm(source, changes.upto)  # only now: a crash before this replays the same changes
    summary.confirmed = True
    return summary


class TableChangesConfig(dg.Config):
    """Which tenant to sync and the LSN the cdc_sensor peeked up to (empty: the server's current LSN)."""

    tenant: str
    upto_lsn: str = ""


@dg.op(description="Apply a table-sourced tenant's pending changes, then confirm them to its replication slot.")
def apply_table_changes(context: dg.OpExecutionContext, config: TableChangesConfig) -> dg.Output[None]:
    from embedops.definitions import build_defs

    summary = sync_table_tenant(build_defs(), context.instance, config.tenant, config.upto_lsn or None)
    context.log.info(f"{summary.tenant}: {summary.changed} changed, {summary.deleted} deleted"
                     f"{' after a truncate' if summary.truncated else ''}; confirmed up to {summary.upto_lsn}")
    metadata = {k: v for k, v in summary.to_json().items() if v is not None and k != "run_ids"}
    return dg.Output(None, metadata={**metadata, "run_ids": ", ".join(summary.run_ids)})


@dg.job(description="Apply a table-sourced tenant's changes (the cdc_sensor launches it per tenant).",
        executor_def=dg.in_process_executor)
def table_changes_job() -> None:
    apply_table_changes()


def _in_flight(instance: dg.DagsterInstance) -> set[str]:
    records = instance.get_run_records(dg.RunsFilter(job_name=table_changes_job.name, statuses=ACTIVE))
    return {r.dagster_run.tags.get(TENANT_TAG, "") for r in records}


def _failed_lately(instance: dg.DagsterInstance, tenant: str) -> bool:
    """True when the tenant's last table_changes_job run failed less than RETRY_AFTER_S ago: a source that fails
    (a renamed column, a refused login) is retried at that pace, not at every tick."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=table_changes_job.name, tags={TENANT_TAG: tenant}), limit=1)
    if not records or records[0].dagster_run.status != dg.DagsterRunStatus.FAILURE:
        return False
    ended = records[0].end_time or 0.0
    return time.time() - ended < RETRY_AFTER_S


@dg.sensor(
    job=table_changes_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Peeks the replication slot of every tenant whose source is a PostgreSQL table and launches "
    "table_changes_job for each tenant with pending changes; a tenant with none has its slot confirmed.",
)
def cdc_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
    """A run per table-sourced tenant with pending changes, carrying the LSN it applies up to."""
    requests = []
    busy = _in_flight(context.instance)
    for tenant, source in table_tenants(workspace).items():
        if tenant in busy or _failed_lately(context.instance, tenant):
            continue
        try:
            changes = cdc.pending_changes(source, known=known_documents(workspace, tenant))
            if changes.empty:
                cdc.confirm(source, changes.upto)  # nothing of this tenant's: the WAL before it may go
                continue
        except EmbedopsError as exc:  # one unreachable source does not stop the others; the slot check pages
            context.log.warning(f"{tenant}: {exc}")
            continue
        requests.append(dg.RunRequest(
            run_key=f"{tenant}:{changes.upto}",
            run_config={"ops": {"apply_table_changes": {"config": {"tenant": tenant, "upto_lsn": changes.upto}}}},
            tags={TENANT_TAG: tenant, LSN_TAG: changes.upto, **launched_by("sensor", "cdc_sensor")},
        ))
        context.log.info(f"{tenant}: {changes.summary()}")
    return dg.SensorResult(run_requests=requests)


TABLE_CHECKS = ("replication_slot_lag", "table_source_columns")

table_source_checks_job = dg.define_asset_job(
    "table_source_checks_job",
    selection=dg.AssetSelection.checks(*(dg.AssetCheckKey(dg.AssetKey("source_documents"), n) for n in TABLE_CHECKS)),
    # a checks-only job gets the assets' partitions (and a partition picker) from a partitioned config
    config=dg.PartitionedConfig(partitions_def=tenant_partitions, run_config_for_partition_key_fn=lambda _key: {}),
    executor_def=dg.in_process_executor,
    description="The slot-lag and column checks of one table-sourced tenant.",
)


@dg.schedule(
    cron_schedule="*/5 * * * *",
    job=table_source_checks_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: the replication slot's lag and the columns of every tenant whose source is a "
    "PostgreSQL table (an ERROR pages on-call).",
)
def table_source_checks_schedule(
    context: dg.ScheduleEvaluationContext, workspace: WorkspaceResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """One run of table_source_checks_job per table-sourced tenant that is a partition."""
    when = context.scheduled_execution_time or datetime.now(UTC)
    tenants = [t for t in sorted(table_tenants(workspace)) if context.instance.has_dynamic_partition("tenants", t)]
    return [
        dg.RunRequest(run_key=f"{t}:{when:%Y-%m-%dT%H:%M}", partition_key=t,
                      tags=launched_by("schedule", "table_source_checks_schedule"))
        for t in tenants
    ] or dg.SkipReason("no tenant reads a PostgreSQL table")

