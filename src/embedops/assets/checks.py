"""Asset checks that compare systems: the index against the sources and the ledger, today's model
against stored vectors, the index against its own past, and the tables against Great Expectations.

Each check is partitioned like its asset, so the UI shows its result per tenant (x space). The logic
lives in core/monitoring; these wrappers load the inputs and record the outcome.
"""

import dagster as dg

from embedops.assets.check_support import freshness_outcome, to_result
from embedops.core import cdc
from embedops.core.cdc import TableSource
from embedops.core.monitoring import ERROR, Outcome
from embedops.core.monitoring.drift import (
    centroid_and_norm,
    distribution_shift,
    fixed_sample_rows,
    neighbour_stability,
    sentinel_drift,
    trend_table,
)
from embedops.core.monitoring.quality import chunks_quality, documents_quality
from embedops.core.monitoring.reconcile import reconcile_tenant
from embedops.core.monitoring.replication import columns_outcome, slot_outcome
from embedops.core.monitoring.sentinel import TodayEmbedder, rederive, sentinel_texts
from embedops.core.stores.base import empty_index, index_batches
from embedops.core.tenants import validate_tenant
from embedops.core.vectors import vector_matrix
from embedops.pipelines.partitions import tenant_partitions, tenant_space, tenant_space_partitions
from embedops.resources import EmbedderResource, VectorStoreResource, WorkspaceResource
from embedops.resources.monitoring import MonitoringResource

INDEX = "vector_index"


@dg.asset_check(asset=INDEX, partitions_def=tenant_space_partitions)
def reconciliation(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource,
    monitoring: MonitoringResource,
) -> dg.AssetCheckResult:
    """Source documents = documents with vectors; index rows = chunk ledger; orphans and missing by id."""
    tenant, space = tenant_space(context, workspace)
    root = workspace.registry().source_dir(tenant, workspace.settings.sources_root)
    return to_result(
        reconcile_tenant(workspace.tables(), vector_store.open(), root, tenant, space, monitoring.config().list_limit)
    )


def _record(
    monitoring: MonitoringResource, tenant: str, space_id: str, values: dict[str, float], labels: dict[str, str]
) -> str:
    """Append this evaluation's numbers to the history; the Markdown trend of the last evaluations."""
    state, n = monitoring.state(), monitoring.config().trend_length
    try:
        state.record(tenant, space_id, values)
        return trend_table({label: state.history(tenant, space_id, metric, n) for metric, label in labels.items()})
    finally:
        state.close()


@dg.asset_check(asset=INDEX, name="sentinel_drift", partitions_def=tenant_space_partitions)
def sentinel_drift_check(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource,
    monitoring: MonitoringResource, embedder: EmbedderResource,
) -> dg.AssetCheckResult:
    """A fixed sample of chunks re-embedded with the model and recipe as they load today vs stored vectors."""
    tenant, space = tenant_space(context, workspace)
    config = monitoring.config()
    batches = index_batches(vector_store.open(), tenant, space, with_vectors=True)
    picked = fixed_sample_rows(batches, config.sentinel.sample)
    if picked is None:
        picked = empty_index(space, with_vectors=True)
    today = TodayEmbedder(space, embedder.batch_size)
    if today.dimension != space.dimension:
        return to_result(Outcome("sentinel_drift", False, ERROR, f"the model {space.model.name!r} now produces "
                                 f"{today.dimension}-d vectors; space {space.name!r} stores {space.dimension}-d"))
    records = picked.drop_columns(["vector"]).to_pylist()
    derived = rederive(workspace.tables().read("source_documents", (tenant,)),
                       {r["doc_id"] for r in records}, space, today)
    texts, changed = sentinel_texts(records, derived)
    outcome = sentinel_drift([r["chunk_id"] for r in records], vector_matrix(picked), today.encode(texts),
                             config.sentinel, changed, config.list_limit)
    outcome.check = "sentinel_drift"
    outcome.metadata.setdefault("mean_distance", 0.0)  # a number on every evaluation: the UI plots it
    values = {"sentinel_mean_distance": outcome.metadata["mean_distance"]} if records else {}
    outcome.markdown["drift_trend"] = _record(monitoring, tenant, space.space_id, values,
                                              {"sentinel_mean_distance": "sentinel mean cosine distance"})
    return to_result(outcome)


@dg.asset_check(asset=INDEX, partitions_def=tenant_space_partitions)
def nn_stability(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource,
    monitoring: MonitoringResource, embedder: EmbedderResource,
) -> dg.AssetCheckResult:
    """Top-k of a fixed query set per tenant against the previous evaluation."""
    tenant, space = tenant_space(context, workspace)
    config = monitoring.config().nn_stability
    store, state = vector_store.open(), monitoring.state()
    kept = state.neighbours(tenant, space.space_id)
    queries = list(config.queries.get(tenant, []))
    if not queries and kept:
        queries = kept[0]
    if not queries:  # none configured: sample chunk texts once and keep them fixed
        sample = fixed_sample_rows(index_batches(store, tenant, space), config.queries_per_tenant, salt="nn")
        queries = sample.column("text").to_pylist() if sample is not None else []
    previous = kept[1] if kept and kept[0] == queries else None
    vectors = list(embedder.for_space(space).encode(queries)) if queries else []
    current = [[h.chunk_id for h in store.search(tenant, space.space_id, v, config.k, space.space_id)]
               for v in vectors]
    outcome = neighbour_stability(queries, previous, current, config)
    outcome.metadata.setdefault("mean_overlap", 1.0)  # the first evaluation is its own reference
    state.keep_neighbours(tenant, space.space_id, queries, current)
    state.close()
    values = {"nn_mean_overlap": outcome.metadata["mean_overlap"]} if previous is not None else {}
    outcome.markdown["drift_trend"] = _record(monitoring, tenant, space.space_id, values,
                                              {"nn_mean_overlap": f"mean top-{config.k} overlap"})
    return to_result(outcome)


