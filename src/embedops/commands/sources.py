"""`embedops sources`: a PostgreSQL table as a tenant's source: declare it, sync it, watch its slot, drop it."""

from __future__ import annotations

import json
from typing import Any

import click

from embedops.commands.base import Context
from embedops.core import cdc
from embedops.core.tenants import validate_tenant
from embedops.errors import ConfigError


@click.group()
def sources() -> None:
    """A tenant's source as a PostgreSQL table, followed through logical replication (change data capture)."""


def _table_source(ctx: Context, tenant: str) -> cdc.TableSource:
    from embedops.pipelines.cdc import table_source_of

    source = table_source_of(ctx.workspace, tenant)
    if source is None:
        raise ConfigError(f"tenant {tenant!r} does not read a table; declare one with "
                          f"`embedops sources add-postgres --tenant {tenant} ...`")
    return source


@sources.command("add-postgres")
@click.option("--tenant", required=True, help="The tenant whose source the table is.")
@click.option("--url-env", required=True, help="The environment variable holding the PostgreSQL URL "
              "(postgresql://user:password@host:port/db); the URL itself is never stored or printed.")
@click.option("--table", required=True, help="The table, optionally schema-qualified (public.articles).")
@click.option("--id-column", default="id", show_default=True, help="The primary-key column naming a row.")
@click.option("--text-columns", required=True, help="Comma-separated columns forming the text, in order "
              "(joined by a blank line: title,body).")
@click.option("--tenant-column", help="A column splitting the table over tenants; the tenant's rows hold "
              "--tenant-value (default: the tenant's name) in it.")
@click.option("--tenant-value", help="This tenant's value in --tenant-column.")
def add_postgres(tenant: str, url_env: str, table: str, id_column: str, text_columns: str,
                 tenant_column: str | None, tenant_value: str | None) -> None:
    """Declare TABLE as the tenant's source (checked now: primary key, replica identity, wal_level)."""
    from embedops.core.sources import source_location

    validate_tenant(tenant)
    source = cdc.TableSource(url_env, table, id_column, tuple(c.strip() for c in text_columns.split(",") if c.strip()),
                             tenant_column, (tenant_value or tenant) if tenant_column else None)
    ctx = Context()
    ctx.workspace.registry().add_tenant(tenant, source_location(tenant, source.location))
    click.echo(f"{tenant}: {source.describe()}, documents {source.name}/<{id_column}>, slot {source.slot}")
    click.echo(f"next: `embedops ingest --tenant {tenant}` creates the slot and loads the table in its snapshot")


@sources.command()
@click.option("--tenant", required=True)
@click.option("--json", "as_json", is_flag=True)
def sync(tenant: str, as_json: bool) -> None:
    """Apply the table's pending changes now and confirm them (what the cdc_sensor's runs do)."""
    from embedops.pipelines.cdc import sync_table_tenant

    ctx = Context()
    summary = sync_table_tenant(ctx.defs, ctx.instance(), validate_tenant(tenant))
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    lag = f"; lag p50 {summary.lag_p50_s} s, p99 {summary.lag_p99_s} s" if summary.lag_p50_s is not None else ""
    click.echo(f"{tenant}: {summary.changed} changed, {summary.deleted} deleted"
               f"{', truncated' if summary.truncated else ''}; confirmed up to {summary.upto_lsn}{lag}")


@sources.command()
@click.option("--tenant", help="Only this tenant (default: every tenant whose source is a table).")
@click.option("--json", "as_json", is_flag=True)
def status(tenant: str | None, as_json: bool) -> None:
    """Each table source's slot: WAL it holds on the source database, and the changes waiting."""
    from embedops.pipelines.cdc import table_tenants

    ctx = Context()
    found = table_tenants(ctx.workspace)
    if tenant is not None:
        found = {tenant: _table_source(ctx, validate_tenant(tenant))}
    out: list[dict[str, Any]] = []
    for name, source in sorted(found.items()):
        lag = cdc.slot_lag(source)
        pending = cdc.pending_changes(source).summary() if lag.exists else None
        out.append({"tenant": name, "table": source.qualified, "slot": lag.slot, "exists": lag.exists,
                    "retained_bytes": lag.retained_bytes, "unconfirmed_bytes": lag.unconfirmed_bytes,
                    "pending": pending})
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for row in out:
        if not row["exists"]:
            click.echo(f"{row['tenant']}: {row['table']}: slot {row['slot']} does not exist "
                       f"(`embedops ingest --tenant {row['tenant']}` creates it)")
            continue
        waiting: dict[str, Any] = row["pending"] or {}
        click.echo(f"{row['tenant']}: {row['table']}: slot {row['slot']} holds {row['retained_bytes']} bytes of WAL, "
                   f"{row['unconfirmed_bytes']} unconfirmed; pending: {waiting.get('changed', 0)} changed, "
                   f"{waiting.get('deleted', 0)} deleted{', truncated' if waiting.get('truncated') else ''}")


@sources.command("drop-slot")
@click.option("--tenant", required=True)
@click.option("--yes", is_flag=True, help="Drop it: changes stop being captured until the next full ingest.")
def drop_slot(tenant: str, yes: bool) -> None:
    """Drop the tenant's replication slot, freeing the WAL it holds on the source database.

    Changes made after this are not captured: the next `embedops ingest --tenant T` creates a new slot and
    loads the table again in its snapshot."""
    ctx = Context()
    source = _table_source(ctx, validate_tenant(tenant))
    if not yes:
        raise ConfigError(f"dropping slot {source.slot} stops capturing the changes of {source.describe()}; "
                          f"run `embedops sources drop-slot --tenant {tenant} --yes` to drop it on purpose")
    dropped = cdc.drop_slot(source)
    click.echo(f"{tenant}: slot {source.slot} " + ("dropped" if dropped else "did not exist"))


COMMANDS = [sources]
