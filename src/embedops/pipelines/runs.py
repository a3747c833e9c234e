"""Launching the pipeline for a tenant through Dagster, and reading back what each run did.

The CLI and the demo call these; every run lands in the Dagster instance (DAGSTER_HOME), so it is
visible in the UI like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from embedops.assets.metadata import plain, recorded, still_current
from embedops.core.sources import document_path, source_location
from embedops.core.spaces import SpaceSpec
from embedops.core.tenants import validate_tenant
from embedops.errors import NotMaterializedError, RunFailedError
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
    bodies_read: int = 0  # source files opened; 0 when every file's size and time vouched for it
    sources_unchanged: bool = False  # no source document changed: no new source_documents table
    space_unchanged: bool = False  # every step of the space was current: no embed run (counts as last recorded)
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
    source: str | Path | None = None,
    verify: bool = False,
    skip_current: bool = True,
) -> list[IngestSummary]:
    """Read the tenant's sources, then chunk, embed and index them in each of ``spaces``.

    Files whose size and modification time are unchanged are not read; ``verify`` reads every file
    (it finds an edit that kept both). When no source changed, a space whose steps are all still current
    gets no embed run, unless ``skip_current`` is false (a caller that changed the index itself).
    """
    workspace: WorkspaceResource = defs.resources["workspace"]  # type: ignore[index]
    validate_tenant(tenant)
    if source is not None:
        workspace.registry().add_tenant(tenant, source_location(tenant, source))
    return _run_pipeline(defs, instance, tenant, spaces, {"verify": verify}, skip_current)


def apply_changes(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tenant: str,
    changed: Iterable[str],
    deleted: Iterable[str],
    spaces: list[SpaceSpec] | None = None,
    committed_at: Mapping[str, datetime] | None = None,
    position: str | None = None,
) -> list[IngestSummary]:
    """Apply a change feed's changes to an ingested tenant: read only the ``changed`` documents (ids
    relative to its source folder; the folder is not listed), drop the ``deleted`` ones, then chunk, embed
    and index in each of ``spaces`` (default: every active space), the other documents carried over.
    ``committed_at`` (a table's feed) is when each change was committed at the source: its modified_at;
    ``position`` is where the feed's change set ends (a table's LSN), recorded in the run's metadata."""
    validate_tenant(tenant)
    workspace: WorkspaceResource = defs.resources["workspace"]  # type: ignore[index]
    if workspace.tables().dataset("source_documents", (tenant,)) is None:
        raise NotMaterializedError(
            f"tenant {tenant!r} has never been ingested, so there is nothing to apply changes to; "
            f"ingest it first with `embedops ingest --tenant {tenant} --source DIR`"
        )
    changes: dict[str, Any] = {"changed": sorted(set(changed)), "deleted": sorted(set(deleted))}
    if committed_at:
        changes["committed_at"] = {d: at.isoformat() for d, at in committed_at.items() if d in changes["changed"]}
    if position:
        changes["position"] = position
    root = workspace.registry().source_dir(tenant, workspace.settings.sources_root)
    for doc_id in changes["changed"] + changes["deleted"]:
        document_path(root, doc_id)  # a name that could leave the folder is refused before any run
    return _run_pipeline(defs, instance, tenant, active_spaces_of(defs) if spaces is None else spaces, changes)


def active_spaces_of(defs: dg.Definitions) -> list[SpaceSpec]:
    """Every declared space that is not retired: what an ingest writes to (dual write)."""
    from embedops.core.cutover import active_spaces, open_manifest

    workspace: WorkspaceResource = defs.resources["workspace"]  # type: ignore[index]
    config = workspace.spaces()
    store = defs.resources["vector_store"].open()  # type: ignore[index]
    return active_spaces(config, open_manifest(workspace.settings.control_url, config, store))


