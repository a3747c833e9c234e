from __future__ import annotations

import dagster as dg

from embedops.assets.check_support import INDEX_KEY, INVARIANT_CHECKS

source_documents_job = dg.define_asset_job(
    "source_documents_job",
    selection=dg.AssetSelection.assets("source_documents").without_checks(),  # checks: monitoring_checks_job
    description="Read a tenant's source folder.",
)

embed_space_job = dg.define_asset_job(
    "embed_space_job",
    # the index checks its own invariants as it syncs; comparing checks run in monitoring_checks_job
    selection=dg.AssetSelection.assets("document_chunks", "chunk_embeddings", "vector_index").without_checks()
    | dg.AssetSelection.checks(*(dg.AssetCheckKey(INDEX_KEY, name) for name in INVARIANT_CHECKS)),
    description="Chunk, embed and index one tenant in one space.",
)
