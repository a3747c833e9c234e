"""The `embedops` command: ingest, search, export and a demo, each through the real pipeline."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from embedops.commands.base import Context, EmbedopsGroup, printable
from embedops.core.memory import bound_heap


@click.group(cls=EmbedopsGroup)
def main() -> None:
    """Keep a vector index as a materialized view of its source documents."""
    bound_heap()


@main.command()
@click.option("--tenant", required=True, help="Tenant name (lower-case letters, digits, '-', '_').")
@click.option("--source", help="The tenant's sources: a folder, or an object-store prefix (s3://bucket/docs/acme/).")
@click.option("--space", "space_name", help="Only this space (default: every declared space).")
@click.option("--verify", is_flag=True, help="Read every file, also those whose size and modification time are "
              "unchanged (finds an edit that kept both).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (a list with several spaces).")
def ingest(tenant: str, source: str | None, space_name: str | None, verify: bool, as_json: bool) -> None:
    """Read, chunk, embed and index a tenant's documents through Dagster."""
    from embedops.pipelines.runs import active_spaces_of, run_ingest

    ctx = Context()
    config = ctx.workspace.spaces()
    spaces = [config.get(space_name)] if space_name else active_spaces_of(ctx.defs)
    summaries = run_ingest(ctx.defs, ctx.instance(), tenant, spaces, source=source, verify=verify)
    if as_json:
        out = [s.to_json() for s in summaries]
        click.echo(json.dumps(out[0] if len(out) == 1 else out, indent=2, default=str))
        return
    for s in summaries:
        click.echo(
            f"{s.tenant} / {s.space}: {s.documents} documents, {s.chunks} chunks "
            f"(added {s.added}, changed {s.changed}, deleted {s.deleted}, unchanged {s.unchanged}); "
            f"{s.model_calls} model calls, {s.cache_hits} cache hits; {s.index_rows} index rows; "
            f"{s.bodies_read} source files read"
        )
        for q in s.quarantined:
            click.echo(f"  quarantined {printable(q['path'])}: {printable(q['reason'])}")


def _hit_json(hit: Any) -> dict[str, Any]:
    return {"chunk_id": hit.chunk_id, "doc_id": hit.doc_id, "score": round(hit.score, 6), "text": hit.text,
            "provenance": hit.provenance}


@main.command()
@click.argument("query")
@click.option("--tenant", required=True)
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--exact", is_flag=True, help="Brute-force cosine over the same vectors (the baseline).")
@click.option("--space", "space_name", help="Search this space instead of the alias's.")
@click.option("--fuse", is_flag=True, help="Serving space and candidate(s) searched apart, fused by rank (RRF).")
@click.option("--adapter", "use_adapter", is_flag=True, help="New-model query mapped into the serving index.")
@click.option("--json", "as_json", is_flag=True)
def search(query: str, tenant: str, k: int, exact: bool, space_name: str | None, fuse: bool, use_adapter: bool,
           as_json: bool) -> None:
    """Top-k chunks of a tenant for QUERY, with score and provenance."""
    from embedops.core.embedder import SpaceEmbedder
    from embedops.core.search import search_tenant, serving_space

    ctx = Context()
    if fuse or use_adapter:
        from embedops.commands.evaluation import migration_search

        return migration_search(ctx, query, tenant, k, space_name, fuse, as_json)
    store = ctx.store()
    space = serving_space(store, ctx.workspace.spaces(), space_name)
    hits = search_tenant(store, space, SpaceEmbedder(space), tenant, query, k=k, exact=exact)
    ctx.workspace.registry().log_search(tenant, space.name)
    if as_json:
        click.echo(json.dumps({"tenant": tenant, "space": space.name, "space_id": space.space_id,
                               "exact": exact, "hits": [_hit_json(h) for h in hits]}, indent=2, default=str))
        return
    click.echo(f"{len(hits)} results for {query!r} in {tenant} / {space.name} ({space.space_id})")
    for rank, hit in enumerate(hits, 1):
        p = hit.provenance
        click.echo(f"{rank:>2}. {hit.score:.4f}  {printable(hit.doc_id)} #{p.get('seq')}  chunk {hit.chunk_id[:12]}")
        click.echo(f"    source sha256 {str(p.get('source_checksum'))[:12]}  model {p.get('model')}  "
                   f"embedded {p.get('embedded_at')}")
        snippet = printable(" ".join(hit.text.split()))
        click.echo(f"    {snippet[:160]}{'...' if len(snippet) > 160 else ''}")


