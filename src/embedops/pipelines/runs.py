"""Launching the pipeline for a tenant through Dagster, and reading back what each run did.

The CLI and the demo call these; every run lands in the Dagster instance (DAGSTER_HOME), so it is
visible in the UI like any other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from embedops.assets.metadata import plain
from embedops.core.spaces import SpaceSpec
from embedops.core.tenants import validate_tenant
from embedops.errors import ConfigError, RunFailedError
from embedops.pipelines.execution import execute_job
from embedops.pipelines.in_flight import embeds_next
from embedops.pipelines.partitions import register_partitions, tenant_space_key
from embedops.resources import WorkspaceResource


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
    index_upserted: int = 0
    index_deleted: int = 0
    stale_rows: int = 0
    quarantined: list[dict[str, str]] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(node)
    if not events:
        return {}
    return plain(events[-1].metadata)


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
    # the embed runs follow in this process: dual_write_sensor leaves these spaces to them
    docs_run = execute_job(defs, "source_documents_job", instance, tenant, tags=embeds_next([s.name for s in spaces]))
    source_meta = _metadata(docs_run, "source_documents")
    summaries = []
    failed: list[RunFailedError] = []
    for space in spaces:  # one space failing does not stop the others; the call fails after all ran
        try:
            run = execute_job(defs, "embed_space_job", instance, tenant_space_key(tenant, space.name))
        except RunFailedError as exc:
            failed.append(exc)
            continue
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
                index_upserted=index.get("upserted", 0),
                index_deleted=index.get("deleted", 0),
                stale_rows=embeddings.get("stale_rows", 0),
                quarantined=[
                    {"path": q["doc_id"], "reason": q["reason"]}
                    for meta in (source_meta, chunks, embeddings)
                    for q in meta.get("quarantined_documents", [])
                ],
                run_ids=[docs_run.run_id, run.run_id],
            )
        )
    if failed:
        raise RunFailedError(
            "\n".join(str(e) for e in failed), failed[0].run_id, [f for e in failed for f in e.failures]
        )
    return summaries
