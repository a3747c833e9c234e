"""The parts of Dagster that embedops relies on and Dagster does not export, in one place.

- A run launcher's worker health check (``CheckRunHealthResult``, ``WorkerStatus``): run monitoring
  asks the launcher whether a run's worker is alive; ``WatchedRunLauncher`` answers for in-process runs.
- The instance a run coordinator or launcher is bound to (``instance_of``): Dagster gives it to them
  as the private ``_instance``.
- The latest evaluation of every (check, partition) after a storage id (``latest_check_evaluations``),
  which the pager sensor reads: the public API reads check evaluations per run, not per partition.
- Backfills (``requested_backfills``, ``backfill_partition_keys``): Dagster has no public API for the
  backfills in progress or the partitions one targets; automation reads them to avoid a second run.

Everything else comes from ``import dagster``. tests/pipelines/test_dagster_internals.py fails when a
Dagster upgrade moves or changes any of these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

__all__ = [
    "CheckEvaluationRecord",
    "CheckRunHealthResult",
    "PartitionBackfill",
    "WorkerStatus",
    "backfill_partition_keys",
    "instance_of",
    "latest_check_evaluations",
    "requested_backfills",
]

COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def instance_of(component: Any) -> dg.DagsterInstance:
    """The instance a run coordinator or run launcher was configured with."""
    return component._instance  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CheckEvaluationRecord:
    """The latest completed evaluation of one check on one partition, and the run that made it."""

    check_key: dg.AssetCheckKey
    partition: str | None
    run_id: str
    evaluation: dg.AssetCheckEvaluation


def latest_check_evaluations(
    instance: dg.DagsterInstance, keys: Iterable[dg.AssetCheckKey], after: int | None
) -> tuple[list[CheckEvaluationRecord], int]:
    """The latest completed evaluation of every (check, partition) with a check event after storage id
    ``after``, and the storage id to read from next time."""
    storage = instance.event_log_storage
    cursor = after or 0
    found = []
    for info in storage.get_asset_check_partition_info(list(keys), after_storage_id=after):
        cursor = max(cursor, info.latest_check_event_storage_id)
        records = storage.get_asset_check_execution_history(
            info.check_key, limit=1, status=COMPLETED, partition_filter=PartitionKeyFilter(key=info.partition_key)
        )
        event = records[0].event if records else None
        data = event.dagster_event.asset_check_evaluation_data if event and event.dagster_event else None
        if data is not None:
            found.append(CheckEvaluationRecord(info.check_key, info.partition_key, records[0].run_id, data))
    return found, cursor


def requested_backfills(instance: dg.DagsterInstance) -> list[PartitionBackfill]:
    """The backfills still in progress (status REQUESTED)."""
    return list(instance.get_backfills(status=BulkActionStatus.REQUESTED))


def backfill_partition_keys(backfill: PartitionBackfill, assets: Iterable[dg.AssetKey], job_name: str) -> set[str]:
    """The partition keys a backfill targets for any of ``assets``: an asset backfill's target subset, or a
    job backfill's partition names when it backfills ``job_name``."""
    data = backfill.asset_backfill_data
    if data is not None:
        target = data.target_subset
        return {
            key
            for asset in assets
            if asset in target.asset_keys
            for key in target.get_partitions_subset(asset).get_partition_keys()
        }
    origin = backfill.partition_set_origin
    if origin is not None and origin.partition_set_name.startswith(job_name):
        return set(backfill.partition_names or [])
    return set()