@main.command()
@click.option("--tenant", required=True)
@click.option("--space", "space_name", help="Default: the space the alias serves.")
@click.option("--with-vectors", is_flag=True)
@click.option("--output", type=click.Path(path_type=Path), help="Write here instead of stdout.")
def export(tenant: str, space_name: str | None, with_vectors: bool, output: Path | None) -> None:
    """Write the tenant's index rows as JSON lines: the audit and backup view of the index."""
    from embedops.core.search import serving_space
    from embedops.core.tenants import validate_tenant

    ctx = Context()
    store = ctx.store()
    space = serving_space(store, ctx.workspace.spaces(), space_name)
    table = store.export(validate_tenant(tenant), space.space_id, with_vectors=with_vectors)
    stream = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for row in table.to_pylist():
            stream.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    finally:
        if output:
            stream.close()


@main.command()
def demo() -> None:
    """Index the bundled two-tenant corpus through Dagster and search it."""
    from embedops.core.embedder import SpaceEmbedder
    from embedops.core.search import search_tenant, serving_space
    from embedops.demo import DEMO_QUERIES, DEMO_ROOT, DEMO_TENANTS
    from embedops.pipelines.runs import run_ingest

    ctx = Context()
    click.echo(f"EMBEDOPS_HOME={ctx.settings.home}  DAGSTER_HOME={os.environ['DAGSTER_HOME']}")
    config = ctx.workspace.spaces()
    for tenant in DEMO_TENANTS:
        for s in run_ingest(ctx.defs, ctx.instance(), tenant, [config.serving_space], DEMO_ROOT / tenant):
            click.echo(f"ingested {tenant} / {s.space}: {s.documents} documents, {s.chunks} chunks, "
                       f"{s.model_calls} model calls, {s.cache_hits} cache hits")
    store = ctx.store()
    space = serving_space(store, config)
    for tenant in DEMO_TENANTS:
        query = DEMO_QUERIES[tenant]
        click.echo(f"\n{tenant}: {query}")
        for hit in search_tenant(store, space, SpaceEmbedder(space), tenant, query, k=3):
            click.echo(f"  {hit.score:.3f}  {printable(hit.doc_id)} #{hit.provenance['seq']}  [{space.name} "
                       f"{space.space_id}, sha256 {hit.provenance['source_checksum'][:12]}, "
                       f"embedded {hit.provenance['embedded_at']:%Y-%m-%d %H:%M:%S}]")
            click.echo(f"         {' '.join(hit.text.split())[:120]}")
    click.echo(f"\nRuns are in Dagster ({os.environ['DAGSTER_HOME']}); to look at them in the Dagster UI, from the "
               f"repository: EMBEDOPS_HOME={ctx.settings.home} ./dev ui")


from embedops.commands import evaluation as _evaluation_commands  # noqa: E402
from embedops.commands import migration as _migration_commands  # noqa: E402

for _command in _migration_commands.COMMANDS + _evaluation_commands.COMMANDS:
    main.add_command(_command)

from embedops.commands.check import check  # noqa: E402
from embedops.commands.repair import repair  # noqa: E402
from embedops.commands.sources import sources  # noqa: E402

main.add_command(check)
main.add_command(repair)
main.add_command(sources)

if __name__ == "__main__":
    main()
