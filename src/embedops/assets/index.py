import time

import dagster as dg

from embedops.errors import NotMaterializedError
from embedops.pipelines.partitions import split_key, tenant_space_partitions
from embedops.resources import VectorStoreResource, WorkspaceResource


@dg.asset(
    partitions_def=tenant_space_partitions,
    deps=["chunk_embeddings"],
    group_name="index",
    kinds={"lancedb"},
)
def vector_index(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource
) -> dg.MaterializeResult:
    """The tenant's collection in the space, synced to the embeddings in one commit (deletes included)."""
    started = time.monotonic()
    spaces = workspace.spaces()
    tenant, space = split_key(context, spaces)
    rows = workspace.tables().read("chunk_embeddings", (tenant, space.name))
    if rows is None:
        raise NotMaterializedError(f"chunk_embeddings for {tenant}/{space.name} is not materialized yet")
    store = vector_store.open()
    result = store.sync(tenant, space.space_id, space.name, rows)
    if store.get_alias(spaces.alias) is None and space.name == spaces.serving_space.name:
        store.set_alias(spaces.alias, space.space_id)
        context.log.info(f"alias {spaces.alias!r} now serves space {space.name!r}")
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
