import time

import dagster as dg

from embedops.assets.documents import quarantine_metadata
from embedops.assets.metadata import carried, numbers, plain, recorded, still_current, table_metadata, table_of
from embedops.core.changelog import ChangeLog, consumed_version
from embedops.core.delta import apply_chunks
from embedops.core.ingest import CHUNKS_SCHEMA, plan_chunks
from embedops.core.sources import quarantine_table
from embedops.errors import NotMaterializedError
from embedops.pipelines.partitions import by_tenant, tenant_space, tenant_space_partitions
from embedops.resources import EmbedderResource, WorkspaceResource

# what a run that finds nothing to do reports again from the materialization it leaves in place
_KEPT = ("documents", "chunks", "space_id", "table", "table_version", "quarantined", "quarantined_documents")


@dg.asset(
    partitions_def=tenant_space_partitions,
    ins={"source_documents": dg.AssetIn(partition_mapping=by_tenant, dagster_type=dg.Nothing)},
    group_name="embeddings",
    kinds={"lance"},
)
def document_chunks(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, embedder: EmbedderResource
) -> dg.MaterializeResult:
    """Chunks of every document in the space's recipe; only added and changed documents are chunked.

    When the source table and this table are still the versions the last run recorded, nothing is read.
    """
    started = time.monotonic()
    tenant, space = tenant_space(context, workspace)
    tables = workspace.tables()
    partition = (tenant, space.name)
    source = tables.latest("source_documents", (tenant,))
    if source is None:
        raise NotMaterializedError(f"source_documents for tenant {tenant!r} is not materialized yet")
    own = tables.latest("document_chunks", partition)
    before = recorded(context.instance, "document_chunks", str(context.partition_key))
    versions = {"source_version": source[1], "table_version": own[1] if own else None}
    if still_current(before, space.config_hash, versions):
        context.log.info(f"{tenant}/{space.name}: source_documents unchanged since the last run; nothing to chunk")
        return dg.MaterializeResult(metadata={
            **carried(before, _KEPT), "added": 0, "changed": 0, "deleted": 0,
            "unchanged": numbers(before).get("documents", 0),
            "table_unchanged": True, "source_version": source[1], "config_hash": space.config_hash,
            "duration_s": round(time.monotonic() - started, 3),
        })
    table = tables.dataset("source_documents", (tenant,))
    assert table is not None
    documents, source = table, (source[0], int(table.version))
    previous = tables.dataset("document_chunks", partition)
    run_id = context.run.run_id
    chunker = embedder.chunker(space, log=context.log.info)  # in process, or on a Ray cluster
    log = ChangeLog(workspace.settings.control_url)
    # the documents changed since the source version the last run consumed, when the records tell them all
    only = log.changed_since(
        tables.url("source_documents", (tenant,)),
        consumed_version(plain(before), space.config_hash, own[1] if own else None, "source_version"), source[1],
    )
    with workspace.lease(f"tables/document_chunks/{tenant}/{space.name}", run_id, context.instance):
        plan = apply_chunks(tables, partition, documents, previous, space, chunker, run_id, only=only, log=log)
        if plan is None:  # no table yet, or too large a change to commit as one: a new table
            log.forget(tables.url("document_chunks", partition))
            with tables.writer("document_chunks", partition, CHUNKS_SCHEMA, run_id) as out:
                plan = plan_chunks(documents, previous, space, chunker, out)
        tables.write("chunk_quarantine", partition, quarantine_table(plan.quarantined), run_id)
    return dg.MaterializeResult(
        metadata={
            "documents": plan.documents,
            "chunks": plan.rows,
            **plan.counts(),
            **({"deleted_documents": table_of(plan.diff.deleted)} if plan.diff.deleted else {}),
            "table_unchanged": plan.unchanged,
            "space_id": space.space_id,
            **table_metadata(tables.latest("document_chunks", partition)),
            "source_version": source[1],
            "compared": "changed documents" if only is not None else "every document",
            **({"documents_compared": len(only)} if only is not None else {}),
            "config_hash": space.config_hash,
            "duration_s": round(time.monotonic() - started, 3),
            **quarantine_metadata(plan.quarantined),
            **chunker.report(),
        }
    )
