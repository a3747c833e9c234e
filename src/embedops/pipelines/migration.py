"""Migration automation: the cutover job, the candidate sensor that launches it, and dual writes.

- ``cutover_job`` repoints an alias through the gate (config: alias, space, force).
- ``cutover_sensor`` watches candidate spaces and launches the job when the gate passes; a candidate
  whose tenants are all ready but which has no golden-set numbers yet gets golden_set_evaluation_job
  first; otherwise the tick's skip reason says why, space by space.
- ``dual_write_sensor`` sends every new source_documents materialization of a tenant to
  embed_space_job in every active (not retired) space, so a candidate does not fall behind.
"""

import json
from typing import Any

import dagster as dg

from embedops.core.cutover import active_spaces, check_gate, cutover, open_manifest
from embedops.core.migration import GateResult, MigrationConfig, known_tenants
from embedops.core.spaces import SpacesConfig, SpaceSpec
from embedops.errors import GateRefusedError
from embedops.pipelines.execution import launched_by
from embedops.pipelines.in_flight import partitions_in_flight, written_by_trigger
from embedops.pipelines.jobs import embed_space_job
from embedops.pipelines.partitions import tenant_space_key
from embedops.resources import VectorStoreResource, WorkspaceResource

SOURCE_DOCUMENTS = dg.AssetKey("source_documents")
WHO_TAG = "embedops/who"


def migration_config(workspace: WorkspaceResource) -> MigrationConfig:
    return workspace.spaces().migration


def customer_tenants(workspace: WorkspaceResource, instance: dg.DagsterInstance | None = None) -> list[str]:
    """Every customer tenant: registered, read, or a tenant partition in Dagster."""
    extra = instance.get_dynamic_partitions("tenants") if instance is not None else []
    return known_tenants(workspace.registry().tenants(), workspace.tables(), extra)


def tenant_sources(workspace: WorkspaceResource, instance: dg.DagsterInstance | None = None) -> dict[str, str]:
    """Every customer tenant and its source folder (registered, else under EMBEDOPS_SOURCES)."""
    registry = workspace.registry()
    root = workspace.settings.sources_root
    return {t: registry.source_dir(t, root) for t in customer_tenants(workspace, instance)}


def gate_for(
    workspace: WorkspaceResource,
    vector_store: VectorStoreResource,
    space: SpaceSpec,
    alias: str,
    instance: dg.DagsterInstance | None = None,
) -> GateResult:
    """The cutover gate for ``space`` on ``alias``, from the workspace's current state."""
    config = workspace.spaces()
    store = vector_store.open()
    manifest = open_manifest(workspace.settings.control_url, config, store)
    return check_gate(
        config,
        migration_config(workspace),
        space,
        alias,
        store,
        workspace.tables(),
        manifest,
        tenant_sources(workspace, instance),
    )


class CutoverConfig(dg.Config):
    """Which alias to move, to which space, and whether to override a refusing gate (recorded)."""

    alias: str = "docs"
    space: str
    force: bool = False


@dg.op(tags={"kind": "embedops"})
def cutover_alias(
    context: dg.OpExecutionContext,
    config: CutoverConfig,
    workspace: WorkspaceResource,
    vector_store: VectorStoreResource,
) -> dg.Output[dict]:
    """Repoint the alias at the space in one atomic step, if the gate passes (or force), and record it."""
    spaces = workspace.spaces()
    space = spaces.get(config.space)
    verdict = gate_for(workspace, vector_store, space, config.alias, context.instance)
    tags = context.run.tags if context.run else {}
    who = tags.get(WHO_TAG) or tags.get("dagster/user") or f"dagster run {context.run.run_id}"
    if config.force and not verdict.passed:
        context.log.warning(f"FORCED cutover of {config.alias!r} to {space.name!r} by {who}: {verdict.explain()}")
    store = vector_store.open()
    manifest = open_manifest(workspace.settings.control_url, spaces, store)
    try:
        swap = cutover(
            store, manifest, spaces, config.alias, space, verdict, who, config.force
        )
    except GateRefusedError as exc:
        raise dg.Failure(description=str(exc), metadata={"gate": dg.MetadataValue.json(verdict.to_json())}) from exc
    context.log.info(f"alias {config.alias!r}: {swap.from_space} -> {swap.to_space} ({swap.action}, by {who})")
    return dg.Output(
        swap.to_json(),
        metadata={
            "alias": config.alias,
            "from": swap.from_space or "",
            "to": swap.to_space,
            "action": swap.action,
            "who": who,
            "forced": swap.forced,
            "gate": dg.MetadataValue.json(verdict.to_json()),
        },
    )


golden_set_evaluation_job = dg.define_asset_job(
    "golden_set_evaluation_job",
    selection=["golden_set_evaluation"],
    description="Measure a space on the golden set (recall@10, nDCG@10, MRR@10; ANN and exact).",
)


@dg.job(description="Repoint an alias at a space through the cutover gate (config: alias, space, force).")
def cutover_job() -> None:
    cutover_alias()


def _candidates(config: SpacesConfig, manifest: Any, serving_id: str | None) -> list[SpaceSpec]:
    rows = manifest.spaces()
    return [
        s
        for s in config.spaces
        if s.space_id != serving_id
        and rows.get(s.name, {}).get("state") in ("building", "validated")
        and rows.get(s.name, {}).get("auto_cutover", True)
    ]


