from __future__ import annotations

import dagster as dg

from embedops.pipelines.partitions import tenant_partitions, tenant_space_partitions

source_documents_job = dg.define_asset_job(
    "source_documents_job",
    selection=["source_documents"],
    partitions_def=tenant_partitions,
    description="Read a tenant's source folder.",
)

embed_space_job = dg.define_asset_job(
    "embed_space_job",
    selection=["document_chunks", "chunk_embeddings", "vector_index"],
    partitions_def=tenant_space_partitions,
    description="Chunk, embed and index one tenant in one space.",
)
