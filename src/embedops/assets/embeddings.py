import time

import dagster as dg

from embedops.assets.documents import quarantine_metadata
from embedops.assets.metadata import carried, numbers, plain, recorded, still_current, table_metadata
from embedops.core.changelog import ChangeLog, consumed_version
from embedops.core.delta import EmbeddingChange, apply_embeddings
from embedops.core.embedder import Prefetching
from embedops.core.ingest import embed_chunks
from embedops.core.sources import quarantine_table
from embedops.core.stores.base import index_schema
from embedops.errors import NotMaterializedError
from embedops.pipelines.partitions import tenant_space, tenant_space_partitions
from embedops.resources import EmbedderResource, WorkspaceResource

# what a run that finds nothing to do reports again from the materialization it leaves in place
_KEPT = ("rows", "model", "space_id", "table", "table_version", "quarantined", "quarantined_documents")


def has_pending_retries(metadata: dict) -> bool:
    """Whether a chunk_embeddings materialization left documents to retry (stale rows, failed documents)."""
    found = numbers(metadata)
    return bool(found.get("stale_rows", 0) or found.get("quarantined", 0) or found.get("model_failures", 0))


@dg.asset(
    partitions_def=tenant_space_partitions,
    deps=["document_chunks"],
    group_name="embeddings",
    kinds={"lance", "pytorch"},
)
def chunk_embeddings(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, embedder: EmbedderResource
) -> dg.MaterializeResult:
    """A vector with full provenance for every chunk; only chunks without a current vector are embedded,
    the cache first. When the chunks and this table are still the versions the last run recorded (and no
    document waits for a retry), nothing is read and no model is loaded."""
    started = time.monotonic()
    tenant, space = tenant_space(context, workspace)
    tables = workspace.tables()
    partition = (tenant, space.name)
    chunks = tables.dataset("document_chunks", partition)
    if chunks is None:
        raise NotMaterializedError(f"document_chunks for {tenant}/{space.name} is not materialized yet")
    chunks_version = int(chunks.version)
    own = tables.latest("chunk_embeddings", partition)
    before = recorded(context.instance, "chunk_embeddings", str(context.partition_key))
    versions = {"chunks_version": chunks_version, "table_version": own[1] if own else None}
    if still_current(before, space.config_hash, versions) and not has_pending_retries(dict(before)):
        context.log.info(f"{tenant}/{space.name}: document_chunks unchanged since the last run; nothing to embed")
        return dg.MaterializeResult(metadata={
            **carried(before, _KEPT), "model_calls": 0, "cache_hits": 0, "model_failures": 0, "stale_rows": 0,
            "unchanged": True, "chunks_version": chunks_version, "config_hash": space.config_hash,
            "duration_s": round(time.monotonic() - started, 3),
        })
    schema = index_schema(space.dimension)
    previous = tables.dataset("chunk_embeddings", partition)
    run_id = context.run.run_id
    share = workspace.settings.max_model_failure_share
    encoder = embedder.for_corpus(space, log=context.log.info)
    log = ChangeLog(workspace.settings.control_url)
    # the documents whose chunks changed since the version the last run consumed, when the records tell them all
    only = None
    if not has_pending_retries(dict(before)):
        since = consumed_version(plain(before), space.config_hash, own[1] if own else None, "chunks_version")
        only = log.changed_since(tables.url("document_chunks", partition), since, chunks_version)
    with workspace.lease(f"tables/chunk_embeddings/{tenant}/{space.name}", run_id, context.instance):
        change = apply_embeddings(
            tables, partition, chunks, previous, space, lambda: encoder, workspace.cache(), share, only=only, log=log
        )
        if change is None:  # no table yet, or too large a change to commit as one: a new table
            log.forget(tables.url("chunk_embeddings", partition))
            with tables.writer("chunk_embeddings", partition, schema, run_id) as out:
                result = embed_chunks(chunks, space, encoder, workspace.cache(), out,
                                      previous=previous, max_failure_share=share)
            change = EmbeddingChange(result, result.rows, unchanged=False)
        result = change.result
        tables.write("embedding_quarantine", partition, quarantine_table(result.quarantined), run_id)
    if result.model_failures:
        context.log.warning(
            f"{tenant}/{space.name}: the model failed on {result.model_failures} text(s); "
            f"{len(result.quarantined)} document(s) keep {result.stale_rows} stale row(s) and are retried next run"
        )
    return dg.MaterializeResult(
        metadata={
            "rows": change.rows,
            "model_calls": result.model_calls,
            "cache_hits": result.cache_hits,
            "model_failures": result.model_failures,
            "stale_rows": result.stale_rows,
            "unchanged": change.unchanged,
            "model": space.model.identity,
            "space_id": space.space_id,
            **table_metadata(tables.latest("chunk_embeddings", partition)),
            "chunks_version": chunks_version,
            "compared": "changed documents" if only is not None else "every document",
            **({"documents_compared": len(only)} if only is not None else {}),
            "config_hash": space.config_hash,
            "duration_s": round(time.monotonic() - started, 3),
            **quarantine_metadata(result.quarantined),
            **(encoder.progress() if isinstance(encoder, Prefetching) else {}),
        }
    )
