"""What the asset checks share: the partition's tenant and space, the index rows, Outcome ->
AssetCheckResult, and the cheap invariants that vector_index evaluates on itself (STYLE habit 8)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import numpy as np

from embedops.assets.metadata import table_of
from embedops.core.monitoring import ERROR, Outcome
from embedops.core.monitoring.drift import centroid_and_norm
from embedops.core.monitoring.freshness import documents, freshness, pending_changes
from embedops.core.monitoring.reconcile import one_space, provenance
from embedops.core.monitoring.state import MonitoringState
from embedops.core.sources import checksum_of, list_source
from embedops.core.spaces import SpaceSpec
from embedops.core.stores.base import VectorStore, index_batches, index_rows
from embedops.core.tables import Rows, batches, count
from embedops.core.vectors import vector_matrix
from embedops.pipelines.partitions import tenant_space_partitions

# partitioned asset checks are a Dagster preview feature; they are what shows results per partition
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)

INDEX_KEY = dg.AssetKey("vector_index")
INVARIANT_CHECKS = {
    "one_space_per_collection": "Every row's space_id, space name and model identity equal the collection's.",
    "provenance_complete": "No row lacks a provenance field; vectors have the space's dimension.",
}
INDEX_CHECK_SPECS = [
    dg.AssetCheckSpec(name, asset=INDEX_KEY, description=text, partitions_def=tenant_space_partitions)
    for name, text in INVARIANT_CHECKS.items()
]


def _metadata_value(name: str, value: Any) -> Any:
    if isinstance(value, str) and name.endswith("_dir"):
        return dg.MetadataValue.path(value)
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return table_of(value)
    return dg.MetadataValue.json(value)


def to_result(outcome: Outcome, asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    """The Outcome as Dagster records it: lists as tables (empty ones left out), folders as paths,
    failing ids as a table, and the Markdown tables (trends, histograms) shown as they are."""
    metadata: dict[str, Any] = {
        k: _metadata_value(k, v) for k, v in outcome.metadata.items() if v is not None and v != []
    }
    if outcome.ids:
        metadata["failing_ids"] = table_of(outcome.ids)
    metadata.update({k: dg.MetadataValue.md(v) for k, v in outcome.markdown.items()})
    severity = dg.AssetCheckSeverity.ERROR if outcome.severity == ERROR else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=outcome.passed, severity=severity, description=outcome.description[:2000], metadata=metadata,
        asset_key=asset_key, check_name=outcome.check if asset_key else None,
    )


def invariant_results(
    selected: set[dg.AssetCheckKey], store: VectorStore, tenant: str, space: SpaceSpec, limit: int = 50,
    documents: set[str] | None = None,
) -> Iterator[dg.AssetCheckResult]:
    """Evaluate the selected invariants on the collection as it is now."""
    for outcome in invariant_outcomes(selected, store, tenant, space, limit, documents):
        yield to_result(outcome, INDEX_KEY)


def invariant_outcomes(
    selected: set[dg.AssetCheckKey], store: VectorStore, tenant: str, space: SpaceSpec, limit: int = 50,
    documents: set[str] | None = None,
) -> list[Outcome]:
    """The selected invariants on the collection as it is now: every row, or with ``documents`` only those
    documents' rows (the caller knows every other row passed at the last full evaluation and is unchanged)."""
    names = {k.name for k in selected if k.asset_key == INDEX_KEY} & set(INVARIANT_CHECKS)
    found = []
    if "one_space_per_collection" in names:
        found.append(one_space(index_batches(store, tenant, space, documents=documents), space, limit))
    if "provenance_complete" in names:
        found.append(provenance(index_batches(store, tenant, space, True, documents), space, tenant, limit))
    if documents is not None:
        for outcome in found:
            outcome.metadata["checked"] = f"the rows of {len(documents)} changed document(s)"
            outcome.description = (
                f"{outcome.description} (the rows of the {len(documents)} document(s) this sync changed; "
                "every other row passed when last checked and is unchanged)"
            )
    return found


def keep_distribution_baseline(database: str, tenant: str, space: SpaceSpec, rows: Rows) -> bool:
    """Record the centroid and mean norm of the first materialization (read in batches) in the control
    database; later calls leave it alone."""
    state = MonitoringState(database)
    try:
        total = count(rows)
        if total == 0 or state.baseline(tenant, space.space_id) is not None:
            return False
        centroid, norm = centroid_and_norm(vector_matrix(part) for part in batches(rows, ["vector"]))
        return state.keep_baseline(tenant, space.space_id, np.asarray(centroid), norm, total)
    finally:
        state.close()


def freshness_outcome(
    workspace: Any, store: VectorStore, monitoring: Any, tenant: str, space: SpaceSpec, limit: int
) -> Outcome:
    """The freshness check's outcome (also what `embedops repair --stale` re-embeds)."""
    root = workspace.registry().source_dir(tenant, workspace.settings.sources_root)
    listed = list_source(root)
    rows = index_rows(store, tenant, space)
    table = workspace.tables().read("source_documents", (tenant,))
    # a table's rows have no modification time of their own: the commit time their feed recorded stands
    recorded = dict(zip(table["doc_id"].to_pylist(), table["modified_at"].to_pylist(), strict=True)) if (
        table is not None and None in listed.values()) else {}
    live = {d: at for d, at in ((d, at if at is not None else recorded.get(d)) for d, at in listed.items())
            if at is not None}
    changed = pending_changes(live, table, rows, lambda doc_id: checksum_of(root, doc_id))
    state = monitoring.state()
    base = state.baseline(tenant, space.space_id)
    state.close()
    return freshness(documents(rows, live, changed), monitoring.config().freshness, space.model.identity,
                     datetime.now(UTC), base.created_at if base else None, limit)
