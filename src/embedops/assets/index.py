import time
from collections.abc import Iterator
from contextlib import closing

import dagster as dg

from embedops.assets.check_support import (
    INDEX_CHECK_SPECS,
    INDEX_KEY,
    invariant_results,
    keep_distribution_baseline,
    tenant_space,
)
from embedops.core.cutover import open_manifest, point_first
from embedops.errors import NotMaterializedError
from embedops.pipelines.partitions import split_key, tenant_space_partitions
from embedops.resources import VectorStoreResource, WorkspaceResource

_DESCRIPTION = "The tenant's collection in the space, synced to the embeddings in one commit (deletes included)."
FIRST_SYNC = "vector_index first sync"  # who the manifest records as first pointing the alias


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            INDEX_KEY, deps=["chunk_embeddings"], group_name="index", kinds={"lancedb"}, description=_DESCRIPTION
        )
    ],
    partitions_def=tenant_space_partitions,
    check_specs=INDEX_CHECK_SPECS,
    can_subset=True,
)
def vector_index(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Sync the collection (when selected), then check its invariants: one space, complete provenance."""
    if INDEX_KEY in context.selected_asset_keys:
        yield _sync_index(context, workspace, vector_store)
    tenant, space = tenant_space(context, workspace.spaces())
    yield from invariant_results(set(context.selected_asset_check_keys), vector_store.open(), tenant, space)


def _sync_index(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource
) -> dg.MaterializeResult:
    started = time.monotonic()
    spaces = workspace.spaces()
    tenant, space = split_key(context, spaces)
    rows = workspace.tables().dataset("chunk_embeddings", (tenant, space.name))
    if rows is None:
        raise NotMaterializedError(f"chunk_embeddings for {tenant}/{space.name} is not materialized yet")
    store = vector_store.open()
    result = store.sync(tenant, space.space_id, space.name, rows)
    if space.name == spaces.serving_space.name and store.get_alias(spaces.alias) is None:  # point_first re-checks
        home = workspace.settings.home
        details = {"run_id": context.run.run_id, "tenant": tenant}
        with closing(open_manifest(home, spaces, store)) as manifest:
            if point_first(store, manifest, spaces, home, spaces.alias, space, FIRST_SYNC, details) is not None:
                context.log.info(f"alias {spaces.alias!r} now serves space {space.name!r}")
    if keep_distribution_baseline(workspace.settings.home, tenant, space, rows):
        context.log.info(f"kept the distribution baseline of {tenant}/{space.name} for the drift checks")
    return dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "upserted": result.upserted,
            "deleted": result.deleted,
            "version": result.version if result.version is not None else -1,
            "space_id": space.space_id,
            "alias_target": store.get_alias(spaces.alias) or "",
            "duration_s": round(time.monotonic() - started, 3),
        }
    )