@dg.sensor(
    jobs=[cutover_job, golden_set_evaluation_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Moves the alias to a candidate space through the gate: measures a ready candidate on the golden "
    "set (golden_set_evaluation_job), then runs cutover_job once every tenant is materialized, reconciliation "
    "passes and recall@10 is within tolerance of the serving space; a refusing tick says why.",
)
def cutover_sensor(
    context: dg.SensorEvaluationContext, workspace: WorkspaceResource, vector_store: VectorStoreResource
) -> dg.SensorResult:
    """Launch cutover_job for a candidate space once every tenant is materialized, reconciliation
    passes and its golden-set recall@10 is within tolerance of the serving space's.

    A candidate that is ready but not yet measured gets a golden_set_evaluation_job run first (once per
    candidate, serving space and golden set); the next tick decides on its numbers.
    """
    config = workspace.spaces()
    store = vector_store.open()
    manifest = open_manifest(workspace.settings.control_url, config, store)
    serving_id = store.get_alias(config.alias)
    candidates = _candidates(config, manifest, serving_id)
    if not candidates:
        return dg.SensorResult(skip_reason=f"no candidate space for alias {config.alias!r}")
    golden = migration_config(workspace).golden
    passed: list[tuple[float, SpaceSpec, GateResult]] = []
    evaluations: list[dg.RunRequest] = []
    refusals = []
    for space in candidates:
        verdict = gate_for(workspace, vector_store, space, config.alias, context.instance)
        if verdict.passed:
            manifest.set_state(space.name, "validated")
            passed.append((float(verdict.numbers.get("candidate_recall@10", 0.0)), space, verdict))
        elif golden and verdict.ready_for_evaluation:
            evaluations.append(
                dg.RunRequest(
                    job_name=golden_set_evaluation_job.name,
                    partition_key=space.name,
                    run_key=f"golden:{space.space_id}:{serving_id}:{golden}",
                    tags={WHO_TAG: "cutover_sensor", **launched_by("sensor", "cutover_sensor")},
                )
            )
            context.log.info(f"{space.name}: every tenant is ready; measuring it on the golden set {golden}")
        else:
            refusals.append(f"{space.name}: {'; '.join(verdict.reasons)}")
    if not passed:
        if evaluations:
            return dg.SensorResult(run_requests=evaluations)
        return dg.SensorResult(skip_reason="gate refused every candidate. " + " | ".join(refusals))
    _, space, verdict = max(passed, key=lambda p: (p[0], p[1].name))
    run_key = f"cutover:{config.alias}:{space.space_id}:{verdict.numbers.get('golden')}:{serving_id}"
    context.log.info(f"gate passed for {space.name!r}: {json.dumps(verdict.to_json(), default=str)}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                job_name=cutover_job.name,
                run_key=run_key,
                run_config={"ops": {"cutover_alias": {"config": {"alias": config.alias, "space": space.name}}}},
                tags={WHO_TAG: "cutover_sensor", **launched_by("sensor", "cutover_sensor")},
            )
        ]
    )


@dg.sensor(
    job=embed_space_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends a tenant's new source documents to every active space (serving, building, validated) "
    "as embed_space_job runs, except partitions that the run or backfill which read the sources, or a queued "
    "or running run, already writes.",
)
def dual_write_sensor(
    context: dg.SensorEvaluationContext, workspace: WorkspaceResource, vector_store: VectorStoreResource
) -> dg.SensorResult:
    """A tenant's new source documents go to every active space: serving, building and validated."""
    latest = context.instance.fetch_materializations(SOURCE_DOCUMENTS, limit=1)
    newest = latest.records[0].storage_id if latest.records else 0
    if context.cursor is None:  # first tick: start from now, do not replay history
        return dg.SensorResult(cursor=str(newest), skip_reason="started; watching new source_documents")
    after = int(context.cursor)
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SOURCE_DOCUMENTS, after_storage_id=after), limit=200, ascending=True
    )
    if not found.records:
        return dg.SensorResult(cursor=str(after), skip_reason="no new source_documents")
    config = workspace.spaces()
    spaces = active_spaces(config, open_manifest(workspace.settings.control_url, config, vector_store.open()))
    busy = partitions_in_flight(context.instance)  # grows with each request: one run per partition per tick
    requests, left, cursor = [], [], after
    for record in found.records:
        cursor = max(cursor, record.storage_id)
        tenant = record.partition_key
        if tenant is None or _unchanged(record):
            continue
        own = written_by_trigger(context.instance, record.run_id)
        for space in spaces:
            key = tenant_space_key(tenant, space.name)
            if str(key) in own or str(key) in busy:
                left.append(f"{tenant}/{space.name}")
                continue
            busy.add(str(key))
            requests.append(
                dg.RunRequest(
                    partition_key=key,
                    run_key=f"dual-write:{record.storage_id}:{space.space_id}",
                    tags={"embedops/trigger": "dual-write", "embedops/space": space.name,
                          **launched_by("sensor", "dual_write_sensor")},
                )
            )
    if not requests and not left:
        return dg.SensorResult(cursor=str(cursor), skip_reason="no source document changed")
    if left:
        context.log.info(f"already written by the run that read the sources or a run on its way: {', '.join(left)}")
    skip = None if requests else f"every new source change is already on its way to its spaces ({', '.join(left)})"
    return dg.SensorResult(run_requests=requests, cursor=str(cursor), skip_reason=skip)


def _unchanged(record: dg.EventLogRecord) -> bool:
    """True for a source_documents materialization that found no document changed (it wrote no table)."""
    found = record.asset_materialization
    flag = found.metadata.get("unchanged") if found is not None else None
    return flag is not None and flag.value is True
