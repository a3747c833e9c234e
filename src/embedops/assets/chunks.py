import time

import dagster as dg

from embedops.assets.documents import quarantine_metadata
from embedops.assets.metadata import table_metadata, table_of
from embedops.core.ingest import CHUNKS_SCHEMA, plan_chunks
from embedops.core.sources import quarantine_table
from embedops.errors import NotMaterializedError
from embedops.pipelines.partitions import by_tenant, tenant_space, tenant_space_partitions
from embedops.resources import EmbedderResource, WorkspaceResource


@dg.asset(
    partitions_def=tenant_space_partitions,
    ins={"source_documents": dg.AssetIn(partition_mapping=by_tenant, dagster_type=dg.Nothing)},
    group_name="embeddings",
    kinds={"lance"},
)
def document_chunks(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, embedder: EmbedderResource
) -> dg.MaterializeResult:
    """Chunks of every document in the space's recipe; unchanged documents keep their chunks."""
    started = time.monotonic()
    tenant, space = tenant_space(context, workspace)
    tables = workspace.tables()
    documents = tables.dataset("source_documents", (tenant,))
    if documents is None:
        raise NotMaterializedError(f"source_documents for tenant {tenant!r} is not materialized yet")
    previous = tables.dataset("document_chunks", (tenant, space.name))
    with (
        workspace.lease(f"tables/document_chunks/{tenant}/{space.name}", context.run.run_id, context.instance),
        tables.writer("document_chunks", (tenant, space.name), CHUNKS_SCHEMA, context.run.run_id) as out,
    ):
        model = embedder.for_space(space)
        plan = plan_chunks(documents, previous, space, model.count_tokens, out, model.unknown_share)
        tables.write("chunk_quarantine", (tenant, space.name), quarantine_table(plan.quarantined), context.run.run_id)
    return dg.MaterializeResult(
        metadata={
            "documents": len(plan.diff.added) + len(plan.diff.changed) + len(plan.diff.unchanged),
            "chunks": plan.rows,
            **plan.diff.counts(),
            **({"deleted_documents": table_of(plan.diff.deleted)} if plan.diff.deleted else {}),
            "space_id": space.space_id,
            **table_metadata((out.url, out.version)),
            "duration_s": round(time.monotonic() - started, 3),
            **quarantine_metadata(plan.quarantined),
        }
    )

