"""`embedops spaces`, `spaces retire`, `backfill`, `cutover` and `rollback`: moving to a new space."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

import click

from embedops.commands.base import Context
from embedops.core.cutover import open_manifest, retire, rollback, who_am_i
from embedops.core.manifest import Manifest, Swap
from embedops.core.migration import tenant_status
from embedops.core.spaces import SpaceSpec
from embedops.errors import AliasError, GateRefusedError


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _manifest(ctx: Context) -> Manifest:
    return open_manifest(ctx.settings.control_url, ctx.workspace.spaces(), ctx.store())


def space_entries(ctx: Context) -> dict[str, Any]:
    """Every declared space with its manifest: identity, recipe, state, aliases, per-tenant backfill."""
    from embedops.pipelines.migration import tenant_sources

    config = ctx.workspace.spaces()
    store = ctx.store()
    manifest = open_manifest(ctx.settings.control_url, config, store)
    migration = ctx.workspace.spaces().migration
    history = manifest.history()
    aliases = sorted({config.alias} | {s.alias for s in history})
    pointers = {a: store.get_alias(a) for a in aliases}
    rows = manifest.spaces()
    tenants = tenant_sources(ctx.workspace, ctx.instance())
    out = []
    for space in config.spaces:
        evaluation = manifest.latest_evaluation(space.space_id)
        out.append(
            {
                "name": space.name,
                "space_id": space.space_id,
                "model": space.model.identity,
                "backend": space.model.backend,
                "dimension": space.dimension,
                "metric": "cosine",
                "normalize": space.normalize,
                "precision": space.precision,
                "preprocessing": space.preprocessing,
                "chunker": asdict(space.chunker),
                "state": rows.get(space.name, {}).get("state"),
                "auto_cutover": rows.get(space.name, {}).get("auto_cutover"),
                "aliases": [a for a, sid in pointers.items() if sid == space.space_id],
                "deletion_policy": migration.deletion_policy,
                "evaluation": evaluation,
                "tenants": [
                    tenant_status(ctx.workspace.tables(), store, t, space, root).to_json()
                    for t, root in tenants.items()
                ],
            }
        )
    return {
        "alias": config.alias,
        "aliases": pointers,
        "tolerance": migration.tolerance,
        "spaces": out,
        "history": [s.to_json() for s in history],
        "first_pointing": {a: _json_or_none(manifest.first_pointing(a)) for a in aliases},
    }


def _json_or_none(swap: Swap | None) -> dict[str, Any] | None:
    return None if swap is None else swap.to_json()


def _print_space(entry: dict[str, Any]) -> None:
    arrow = f"  <- alias {', '.join(entry['aliases'])}" if entry["aliases"] else ""
    c = entry["chunker"]
    click.echo(f"{entry['name']} ({entry['space_id']})  {entry['state']}{arrow}")
    click.echo(
        f"  model {entry['model']} ({entry['backend']}, {entry['precision']}), {entry['dimension']}-d "
        f"{entry['metric']}{', normalized' if entry['normalize'] else ''}"
    )
    click.echo(
        f"  preprocessing v{entry['preprocessing']}, chunker v{c['version']} ({c['max_tokens']} tokens, "
        f"overlap {c['overlap_tokens']}, min {c['min_tokens']}); deletion policy {entry['deletion_policy']}"
    )
    ev = entry["evaluation"]
    if ev:
        click.echo(
            f"  golden {ev['golden']}: recall@10 {ev['recall@10']:.4f}  nDCG@10 {ev['ndcg@10']:.4f}  "
            f"MRR@10 {ev['mrr@10']:.4f}  (exact recall@10 {ev['exact_recall@10']:.4f})"
        )
    for t in entry["tenants"]:
        state = "materialized" if t["materialized"] else "NOT materialized: " + "; ".join(t["problems"])
        click.echo(f"  tenant {t['tenant']}: {t['chunks']} chunks, {t['index_rows']} index rows, {state}")


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as one JSON object.")
@click.pass_context
def spaces(click_ctx: click.Context, as_json: bool) -> None:
    """List every space with its manifest: identity, recipe, state, aliases and per-tenant backfill."""
    if click_ctx.invoked_subcommand is not None:
        return
    data = space_entries(Context())
    if as_json:
        _echo_json(data)
        return
    for entry in data["spaces"]:
        _print_space(entry)
    for alias, first in data["first_pointing"].items():
        if first:
            details = ", ".join(f"{key} {value}" for key, value in sorted(first["gate"].items()))
            click.echo(
                f"alias {alias} first pointed at {first['to_space']} by {first['who']}"
                f"{f' ({details})' if details else ''} at {first['at']}"
            )
    for swap in data["history"][-5:]:
        click.echo(
            f"{swap['at']}  {swap['alias']}: {swap['from_space']} -> {swap['to_space']}  {swap['action']} "
            f"by {swap['who']}{' (FORCED)' if swap['forced'] else ''} [{swap['status']}]"
        )


@spaces.command("retire")
@click.argument("name")
def spaces_retire(name: str) -> None:
    """Retire a space no alias points at; under drop-on-retire its vectors are deleted."""
    ctx = Context()
    config = ctx.workspace.spaces()
    store = ctx.store()
    manifest = open_manifest(ctx.settings.control_url, config, store)
    policy = ctx.workspace.spaces().migration.deletion_policy
    done = retire(store, manifest, config, config.get(name), policy, [])
    click.echo(
        f"retired space {done.space} ({done.space_id}); deletion policy {done.policy}: "
        f"{len(done.tenants_emptied)} collection(s) emptied"
    )


@click.command()
@click.option("--space", "space_name", required=True, help="The space to fill.")
@click.option("--max-tenants", type=click.IntRange(1), help="Stop after launching this many tenant runs.")
@click.option("--json", "as_json", is_flag=True)
def backfill(space_name: str, max_tenants: int | None, as_json: bool) -> None:
    """Materialize SPACE tenant by tenant, hottest first; finished tenants are skipped (resumable)."""
    from embedops.pipelines.backfill import run_backfill

    ctx = Context()
    space = ctx.workspace.spaces().get(space_name)

    def show(step: Any) -> None:
        if not as_json:
            done = {
                "materialized": f"materialized {step.chunks} chunks (run {str(step.run_id)[:8]})",
                "skipped": "already materialized, skipped",
                "failed": f"FAILED: {step.error}",
            }[step.action]
            click.echo(
                f"{step.tenant}: priority {step.priority} ({step.searches} searches, weight {step.weight:g}) - {done}",
                nl=True,
            )
            sys.stdout.flush()

    report = run_backfill(ctx.defs, ctx.instance(), space, on_step=show, max_tenants=max_tenants)
    if as_json:
        _echo_json(report.to_json())
    else:
        ran = sum(s.action == "materialized" for s in report.steps)
        click.echo(
            f"backfill of {space.name}: {ran} tenant(s) materialized, "
            f"{sum(s.action == 'skipped' for s in report.steps)} already done"
        )


def run_cutover(ctx: Context, alias: str, space: SpaceSpec, force: bool) -> dict[str, Any]:
    """Run cutover_job in-process (so the move is a Dagster run) and return the recorded swap."""
    from embedops.pipelines.execution import execute_job, step_failures
    from embedops.pipelines.migration import WHO_TAG

    run_config = {"ops": {"cutover_alias": {"config": {"alias": alias, "space": space.name, "force": force}}}}

    result = execute_job(
        ctx.defs, "cutover_job", ctx.instance(), tags={WHO_TAG: who_am_i()}, run_config=run_config,
        raise_on_error=False,
    )
    if not result.success:
        failures = step_failures(result)
        refusal = next((f.description for f in failures if f.description), None)
        if refusal:
            raise GateRefusedError(refusal)
        raise AliasError("; ".join(f.error for f in failures) or f"cutover run {result.run_id} failed")
    return dict(result.output_for_node("cutover_alias"))


@click.command()
@click.option("--alias", default=None, help="Default: the alias of the space config.")
@click.option("--space", "space_name", required=True)
@click.option("--force", is_flag=True, help="Move even if the gate refuses. Loud, and recorded as forced.")
@click.option("--json", "as_json", is_flag=True)
def cutover(alias: str | None, space_name: str, force: bool, as_json: bool) -> None:
    """Point the alias at SPACE through the gate, in one atomic step, recorded in the manifest."""
    ctx = Context()
    config = ctx.workspace.spaces()
    alias = alias or config.alias
    if force:
        click.echo(
            f"WARNING: --force moves alias {alias!r} to {space_name!r} even if the gate refuses; the "
            f"move is recorded as forced, under {who_am_i()!r}",
            err=True,
        )
    swap = run_cutover(ctx, alias, config.get(space_name), force)
    if as_json:
        _echo_json(swap)
        return
    gate = swap["gate"]
    click.echo(
        f"alias {alias!r}: {swap['from_space'] or '(none)'} -> {swap['to_space']} ({swap['action']}, "
        f"by {swap['who']} at {swap['at']})"
    )
    if "candidate_recall@10" in gate:
        click.echo(
            f"gate: recall@10 {gate['candidate_recall@10']:.4f} vs serving "
            f"{gate.get('serving_recall@10', float('nan')):.4f} (tolerance {gate['tolerance']})"
        )
    if swap["forced"]:
        click.echo(f"FORCED past a refusing gate: {'; '.join(gate.get('reasons', []))}", err=True)


@click.command("rollback")
@click.option("--alias", default=None, help="Default: the alias of the space config.")
@click.option("--force", is_flag=True, help="Roll back onto a space that failed the gate. Recorded as forced.")
@click.option("--json", "as_json", is_flag=True)
def rollback_command(alias: str | None, force: bool, as_json: bool) -> None:
    """Point the alias back at the space it served before, in one atomic step."""
    ctx = Context()
    config = ctx.workspace.spaces()
    alias = alias or config.alias
    swap = rollback(ctx.store(), _manifest(ctx), config, alias, who_am_i(), force=force)
    if as_json:
        _echo_json(swap.to_json())
    else:
        click.echo(
            f"alias {alias!r}: {swap.from_space} -> {swap.to_space} ({swap.action}, by {swap.who} at {swap.at})"
        )
    if swap.forced:
        click.echo(
            f"FORCED onto {swap.to_space!r}, which failed the cutover gate: {'; '.join(swap.gate['reasons'])}",
            err=True,
        )


COMMANDS = [spaces, backfill, cutover, rollback_command]
