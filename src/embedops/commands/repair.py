"""`embedops repair`: find index rows whose vectors or provenance are wrong (or, with --stale, whose
documents are stale under their policy), re-embed them and write them back."""

from __future__ import annotations

import json
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc

from embedops.commands.base import Context
from embedops.core.delta import in_filter
from embedops.core.fingerprints import cache_key
from embedops.core.monitoring.repair import RepairPlan, find_bad_rows
from embedops.core.spaces import SpaceSpec
from embedops.core.tenants import validate_tenant
from embedops.errors import NotMaterializedError


def _monitoring(ctx: Context) -> Any:
    resources: Any = ctx.defs.resources
    return resources["monitoring"]


def _plan(ctx: Context, tenant: str, space: SpaceSpec, stale: bool) -> tuple[RepairPlan, pa.Table]:
    from embedops.assets.check_support import freshness_outcome
    from embedops.core.stores.base import index_rows

    expected = ctx.workspace.tables().read("chunk_embeddings", (tenant, space.name))
    if expected is None:
        raise NotMaterializedError(f"chunk_embeddings of {tenant}/{space.name} is not materialized; "
                                   f"run `embedops ingest --tenant {tenant} --space {space.name}`")
    store = ctx.store()
    plan = find_bad_rows(index_rows(store, tenant, space, with_vectors=True), expected, space.space_id)
    if stale:
        outcome = freshness_outcome(ctx.workspace, store, _monitoring(ctx), tenant, space, 10**9)
        reasons = {s["doc_id"]: f"stale ({s['policy']}): {s['reason']}" for s in outcome.metadata["stale"]}
        for chunk, doc in zip(expected["chunk_id"].to_pylist(), expected["doc_id"].to_pylist(), strict=True):
            if doc in reasons:
                plan.rewrite.setdefault(chunk, reasons[doc])
    return plan, expected


def _apply(ctx: Context, tenant: str, space: SpaceSpec, plan: RepairPlan, expected: pa.Table) -> dict[str, Any]:
    from embedops.pipelines.runs import run_ingest

    texts = dict(zip(expected["chunk_id"].to_pylist(), expected["text"].to_pylist(), strict=True))
    evicted = ctx.workspace.cache().evict([cache_key(space.model.identity, texts[c]) for c in plan.rewrite])
    if plan.rewrite:  # an ingest embeds only chunks without a current row: take the bad ones out of the table
        ctx.workspace.tables().delete("chunk_embeddings", (tenant, space.name), in_filter("chunk_id", plan.rewrite))
    store = ctx.store()
    deleted = store.delete(tenant, space.space_id, sorted(plan.delete))
    # the index was changed here, so the space's steps run even if nothing else changed: the sync restores it
    summary = run_ingest(ctx.defs, ctx.instance(), tenant, [space], skip_current=False)[0]
    fresh = ctx.workspace.tables().read("chunk_embeddings", (tenant, space.name))
    rows = fresh.filter(pc.is_in(fresh["chunk_id"], value_set=pa.array(sorted(plan.rewrite), pa.string())))
    rewritten = store.upsert(tenant, space.space_id, space.name, rows) if rows.num_rows else 0
    # the previous neighbours were measured on the broken index: measure the repaired one afresh
    _monitoring(ctx).state().forget_neighbour_results(tenant, space.space_id)
    return {"evicted": evicted, "deleted": deleted, "model_calls": summary.model_calls, "rewritten": rewritten,
            "index_rows": store.count(tenant, space.space_id), "run_ids": summary.run_ids}


@click.command()
@click.option("--tenant", required=True)
@click.option("--space", "space_name", help="Only this space (default: every space the tenant has an index in).")
@click.option("--stale", is_flag=True, help="Also re-embed documents stale under their staleness policy.")
@click.option("--dry-run", is_flag=True, help="List what would be repaired and change nothing.")
@click.option("--json", "as_json", is_flag=True)
def repair(tenant: str, space_name: str | None, stale: bool, dry_run: bool, as_json: bool) -> None:
    """Re-embed index rows that differ from the materialized embeddings and delete rows the ledger lacks."""
    ctx = Context()
    validate_tenant(tenant)
    config = ctx.workspace.spaces()
    store = ctx.store()
    spaces = [config.get(space_name)] if space_name else [
        s for s in config.spaces if tenant in store.tenants(s.space_id)
    ]
    if not spaces:
        raise NotMaterializedError(
            f"tenant {tenant!r} has no index in any space; run `embedops ingest --tenant {tenant}`"
        )
    out = []
    for space in spaces:
        plan, expected = _plan(ctx, tenant, space, stale)
        item: dict[str, Any] = {"tenant": tenant, "space": space.name, **plan.to_json()}
        if not dry_run and not plan.empty:
            item["applied"] = _apply(ctx, tenant, space, plan, expected)
        out.append(item)
    if as_json:
        click.echo(json.dumps(out[0] if len(out) == 1 else out, indent=2, default=str))
        return
    for item in out:
        head = f"{item['tenant']} / {item['space']}: {len(item['rewrite'])} row(s) to re-embed, " \
               f"{len(item['delete'])} to delete, {len(item['missing'])} missing"
        click.echo(head + (" (dry run)" if dry_run else ""))
        for chunk, why in sorted({**item["rewrite"], **item["delete"]}.items()):
            click.echo(f"  {chunk}: {why}")
        if "applied" in item:
            a = item["applied"]
            click.echo(f"  re-embedded {a['rewritten']} row(s) with {a['model_calls']} model call(s), deleted "
                       f"{a['deleted']}; the index now holds {a['index_rows']} rows. Verify: embedops check "
                       f"--tenant {tenant} --space {item['space']}")
