"""Backfilling a space, hottest tenant first, resumable: finished tenants are never redone.

``run_backfill`` (the `embedops backfill` command) launches embed_space_job tenant by tenant in
hotness order, each run tagged with its ``dagster/priority``; a tenant already materialized and
current in the space is skipped, so a stopped or killed backfill resumes where it was.
``space_backfill_sensor`` does the same through the Dagster daemon's run queue (turn it on in the UI):
it requests every missing tenant of every building space with the same priorities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg

from embedops.core.cutover import open_manifest
from embedops.core.migration import HotTenant, TenantStatus, hot_first, tenant_status
from embedops.core.spaces import SpaceSpec
from embedops.core.stores.base import VectorStore
from embedops.errors import ConfigError, RunFailedError
from embedops.pipelines.execution import execute_job, launched_by
from embedops.pipelines.in_flight import embeds_next, partitions_in_flight
from embedops.pipelines.jobs import embed_space_job
from embedops.pipelines.migration import customer_tenants, migration_config
from embedops.pipelines.partitions import register_partitions, tenant_space_key
from embedops.resources import VectorStoreResource, WorkspaceResource

PRIORITY_TAG = "dagster/priority"
SEARCHES_TAG = "embedops/searches"


@dataclass
class BackfillStep:
    """What the backfill did for one tenant, in launch order."""

    tenant: str
    searches: int
    weight: float
    priority: int
    action: str  # "materialized", "skipped" (already current) or "failed"
    run_id: str | None = None
    chunks: int = 0
    error: str | None = None


@dataclass
class BackfillReport:
    space: str
    space_id: str
    steps: list[BackfillStep] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "space_id": self.space_id, "steps": [asdict(s) for s in self.steps]}


def backfill_order(workspace: WorkspaceResource, instance: dg.DagsterInstance | None) -> list[HotTenant]:
    """Customer tenants hottest first: recorded searches, then the configured weight."""
    tenants = customer_tenants(workspace, instance)
    return hot_first(tenants, workspace.registry().search_counts(), migration_config(workspace))


def priority_tags(hot: HotTenant) -> dict[str, str]:
    """What places a tenant's run in the run queue: its ``dagster/priority`` and recorded searches."""
    return {PRIORITY_TAG: str(hot.priority), SEARCHES_TAG: str(hot.searches)}


def _status(workspace: WorkspaceResource, store: VectorStore, tenant: str, space: SpaceSpec) -> TenantStatus:
    root = workspace.registry().source_dir(tenant, workspace.settings.sources_root)
    return tenant_status(workspace.tables(), store, tenant, space, root)


def run_backfill(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    space: SpaceSpec,
    on_step: Callable[[BackfillStep], None] | None = None,
    max_tenants: int | None = None,
) -> BackfillReport:
    """Materialize ``space`` for every tenant not yet current in it, hottest first, one run each."""
    workspace: WorkspaceResource = defs.resources["workspace"]  # type: ignore[assignment,index]
    vector_store: VectorStoreResource = defs.resources["vector_store"]  # type: ignore[assignment,index]
    config = workspace.spaces()
    manifest = open_manifest(workspace.settings.control_url, config, vector_store.open())  # records it as building
    if manifest.state(space.name) == "retired":
        raise ConfigError(f"space {space.name!r} is retired; declare it under a new name to build it again")
    order = backfill_order(workspace, instance)
    register_partitions(instance, [t.tenant for t in order], config)
    report = BackfillReport(space.name, space.space_id)
    launched = 0
    for hot in order:
        status = _status(workspace, vector_store.open(), hot.tenant, space)
        step = BackfillStep(hot.tenant, hot.searches, hot.weight, hot.priority, "skipped", chunks=status.chunks)
        if not status.materialized:
            if max_tenants is not None and launched >= max_tenants:
                break
            launched += 1
            _run_tenant(defs, instance, space, hot, step)
        report.steps.append(step)
        if on_step is not None:
            on_step(step)
        if step.action == "failed":
            raise RunFailedError(
                f"backfill of space {space.name!r} stopped at tenant {hot.tenant!r}: {step.error}; "
                f"fix it and run `embedops backfill --space {space.name}` again to resume"
            )
    return report


def _run_tenant(
    defs: dg.Definitions, instance: dg.DagsterInstance, space: SpaceSpec, hot: HotTenant, step: BackfillStep
) -> None:
    workspace: WorkspaceResource = defs.resources["workspace"]  # type: ignore[assignment,index]
    tags = {**priority_tags(hot), "embedops/backfill": space.name}
    try:
        if workspace.tables().read("source_documents", (hot.tenant,)) is None:
            execute_job(defs, "source_documents_job", instance, hot.tenant, tags={**tags, **embeds_next([space.name])})
        result = execute_job(
            defs, embed_space_job.name, instance, tenant_space_key(hot.tenant, space.name), tags=tags
        )
    except RunFailedError as exc:
        step.action, step.run_id, step.error = "failed", exc.run_id, str(exc)
        return
    step.run_id = result.run_id
    step.action = "materialized"
    meta = result.asset_materializations_for_node("document_chunks")
    step.chunks = int(meta[-1].metadata["chunks"].value) if meta else 0  # type: ignore[arg-type]


@dg.sensor(
    job=embed_space_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Backfills every building space, hottest tenant first (dagster/priority from recorded searches), "
    "through the run queue; resumable. Off by default: turn it on to build a new space from the UI.",
)
def space_backfill_sensor(
    context: dg.SensorEvaluationContext, workspace: WorkspaceResource, vector_store: VectorStoreResource
) -> dg.SensorResult:
    """Hot-first backfill of every building space through the run queue (dagster/priority per tenant)."""
    config = workspace.spaces()
    store = vector_store.open()
    manifest = open_manifest(workspace.settings.control_url, config, store)
    building = [s for s in config.spaces if manifest.state(s.name) == "building"]
    if not building:
        return dg.SensorResult(skip_reason="no space is building")
    order = backfill_order(workspace, context.instance)
    busy = partitions_in_flight(context.instance)
    requests = []
    for space in building:
        for hot in order:
            key = tenant_space_key(hot.tenant, space.name)
            if str(key) in busy or _status(workspace, store, hot.tenant, space).materialized:
                continue
            source = workspace.tables().latest("source_documents", (hot.tenant,))
            if source is None:  # its sources were never read: tenant_folders_sensor does that first
                continue
            requests.append(
                dg.RunRequest(
                    partition_key=key,
                    run_key=f"backfill:{space.space_id}:{hot.tenant}:v{source[1]}",
                    tags={**priority_tags(hot), "embedops/backfill": space.name,
                          **launched_by("sensor", "space_backfill_sensor")},
                )
            )
    if not requests:
        names = ", ".join(s.name for s in building)
        return dg.SensorResult(skip_reason=f"every tenant is materialized, or on its way, in building space(s) {names}")
    return dg.SensorResult(run_requests=requests)
