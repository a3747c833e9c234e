"""`embedops check`: every asset check on every materialized partition, through Dagster."""

from __future__ import annotations

import json
import sys

import click

from embedops.commands.base import Context, printable


@click.command()
@click.option("--tenant", help="Only this tenant (default: every tenant with something materialized).")
@click.option("--space", "space_name", help="Only this space (default: every declared space).")
@click.option("--check", "names", multiple=True, help="Only this check (repeatable), e.g. --check reconciliation.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every result.")
def check(tenant: str | None, space_name: str | None, names: tuple[str, ...], as_json: bool) -> None:
    """Run the index checks; exit 1 when a check fails at ERROR severity, else 0.

    Each run is recorded in Dagster (DAGSTER_HOME), so the UI shows every result per partition.
    """
    from embedops.pipelines.check_runs import run_checks

    ctx = Context()
    reports = run_checks(ctx.defs, ctx.instance(), tenant, space_name, list(names) or None)
    errors = [r for r in reports if r.is_error]
    warnings = [r for r in reports if not r.passed and not r.is_error]
    if as_json:
        body = {"passed": not errors, "errors": len(errors), "warnings": len(warnings),
                "results": [r.to_json() for r in reports]}
        click.echo(json.dumps(body, indent=2, default=str))
    else:
        for r in reports:
            where = f"{r.tenant} / {r.space}" if r.space else r.tenant
            status = "PASS " if r.passed else f"FAIL {r.severity}"
            click.echo(f"{status:<10} {r.check:<26} {where}: {r.description}")
            if not r.passed and r.ids:
                shown = ", ".join(printable(i) for i in r.ids[:10])
                click.echo(f"{'':<10} ids: {shown}{f' ... ({len(r.ids)} listed)' if len(r.ids) > 10 else ''}")
            for stale in (r.metadata.get("stale") or [])[:10]:
                click.echo(f"{'':<10} {printable(stale['doc_id'])} ({stale['policy']}): {printable(stale['reason'])}")
        click.echo(f"{len(reports)} check result(s): {len(reports) - len(errors) - len(warnings)} passed, "
                   f"{len(errors)} failed at ERROR, {len(warnings)} at WARN")
    sys.exit(1 if errors else 0)
