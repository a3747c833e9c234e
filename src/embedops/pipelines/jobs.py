"""The jobs: the pipeline (a tenant's sources; chunk, embed and index a tenant x space) and the checks.

Each job runs its steps in the run's own process (``in_process_executor``): a run is one partition,
its steps share the model the first step loads, and a run launched from the UI is as quick as the
same run from `embedops`. The checks jobs are partitioned like the assets they check, so their
Launchpad has a partition picker; the nightly schedules and `embedops check` run these same jobs.
"""

from __future__ import annotations

import dagster as dg

from embedops.assets.check_support import INDEX_KEY, INVARIANT_CHECKS
from embedops.pipelines.partitions import tenant_partitions, tenant_space_partitions

TENANT_SPACE_ASSETS = ("document_chunks", "vector_index")
TENANT_ASSETS = ("source_documents",)
EMBED_ASSETS = ("document_chunks", "chunk_embeddings", "vector_index")

source_documents_job = dg.define_asset_job(
    "source_documents_job",
    selection=dg.AssetSelection.assets("source_documents").without_checks(),  # checks: source_checks_job
    executor_def=dg.in_process_executor,
    description="Read a tenant's source folder.",
)

embed_space_job = dg.define_asset_job(
    "embed_space_job",
    # the index checks its own invariants as it syncs; comparing checks run in monitoring_checks_job
    selection=dg.AssetSelection.assets(*EMBED_ASSETS).without_checks()
    | dg.AssetSelection.checks(*(dg.AssetCheckKey(INDEX_KEY, name) for name in INVARIANT_CHECKS)),
    executor_def=dg.in_process_executor,
    description="Chunk, embed and index one tenant in one space.",
)



def _picker(partitions: dg.PartitionsDefinition) -> dg.PartitionedConfig:
    """A checks-only job selects no asset, so Dagster infers no partitions for it (and its Launchpad has no
    partition picker); a partitioned config (with no config of its own) gives it the assets' partitions."""
    return dg.PartitionedConfig(partitions_def=partitions, run_config_for_partition_key_fn=lambda _key: {})


def _checks_job(name: str, assets: tuple[str, ...], partitions: dg.PartitionsDefinition, description: str):  # type: ignore[no-untyped-def]
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.checks_for_assets(*assets),
        config=_picker(partitions),
        executor_def=dg.in_process_executor,
        description=description,
    )


monitoring_checks_job = _checks_job(
    "monitoring_checks_job", TENANT_SPACE_ASSETS, tenant_space_partitions,
    "Every check of one tenant x space: the index against sources, model and past; chunk quality.",
)
source_checks_job = _checks_job(
    "source_checks_job", TENANT_ASSETS, tenant_partitions,
    "Every check of one tenant's source documents (Great Expectations).",
)
