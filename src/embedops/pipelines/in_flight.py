"""What is already being written: the tenant x space partitions that a queued or running run, or a
backfill still in progress, will write. Automation asks this before it requests a run, so a partition
never gets a second run while one is on its way (dual_write_sensor, space_backfill_sensor).

Backfills have no public API in Dagster: what is read of them comes from pipelines/dagster_internals.py;
tests/pipelines/test_control_room.py (a real daemon and webserver) fails if an upgrade changes it.
"""

from __future__ import annotations

import dagster as dg

from embedops.pipelines.dagster_internals import PartitionBackfill, backfill_partition_keys, requested_backfills
from embedops.pipelines.jobs import EMBED_ASSETS, embed_space_job

# on a source_documents run whose own process embeds the tenant next (embedops ingest, embedops backfill):
# the spaces it embeds, comma-separated; dual_write_sensor leaves those to it
EMBEDS_TAG = "embedops/embeds"
TENANT_TAG, SPACE_TAG = "dagster/partition/tenant", "dagster/partition/space"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
_EMBED_KEYS = [dg.AssetKey(a) for a in EMBED_ASSETS]


def embeds_next(spaces: list[str]) -> dict[str, str]:
    """Tags for a source_documents run that the same command follows with embed runs in ``spaces``."""
    return {EMBEDS_TAG: ",".join(spaces)}


def written_by_trigger(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """Tenant x space keys that the run which read a tenant's sources writes next, or whose backfill does
    (finished or not): the spaces of its ``embedops/embeds`` tag, the targets of its backfill."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return set()
    tenant = run.tags.get("dagster/partition", "")
    keys = {
        str(dg.MultiPartitionKey({"tenant": tenant, "space": space}))
        for space in run.tags.get(EMBEDS_TAG, "").split(",")
        if space and tenant
    }
    backfill = instance.get_backfill(run.tags["dagster/backfill"]) if "dagster/backfill" in run.tags else None
    return keys | (_backfill_keys(backfill) if backfill is not None else set())


def writes_embeddings(run: dg.DagsterRun) -> bool:
    """True for a run that chunks, embeds or indexes (embed_space_job, or an asset run selecting those)."""
    selected = run.asset_selection or set()
    return run.job_name == embed_space_job.name or any(k in selected for k in _EMBED_KEYS)


def _backfill_keys(backfill: PartitionBackfill) -> set[str]:
    return backfill_partition_keys(backfill, _EMBED_KEYS, embed_space_job.name)


def partitions_in_flight(instance: dg.DagsterInstance) -> set[str]:
    """Tenant x space keys (``space|tenant``) that a queued or running run, or a backfill, will write."""
    keys = set()
    for record in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE)):
        run = record.dagster_run
        tenant, space = run.tags.get(TENANT_TAG), run.tags.get(SPACE_TAG)
        if tenant and space and writes_embeddings(run):
            keys.add(str(dg.MultiPartitionKey({"tenant": tenant, "space": space})))
    for backfill in requested_backfills(instance):
        keys |= _backfill_keys(backfill)
    return keys
