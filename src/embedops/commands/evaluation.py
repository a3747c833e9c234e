"""`embedops evaluate` and `embedops adapter fit`, and the migration modes of `embedops search`
(--fuse: reciprocal-rank fusion of two spaces; --adapter: new-model queries against the old index)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from embedops.commands.base import Context, printable
from embedops.core.adapter import Adapter, adapter_path, adapters_into
from embedops.core.cutover import open_manifest
from embedops.core.golden import load_beir, slice_golden
from embedops.core.migration import FusedHit, rrf_fuse
from embedops.core.spaces import SpaceSpec
from embedops.errors import ConfigError, NotMaterializedError

SHOWN = ("recall@10", "ndcg@10", "mrr@10")


def _golden_folder(ctx: Context, golden: Path | None) -> str:
    folder = str(golden) if golden else ctx.workspace.spaces().migration.golden
    if not folder:
        raise ConfigError(
            "no golden set: pass --golden DIR (a BEIR folder) or set 'migration: {golden: DIR}' "
            "in the space config or EMBEDOPS_GOLDEN"
        )
    return folder


@click.command()
@click.option("--space", "space_name", required=True)
@click.option("--golden", type=click.Path(path_type=Path), help="BEIR folder (default: migration.golden).")
@click.option("--split", help="qrels split (default: test, else the only one).")
@click.option("--queries", type=click.IntRange(1), help="Evaluate on a slice: this many judged queries ...")
@click.option("--distractors", default=150, show_default=True, help="... plus this many other documents.")
@click.option("--json", "as_json", is_flag=True)
def evaluate(
    space_name: str, golden: Path | None, split: str | None, queries: int | None, distractors: int, as_json: bool
) -> None:
    """Measure SPACE on a golden set through its index and exactly, beside the serving space."""
    from embedops.pipelines.execution import execute_job
    from embedops.pipelines.partitions import register_partitions

    ctx = Context()
    config = ctx.workspace.spaces()
    config.get(space_name)
    register_partitions(ctx.instance(), [], config)
    op_config = {"golden": _golden_folder(ctx, golden), "split": split, "queries": queries, "distractors": distractors}
    result = execute_job(
        ctx.defs, "golden_set_evaluation_job", ctx.instance(), space_name,
        run_config={"ops": {"golden_set_evaluation": {"config": op_config}}},
    )
    from embedops.assets.metadata import plain

    meta = plain(result.asset_materializations_for_node("golden_set_evaluation")[0].metadata)
    if as_json:
        click.echo(json.dumps({"space": space_name, "run_id": result.run_id, **meta}, indent=2, default=str))
        return
    click.echo(
        f"{space_name} on {meta['golden']} ({meta['queries']} queries, {meta['documents']} documents, "
        f"{meta['chunks']} chunks) in {meta['duration_s']}s"
    )
    click.echo("  index (ANN): " + "  ".join(f"{k} {meta[k]:.4f}" for k in SHOWN))
    click.echo("  exact:       " + "  ".join(f"{k} {meta['exact_' + k]:.4f}" for k in SHOWN))
    click.echo(f"  ANN vs exact top-10 overlap {meta['ann_exact_overlap@10']:.4f}")
    if meta.get("serving_space") and meta["serving_space"] != space_name:
        click.echo(f"  serving {meta['serving_space']}: " + "  ".join(f"{k} {meta['serving_' + k]:.4f}" for k in SHOWN))
        reasons = "; ".join(str(r) for r in meta.get("gate_reasons", []))
        click.echo("  gate: passes" if meta["gate_passed"] else f"  gate: refuses ({reasons})")


@click.group()
def adapter() -> None:
    """Drift-Adapter bridge: new-model queries mapped into the old space while a backfill runs."""


@adapter.command("fit")
@click.option("--space", "space_name", required=True, help="The new space (queries are embedded in it).")
@click.option("--from", "old_name", help="The old space whose index is searched (default: the serving one).")
@click.option("--golden", type=click.Path(path_type=Path), help="BEIR folder to measure it on.")
@click.option("--queries", type=click.IntRange(1), help="Measure on a slice of this many judged queries.")
@click.option("--sample", default=2000, show_default=True, help="Paired chunks to fit on.")
@click.option("--method", type=click.Choice(["procrustes", "least-squares"]), help="Default: by dimensions.")
@click.option("--json", "as_json", is_flag=True)
def adapter_fit(
    space_name: str,
    old_name: str | None,
    golden: Path | None,
    queries: int | None,
    sample: int,
    method: str | None,
    as_json: bool,
) -> None:
    """Fit and measure the adapter from SPACE into the old space; saved under EMBEDOPS_DATA_URL/adapters."""
    from embedops.core.evaluation import fit_and_evaluate_adapter
    from embedops.core.search import serving_space
    from embedops.pipelines.migration import customer_tenants

    ctx = Context()
    config = ctx.workspace.spaces()
    store = ctx.store()
    new = config.get(space_name)
    old = config.get(old_name) if old_name else serving_space(store, config)
    gold = load_beir(_golden_folder(ctx, golden))
    if queries:
        gold = slice_golden(gold, queries)
    tables = ctx.workspace.tables()
    texts: list[str] = []
    for tenant in customer_tenants(ctx.workspace, ctx.instance()):
        chunks = tables.read("document_chunks", (tenant, old.name))
        texts += chunks.column("text").to_pylist() if chunks is not None else []
    embedder = ctx.defs.resources["embedder"]  # type: ignore[index]
    fitted = fit_and_evaluate_adapter(
        gold, new, old, embedder.for_space, ctx.workspace.cache(), store, tables, texts, sample, method
    )
    path = fitted.save(adapter_path(ctx.settings.data_root, new.name, old.name))
    r = fitted.report
    if as_json:
        click.echo(json.dumps({**fitted.meta(), "path": str(path)}, indent=2, default=str))
        return
    click.echo(f"adapter {new.name} -> {old.name}: {fitted.method} on {r['samples']} paired chunks, saved to {path}")
    click.echo(
        f"  recall@10 on {r['golden']}: new space {r['new_recall@10']:.4f}, old space {r['old_recall@10']:.4f}, "
        f"new queries via adapter into old index {r['adapter_recall@10']:.4f}"
    )
    click.echo(
        f"  recovered {r['recovered_fraction']:.1%} of the new space's recall; added latency "
        f"{r['added_latency_us']:.1f} us per query"
    )


def adapter_search(
    ctx: Context, serving: SpaceSpec, space_name: str | None, tenant: str, query: str, k: int
) -> tuple[Adapter, list[Any]]:
    """Embed the query in the new space, map it into the serving space, search the serving index."""
    from embedops.core.embedder import SpaceEmbedder

    config = ctx.workspace.spaces()
    data_root = ctx.settings.data_root
    if not space_name:
        found = adapters_into(data_root, serving.name)
        if len(found) != 1:
            raise NotMaterializedError(
                f"{'no adapter' if not found else 'several adapters'} into serving space {serving.name!r}; "
                f"fit one with `embedops adapter fit --space NEW` or name it with --space NEW"
            )
        space_name = found[0]
    bridge = Adapter.load(adapter_path(data_root, space_name, serving.name))
    if bridge.target_id != serving.space_id:
        raise NotMaterializedError(
            f"adapter {space_name} -> {serving.name} maps into space {bridge.target_id}, not the serving "
            f"{serving.name!r} ({serving.space_id}); fit it again"
        )
    vector = SpaceEmbedder(config.get(bridge.source)).encode([query])
    hits = ctx.store().search(tenant, serving.space_id, bridge.apply(vector)[0], k, query_space_id=serving.space_id)
    return bridge, hits


def fused_search(
    ctx: Context, serving: SpaceSpec, space_name: str | None, tenant: str, query: str, k: int
) -> tuple[list[SpaceSpec], list[FusedHit]]:
    """Search the serving space and the candidate(s) separately, each in its own space; fuse by rank."""
    from embedops.core.embedder import SpaceEmbedder
    from embedops.core.search import search_tenant

    config = ctx.workspace.spaces()
    store = ctx.store()
    if space_name:
        others = [config.get(space_name)]
    else:
        manifest = open_manifest(ctx.settings.control_url, config, store)
        others = [
            s
            for s in config.spaces
            if manifest.state(s.name) in ("building", "validated")
            and s.space_id != serving.space_id
            and store.count(tenant, s.space_id) > 0
        ]
    chosen = [serving] + [s for s in others if s.space_id != serving.space_id]
    if len(chosen) < 2:
        raise NotMaterializedError(
            f"--fuse needs a second space with an index for tenant {tenant!r}; "
            "name one with --space or backfill a candidate first"
        )
    rankings = {s.name: search_tenant(store, s, SpaceEmbedder(s), tenant, query, k=k) for s in chosen}
    return chosen, rrf_fuse(rankings, k)


def fused_json(hit: FusedHit) -> dict[str, Any]:
    h = hit.hit
    return {
        "chunk_id": h.chunk_id,
        "doc_id": h.doc_id,
        "rrf_score": round(hit.score, 6),
        "ranks": hit.ranks,
        "text": h.text,
        "provenance": h.provenance,
    }


COMMANDS = [evaluate, adapter]


def migration_search(
    ctx: Context, query: str, tenant: str, k: int, space_name: str | None, fuse: bool, as_json: bool
) -> None:
    """`search --fuse` and `search --adapter`: print the results of either migration mode."""
    from embedops.core.search import serving_space

    serving = serving_space(ctx.store(), ctx.workspace.spaces())
    ctx.workspace.registry().log_search(tenant, serving.name)
    if fuse:
        chosen, fused = fused_search(ctx, serving, space_name, tenant, query, k)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "tenant": tenant,
                        "fused": [s.name for s in chosen],
                        "method": "rrf",
                        "hits": [fused_json(h) for h in fused],
                    },
                    indent=2,
                    default=str,
                )
            )
            return
        click.echo(
            f"{len(fused)} results for {query!r} in {tenant}, fused by rank from {' + '.join(s.name for s in chosen)}"
        )
        for rank, hit in enumerate(fused, 1):
            ranks = ", ".join(f"{name} #{r}" for name, r in hit.ranks.items())
            click.echo(f"{rank:>2}. rrf {hit.score:.4f}  {printable(hit.hit.doc_id)}  ({ranks})")
            click.echo(f"    {' '.join(hit.hit.text.split())[:160]}")
        return
    bridge, hits = adapter_search(ctx, serving, space_name, tenant, query, k)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "tenant": tenant,
                    "space": serving.name,
                    "space_id": serving.space_id,
                    "adapter": {"from": bridge.source, "to": bridge.target, "method": bridge.method},
                    "hits": [
                        {
                            "chunk_id": h.chunk_id,
                            "doc_id": h.doc_id,
                            "score": round(h.score, 6),
                            "text": h.text,
                            "provenance": h.provenance,
                        }
                        for h in hits
                    ],
                },
                indent=2,
                default=str,
            )
        )
        return
    click.echo(
        f"{len(hits)} results for {query!r} in {tenant} / {serving.name}, query embedded by "
        f"{bridge.source} and mapped by the adapter ({bridge.method})"
    )
    for rank, hit in enumerate(hits, 1):
        click.echo(f"{rank:>2}. {hit.score:.4f}  {printable(hit.doc_id)}  {' '.join(hit.text.split())[:140]}")
