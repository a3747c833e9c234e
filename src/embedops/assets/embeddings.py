import time

import dagster as dg

from embedops.assets.documents import quarantine_metadata
from embedops.assets.metadata import table_metadata
from embedops.core.ingest import embed_chunks
from embedops.core.sources import quarantine_table
from embedops.core.stores.base import index_schema
from embedops.errors import NotMaterializedError
from embedops.pipelines.partitions import tenant_space, tenant_space_partitions
from embedops.resources import EmbedderResource, WorkspaceResource


@dg.asset(
    partitions_def=tenant_space_partitions,
    deps=["document_chunks"],
    group_name="embeddings",
    kinds={"lance", "pytorch"},
)
def chunk_embeddings(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, embedder: EmbedderResource
) -> dg.MaterializeResult:
    """A vector with full provenance for every chunk; the cache answers for text it has seen before."""
    started = time.monotonic()
    tenant, space = tenant_space(context, workspace)
    tables = workspace.tables()
    chunks = tables.dataset("document_chunks", (tenant, space.name))
    if chunks is None:
        raise NotMaterializedError(f"document_chunks for {tenant}/{space.name} is not materialized yet")
    schema = index_schema(space.dimension)
    previous = tables.dataset("chunk_embeddings", (tenant, space.name))
    run_id = context.run.run_id
    with (
        workspace.lease(f"tables/chunk_embeddings/{tenant}/{space.name}", run_id, context.instance),
        tables.writer("chunk_embeddings", (tenant, space.name), schema, run_id) as out,
    ):
        result = embed_chunks(
            chunks,
            space,
            embedder.for_space(space),
            workspace.cache(),
            out,
            previous=previous,
            max_failure_share=workspace.settings.max_model_failure_share,
        )
        tables.write("embedding_quarantine", (tenant, space.name), quarantine_table(result.quarantined), run_id)
    if result.model_failures:
        context.log.warning(
            f"{tenant}/{space.name}: the model failed on {result.model_failures} text(s); "
            f"{len(result.quarantined)} document(s) keep {result.stale_rows} stale row(s) and are retried next run"
        )
    return dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "model_calls": result.model_calls,
            "cache_hits": result.cache_hits,
            "model_failures": result.model_failures,
            "stale_rows": result.stale_rows,
            "model": space.model.identity,
            "space_id": space.space_id,
            **table_metadata((out.url, out.version)),
            "duration_s": round(time.monotonic() - started, 3),
            **quarantine_metadata(result.quarantined),
        }
    )