def _run_pipeline(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tenant: str,
    spaces: list[SpaceSpec],
    source: dict[str, Any],
    skip_current: bool = True,
) -> list[IngestSummary]:
    """source_documents_job with ``source`` as the asset's config, then embed_space_job in each space."""
    workspace: WorkspaceResource = defs.resources["workspace"]  # type: ignore[index]
    register_partitions(instance, [tenant], workspace.spaces())
    # the embed runs follow in this process: dual_write_sensor leaves these spaces to them
    docs_run = execute_job(
        defs, "source_documents_job", instance, tenant, tags=embeds_next([s.name for s in spaces]),
        run_config={"ops": {"source_documents": {"config": source}}},
    )
    source_meta = _metadata(docs_run, "source_documents")
    summaries = []
    failed: list[RunFailedError] = []
    for space in spaces:  # one space failing does not stop the others; the call fails after all ran
        current = skip_current and source_meta.get("unchanged")
        kept = _current(instance, workspace, tenant, space) if current else None
        if kept is not None:
            summaries.append(_summary(tenant, space, source_meta, *kept, [docs_run.run_id], space_unchanged=True))
            continue
        try:
            run = execute_job(defs, "embed_space_job", instance, tenant_space_key(tenant, space.name))
        except RunFailedError as exc:
            failed.append(exc)
            continue
        chunks, embeddings, index = (
            _metadata(run, n) for n in ("document_chunks", "chunk_embeddings", "vector_index")
        )
        summaries.append(_summary(tenant, space, source_meta, chunks, embeddings, index, [docs_run.run_id, run.run_id]))
    if failed:
        raise RunFailedError(
            "\n".join(str(e) for e in failed), failed[0].run_id, [f for e in failed for f in e.failures]
        )
    return summaries


def _summary(
    tenant: str,
    space: SpaceSpec,
    source_meta: dict[str, Any],
    chunks: dict[str, Any],
    embeddings: dict[str, Any],
    index: dict[str, Any],
    run_ids: list[str],
    space_unchanged: bool = False,
) -> IngestSummary:
    return IngestSummary(
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
        bodies_read=source_meta.get("bodies_read", 0),
        sources_unchanged=bool(source_meta.get("unchanged", False)),
        space_unchanged=space_unchanged,
        quarantined=[
            {"path": q["doc_id"], "reason": q["reason"]}
            for meta in (source_meta, chunks, embeddings)
            for q in meta.get("quarantined_documents", [])
        ],
        run_ids=run_ids,
    )


def _current(
    instance: dg.DagsterInstance, workspace: WorkspaceResource, tenant: str, space: SpaceSpec
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """When the space's chunks, embeddings and index are still what their last runs recorded (the rule each
    step applies to itself: the same recipe, the upstream and own tables at the recorded versions) and no
    document waits for a retry: what those runs recorded, as a run that changed nothing would report it.
    None when anything differs or is unknown. The index's own version is not read here (that needs the
    vector store's client); anything that writes to the index outside a sync also changes chunk_embeddings.
    """
    from embedops.assets.embeddings import has_pending_retries

    key = tenant_space_key(tenant, space.name)
    chunks, embeddings, index = (
        recorded(instance, asset, key) for asset in ("document_chunks", "chunk_embeddings", "vector_index")
    )
    tables = workspace.tables()
    source = tables.latest("source_documents", (tenant,))
    own = {asset: tables.latest(asset, (tenant, space.name)) for asset in ("document_chunks", "chunk_embeddings")}
    if source is None or None in own.values() or has_pending_retries(dict(embeddings)):
        return None
    chunks_version, embeddings_version = (own[a][1] for a in own)  # type: ignore[index]
    if not (
        still_current(chunks, space.config_hash, {"source_version": source[1], "table_version": chunks_version})
        and still_current(
            embeddings, space.config_hash, {"chunks_version": chunks_version, "table_version": embeddings_version}
        )
        and still_current(index, space.config_hash, {"embeddings_version": embeddings_version})
    ):
        return None
    unchanged = {"added": 0, "changed": 0, "deleted": 0, "model_calls": 0, "cache_hits": 0, "upserted": 0}
    return (
        {**plain(chunks), **unchanged, "unchanged": plain(chunks).get("documents", 0)},
        {**plain(embeddings), **unchanged},
        {**plain(index), **unchanged},
    )
