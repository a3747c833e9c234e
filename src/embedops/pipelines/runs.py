"""Launching the pipeline for a tenant through Dagster, and reading back what each run did.

The CLI and the demo call these; every run lands in the Dagster instance (DAGSTER_HOME), so it is
visible in the UI like any other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from embedops.core.spaces import SpaceSpec
from embedops.core.tenants import validate_tenant
from embedops.errors import ConfigError, EmbedopsError
from embedops.pipelines.liveness import worker_tags
from embedops.pipelines.partitions import register_partitions, tenant_space_key
from embedops.resources import WorkspaceResource


class RunFailedError(EmbedopsError):
    """A Dagster run of the pipeline failed; the message carries the step's own error."""


@dataclass
class IngestSummary:
    """What an ingest of one tenant into one space did (the `embedops ingest --json` object)."""

    tenant: str
    space: str
    space_id: str
    documents: int = 0
    chunks: int = 0
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    model_calls: int = 0
    cache_hits: int = 0
    index_rows: int = 0
    quarantined: list[dict[str, str]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# the event log keeps every event; the console shows warnings and errors only
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(node)
    if not events:
        return {}
    return {k: v.value for k, v in events[-1].metadata.items()}


def _execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, key: Any) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False, run_config=_QUIET, tags=worker_tags()
    )
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        message = "run failed"
        error = failures[0].step_failure_data.error if failures else None
        if error is not None:
            while error.cause is not None:  # Dagster wraps the asset's own exception; show that one
                error = error.cause
            message = f"step {failures[0].step_key}: {error.message.strip()}"
        raise RunFailedError(f"{job} for {key} failed (run {result.run_id}): {message}")
    return result


def run_ingest(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tenant: str,
    spaces: list[SpaceSpec],
    source: Path | None = None,
) -> list[IngestSummary]:
    """Read the tenant's sources, then chunk, embed and index them in each of ``spaces``."""
    workspace: WorkspaceResource = defs.resources["workspace"]  # type: ignore[index]
    validate_tenant(tenant)
    if source is not None:
        if not source.is_dir():
            raise ConfigError(f"source folder {source} for tenant {tenant!r} does not exist; create it first")
        workspace.registry().add_tenant(tenant, source)
    register_partitions(instance, [tenant], workspace.spaces())
    docs_run = _execute(defs, "source_documents_job", instance, tenant)
    source_meta = _metadata(docs_run, "source_documents")
    summaries = []
    for space in spaces:
        run = _execute(defs, "embed_space_job", instance, tenant_space_key(tenant, space.name))
        chunks, embeddings, index = (
            _metadata(run, n) for n in ("document_chunks", "chunk_embeddings", "vector_index")
        )
        summaries.append(
            IngestSummary(
                tenant=tenant,
                space=space.name,
                space_id=space.space_id,
                documents=chunks.get("documents", 0),
                chunks=chunks.get("chunks", 0),
                added=chunks.get("added", 0),
                changed=chunks.get("changed", 0),
                deleted=chunks.get("deleted", 0),
                unchanged=chunks.get("unchanged", 0),
                model_calls=embeddings.get("model_calls", 0),
                cache_hits=embeddings.get("cache_hits", 0),
                index_rows=index.get("rows", 0),
                quarantined=[
                    {"path": q["doc_id"], "reason": q["reason"]}
                    for meta in (source_meta, chunks, embeddings)
                    for q in meta.get("quarantined_documents", [])
                ],
                run_ids=[docs_run.run_id, run.run_id],
            )
        )
    return summaries