@dg.asset_check(asset=INDEX, name="distribution_shift", partitions_def=tenant_space_partitions)
def distribution_shift_check(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource,
    monitoring: MonitoringResource,
) -> dg.AssetCheckResult:
    """Centroid cosine distance and mean-norm change against the baseline of the first materialization."""
    tenant, space = tenant_space(context, workspace)
    batches = index_batches(vector_store.open(), tenant, space, with_vectors=True)
    centroid, norm = centroid_and_norm(vector_matrix(batch) for batch in batches)
    state = monitoring.state()
    try:
        base = state.baseline(tenant, space.space_id)
        if base is None:  # materialized before monitoring existed: this evaluation becomes the baseline
            if centroid.size:
                state.keep_baseline(tenant, space.space_id, centroid, norm, 0)
            return to_result(Outcome("distribution_shift", True, description="no baseline yet: kept this one",
                                     metadata={"centroid_distance": 0.0, "norm_change": 0.0}))
    finally:
        state.close()
    outcome = distribution_shift(centroid, norm, base.centroid, base.mean_norm, monitoring.config().distribution)
    outcome.metadata["baseline_from"] = base.created_at.isoformat()
    values = {k: outcome.metadata[k] for k in ("centroid_distance", "norm_change")}
    outcome.markdown["drift_trend"] = _record(monitoring, tenant, space.space_id, values,
                                              {"centroid_distance": "centroid distance", "norm_change": "norm change"})
    return to_result(outcome)


@dg.asset_check(asset=INDEX, name="freshness", partitions_def=tenant_space_partitions)
def freshness_check(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource,
    monitoring: MonitoringResource,
) -> dg.AssetCheckResult:
    """Lag from source change to vectors (p50, p99) against the SLO; documents stale under their policy."""
    tenant, space = tenant_space(context, workspace)
    config = monitoring.config()
    return to_result(freshness_outcome(workspace, vector_store.open(), monitoring, tenant, space, config.list_limit))


@dg.asset_check(asset="source_documents", partitions_def=tenant_partitions)
def source_documents_quality(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    """Great Expectations: unique doc ids, non-empty text, the partition's valid tenant on every row."""
    tenant = validate_tenant(str(context.partition_key))
    table = workspace.tables().read("source_documents", (tenant,))
    if table is None:
        return to_result(Outcome("source_documents_quality", False, description="source_documents not materialized"))
    return to_result(documents_quality(table, tenant, monitoring.config().list_limit))


@dg.asset_check(asset="document_chunks", partitions_def=tenant_space_partitions)
def document_chunks_quality(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, monitoring: MonitoringResource,
    embedder: EmbedderResource,
) -> dg.AssetCheckResult:
    """Great Expectations: unique chunk ids, non-empty text, token counts within the model's max sequence."""
    tenant, space = tenant_space(context, workspace)
    table = workspace.tables().read("document_chunks", (tenant, space.name))
    if table is None:
        return to_result(Outcome("document_chunks_quality", False, description="document_chunks not materialized"))
    max_tokens = embedder.for_space(space).max_seq_length
    return to_result(chunks_quality(table, tenant, max_tokens, monitoring.config().list_limit))


def _table_source(context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource) -> TableSource | None:
    from embedops.pipelines.cdc import table_source_of

    return table_source_of(workspace, str(context.partition_key))


@dg.asset_check(asset="source_documents", partitions_def=tenant_partitions)
def replication_slot_lag(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    """A table source's slot: WAL held on the source database against WARN/ERROR thresholds (ERROR pages)."""
    source = _table_source(context, workspace)
    if source is None:
        return to_result(Outcome("replication_slot_lag", True, description="the tenant's source is not a table"))
    return to_result(slot_outcome(source, cdc.slot_lag(source), monitoring.config().replication_slot))


@dg.asset_check(asset="source_documents", partitions_def=tenant_partitions)
def table_source_columns(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource
) -> dg.AssetCheckResult:
    """A table source still has every declared column (a dropped or renamed one stops the source: ERROR)."""
    source = _table_source(context, workspace)
    if source is None:
        return to_result(Outcome("table_source_columns", True, description="the tenant's source is not a table"))
    return to_result(columns_outcome(source, cdc.missing_columns(source)))


MONITORING_CHECKS = [
    reconciliation, sentinel_drift_check, nn_stability, distribution_shift_check, freshness_check,
    source_documents_quality, document_chunks_quality, replication_slot_lag, table_source_columns,
]
