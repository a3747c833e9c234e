import time
from collections.abc import Iterator
from contextlib import closing

import dagster as dg

from embedops.assets.check_support import (
    INDEX_CHECK_SPECS,
    INDEX_KEY,
    INVARIANT_CHECKS,
    invariant_outcomes,
    invariant_results,
    keep_distribution_baseline,
    to_result,
)
from embedops.assets.metadata import carried, numbers, plain, recorded, still_current
from embedops.core.changelog import ChangeLog, consumed_version
from embedops.core.cutover import open_manifest, point_first
from embedops.core.embedder import release_models
from embedops.core.spaces import SpacesConfig
from embedops.errors import NotMaterializedError, UnknownSpaceError
from embedops.pipelines.partitions import tenant_space, tenant_space_partitions
from embedops.resources import VectorStoreResource, WorkspaceResource

# what a run that finds nothing to sync reports again from the materialization it leaves in place
_KEPT = ("rows", "version", "store_version", "space", "space_id", "embeddings_version", "config_hash")
_DESCRIPTION = "The tenant's collection in the space, synced to the embeddings in one commit (deletes included)."
FIRST_SYNC = "vector_index first sync"  # who the manifest records as first pointing the alias


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            INDEX_KEY, deps=["chunk_embeddings"], group_name="index", kinds={"lancedb"}, description=_DESCRIPTION
        )
    ],
    partitions_def=tenant_space_partitions,
    check_specs=INDEX_CHECK_SPECS,
    can_subset=True,
)
def vector_index(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Sync the collection (when selected), then check its invariants: one space, complete provenance."""
    tenant, space = tenant_space(context, workspace)
    selected = set(context.selected_asset_check_keys)
    if INDEX_KEY not in context.selected_asset_keys:
        yield from invariant_results(selected, vector_store.open(), tenant, space)
        return
    with workspace.lease(f"index/{tenant}/{space.name}", context.run.run_id, context.instance):
        synced, scope = _sync_index(context, workspace, vector_store)
    # every row passed when last checked and only these documents' rows changed since: check only them
    started = time.monotonic()
    outcomes = invariant_outcomes(selected, vector_store.open(), tenant, space, documents=scope)
    passed = {o.check for o in outcomes} == set(INVARIANT_CHECKS) and all(o.passed for o in outcomes)
    yield dg.MaterializeResult(metadata={
        **(synced.metadata or {}), "invariants_passed": passed,
        "invariants_checked": "every row" if scope is None else f"the rows of {len(scope)} changed document(s)",
        "invariants_s": round(time.monotonic() - started, 3),
    })
    for outcome in outcomes:
        yield to_result(outcome, INDEX_KEY)


def _sync_index(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, vector_store: VectorStoreResource
) -> tuple[dg.MaterializeResult, set[str] | None]:
    """The sync's materialization, and the documents whose rows it changed when the collection otherwise is
    what the last sync left and passed its invariants then (None: check every row)."""
    started = time.monotonic()
    spaces = workspace.spaces()
    tenant, space = tenant_space(context, workspace)
    rows = workspace.tables().dataset("chunk_embeddings", (tenant, space.name))
    if rows is None:
        raise NotMaterializedError(f"chunk_embeddings for {tenant}/{space.name} is not materialized yet")
    store = vector_store.open()
    before = recorded(context.instance, INDEX_KEY.to_user_string(), str(context.partition_key))
    versions = {"embeddings_version": int(rows.version), "store_version": store.version(tenant, space.space_id)}
    target = store.get_alias(spaces.alias)
    first = space.name == spaces.serving_space.name and target is None  # the alias is pointed on a sync
    checked = plain(before).get("invariants_passed") is True
    if still_current(before, space.config_hash, versions) and not first:
        context.log.info(f"{tenant}/{space.name}: chunk_embeddings unchanged since the last sync; nothing to sync")
        return dg.MaterializeResult(metadata={
            **carried(before, _KEPT), "alias": spaces.alias, "alias_target": _space_name(spaces, target),
            "upserted": 0, "deleted": 0, "documents_added": 0, "documents_changed": 0,
            "documents_deleted": 0, "model_calls": 0, "cache_hits": 0, "unchanged": True,
            "duration_s": round(time.monotonic() - started, 3),
        }), set() if checked else None
    # the documents whose embeddings changed since the version the last sync consumed, when the records tell
    # them all and the collection is still what that sync left
    since = consumed_version(plain(before), space.config_hash, versions["store_version"], "embeddings_version",
                             own_key="store_version")
    only = ChangeLog(workspace.settings.control_url).changed_since(
        workspace.tables().url("chunk_embeddings", (tenant, space.name)), since, int(rows.version)
    )
    if only is None:  # a sync of every row, a first index build among them: the run's largest allocation
        release_models()  # nothing here embeds; a model left loaded by the embedding step goes first
    result = store.sync(tenant, space.space_id, space.name, rows, documents=only)
    if space.name == spaces.serving_space.name and store.get_alias(spaces.alias) is None:  # point_first re-checks
        details = {"run_id": context.run.run_id, "tenant": tenant}
        with closing(open_manifest(workspace.settings.control_url, spaces, store)) as manifest:
            if point_first(store, manifest, spaces, spaces.alias, space, FIRST_SYNC, details) is not None:
                context.log.info(f"alias {spaces.alias!r} now serves space {space.name!r}")
    if keep_distribution_baseline(workspace.settings.control_url, tenant, space, rows):
        context.log.info(f"kept the distribution baseline of {tenant}/{space.name} for the drift checks")
    target = store.get_alias(spaces.alias)
    serving = _space_name(spaces, target)
    partition = str(context.partition_key)
    upstream = {
        **numbers(recorded(context.instance, "document_chunks", partition)),
        **numbers(recorded(context.instance, "chunk_embeddings", partition)),
    }
    documents = {k: int(upstream.get(k, 0)) for k in ("added", "changed", "deleted")}
    took = round(time.monotonic() - started, 3)
    context.log.info(
        f"{tenant}/{space.name}: +{documents['added']} ~{documents['changed']} -{documents['deleted']} documents, "
        f"{result.upserted} rows upserted, {result.deleted} deleted, {result.rows} in all; "
        f"{upstream.get('model_calls', 0)} model calls, {upstream.get('cache_hits', 0)} cache hits; {took} s; "
        f"alias {spaces.alias} -> {serving}"
    )
    return dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "upserted": result.upserted,
            "deleted": result.deleted,
            **{f"documents_{k}": v for k, v in documents.items()},
            "model_calls": int(upstream.get("model_calls", 0)),
            "cache_hits": int(upstream.get("cache_hits", 0)),
            "version": result.version if result.version is not None else -1,
            "unchanged": not (result.upserted or result.deleted),
            "embeddings_version": int(rows.version),
            "compared": "changed documents" if only is not None else "every document",
            **({"documents_compared": len(only)} if only is not None else {}),
            # the collection's version after the sync and its index upkeep (None: the store keeps none)
            "store_version": _or_unknown(store.version(tenant, space.space_id)),
            "config_hash": space.config_hash,
            "space": space.name,
            "space_id": space.space_id,
            "alias": spaces.alias,
            "alias_target": serving,
            "duration_s": took,
        }
    ), (only if checked else None)


def _or_unknown(version: int | None) -> int:
    return -1 if version is None else version


def _space_name(spaces: SpacesConfig, space_id: str | None) -> str:
    """The alias target by name (its id when it is no longer declared)."""
    if space_id is None:
        return "(none)"
    try:
        return spaces.by_id(space_id).name
    except UnknownSpaceError:
        return space_id
