"""``python -m bench [--quick] [--only P1,P3] [--gpu] [--out bench/out] [--data DIR] [--publish]``.

``python -m bench render bench/out/report.json [--publish]`` writes the Markdown again from the JSON.

Families: P1 (cold ingest vs the model), P2 (unchanged re-run), P3 (edits against LangChain and
LlamaIndex, with variants and real revisions), P5 (P2/P3 at 1k and 5k documents against the peers), SCALE
(today's design against the previous one at 100k and 1M synthetic chunks: no-op, 0.1% edit, memory, state; sizes
from ``--scale-chunks``), P6 (the synthetic ~100k-chunk corpus: memory, and the largest scaling point), P4 (search),
RAY (in process against a local Ray cluster of 1 and of 2 one-CPU nodes, static model and MiniLM, and the pipeline's
own work per chunk; ``--gpu`` runs it on this machine's GPUs, one model replica per GPU);
CDC (a PostgreSQL table's change stream, 2 changes/s for 5 minutes: freshness p50/p99) runs only with ``--only CDC``.
``--publish`` with ``--only`` replaces only the selected families' sections of docs/benchmarks.md. The report goes to
``OUT/report.json`` and ``OUT/report.md``; ``--publish`` also copies the Markdown to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FAMILIES = ("P1", "P2", "P3", "P5", "SCALE", "P6", "P4", "RAY")
# run only when named with --only: CDC streams changes into a PostgreSQL table for 5 minutes (bench/cdc.py)
ON_REQUEST = ("CDC",)
REPO = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny slices (< 2 minutes): the smoke mode")
    parser.add_argument("--only", default="", help=f"comma-separated families of {','.join(FAMILIES + ON_REQUEST)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="report folder")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default: EMBEDOPS_SHARED_DATA "
                        "or ../shared/data)")
    parser.add_argument("--no-peers", action="store_true", help="skip LangChain and LlamaIndex")
    parser.add_argument("--publish", action="store_true", help="also write the Markdown to docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--gpu", action="store_true", help="RAY on this machine's GPUs (one model replica per GPU)")
    parser.add_argument("--scale-chunks", default="", help="SCALE sizes in chunks, comma-separated (default "
                        "100000,1000000; 10000,20000 with --quick)")
    return parser.parse_args(argv)


def selected(only: str) -> set[str]:
    if not only:
        return set(FAMILIES)
    chosen = {f.strip().upper() for f in only.split(",") if f.strip()}
    unknown = chosen - set(FAMILIES) - set(ON_REQUEST)
    if unknown:
        raise SystemExit(f"unknown families {sorted(unknown)}; choose from {','.join(FAMILIES + ON_REQUEST)}")
    return chosen


def run(argv: list[str] | None = None) -> dict:
    """Run the selected families and write the report; returns the results."""
    args = parse(argv)
    families = selected(args.only)
    from bench import edits, findings, ingest, memory, report, search, system
    from bench.context import Context
    from bench.data import data_root
    from bench.peers import available

    tmp = Path(tempfile.mkdtemp(prefix="embedops-bench-"))
    ctx = Context(data=data_root(args.data), tmp=tmp, quick=args.quick)
    if args.scale_chunks:
        ctx.sizes["scale_chunks"] = [int(x) for x in args.scale_chunks.split(",") if x.strip()]
    peers_on = not args.no_peers and all(available().values())
    started = time.perf_counter()
    results: dict = {"meta": {"started": datetime.now(UTC).isoformat(timespec="seconds"), "quick": args.quick,
                              "families": sorted(families), "sizes": ctx.sizes, "machine": system.machine(),
                              "load_start": system.load_average(), "versions": system.versions(),
                              "peers": available(), "code": system.code_version(REPO),
                              "command": "python -m bench " + " ".join(argv or sys.argv[1:])},
                     "errors": {}}

    def attempt(name: str, fn):  # type: ignore[no-untyped-def]
        results["meta"].setdefault("load_by_family", {})[name] = system.load_average()
        try:
            return fn()
        except Exception as exc:  # one family failing still leaves a report of the others
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            ctx.log(f"{name} failed:\n{traceback.format_exc()}")
            return None

    try:
        p1_state = None
        if families & {"P1", "P2", "P3"}:
            p1_state = attempt("P1/P2", lambda: ingest.run(ctx))
            if p1_state:
                results["p1"], results["p2"] = p1_state[0], p1_state[1]
        if "P3" in families and peers_on and p1_state:
            p3: dict = {"setup": P3_SETUP}
            p3["main"] = attempt("P3", lambda: edits.run_main(ctx, p1_state[2], p1_state[3], *p1_state[:2]))
            p3["variants"] = attempt("P3 variants", lambda: edits.run_variants(ctx)) or []
            p3["revisions"] = attempt("P3 revisions", lambda: edits.run_revisions(ctx))
            p3["lancedb_probe"] = attempt("P3 LanceDB probe", _probe)
            results["p3"] = p3
        elif "P3" in families:
            results["p3"] = {"skipped": "LangChain / LlamaIndex not installed (pip install -e '.[bench]')"}
        scaling: list[dict] = []
        if "P5" in families:
            scaling += attempt("P5", lambda: edits.run_scaling(ctx) if peers_on else _no_peers(ctx, edits)) or []
        if "P6" in families:
            synthetic = attempt("P6", lambda: edits.run_synthetic(ctx))
            scaling += [synthetic] if synthetic else []
        if scaling:
            results["scaling"] = scaling
            results["p6"] = memory.summarize(scaling) if "P6" in families else {}
        if "P4" in families:
            results["p4"] = attempt("P4", lambda: search.run(ctx))
        if "CDC" in families:
            from bench import cdc

            results["cdc"] = attempt("CDC", lambda: cdc.run(ctx))
        if "SCALE" in families:
            from bench import scale

            results["scale"] = attempt("SCALE", lambda: scale.run(ctx))
        if "RAY" in families:
            from bench import ray_scale

            results["ray"] = attempt("RAY", lambda: ray_scale.run(ctx, gpu=args.gpu))
    finally:
        results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
        results["meta"]["load_end"] = system.load_average()
        results["findings"] = findings.findings(results)
        json_path, md_path = report.write(results, args.out)
        ctx.log(f"report: {md_path} and {json_path}")
        if args.publish:
            publish_md(md_path, whole=families == set(FAMILIES))
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return results


P3_SETUP = " ".join("""
Every tool embeds with the same model object (embedops' SpaceEmbedder, batch size 32) wrapped in its own
embeddings interface with a counter of texts sent to the model, and reads the same files. Unless a table says
otherwise the peers split with embedops' own preprocessing and chunker (a LangChain split step, a LlamaIndex
TextSplitter), so all three embed the same chunk texts. Each tool is warmed up on two documents first.
LangChain: `index()` from langchain-core with `InMemoryRecordManager` (langchain-core has no SQL record manager),
`InMemoryVectorStore`, `cleanup="incremental"`, `source_id_key="source"`, `key_encoder="sha256"`, the default
`batch_size=100`; a second `cleanup="full"` pass is shown, since incremental cleanup does not remove deleted
sources. LlamaIndex: `IngestionPipeline` with `SimpleDocumentStore`, `DocstoreStrategy.UPSERTS_AND_DELETE`,
`SimpleVectorStore` and its default in-memory `IngestionCache`; documents built as `Document(text, id_=path)`.
Vector stores: embedops writes LanceDB on disk (plus Parquet tables, an SQLite cache and Dagster runs); the peers
use their in-memory stores, because llama-index-vector-stores-lancedb fails on the first update or deletion (see
the probe below), so no LanceDB store works for both. In-memory stores persist nothing: a fair comparison of
texts sent to the model, a flattering one for the peers' wall time.
""".split())


def _probe() -> dict:
    from bench.peers import lancedb_probe

    return lancedb_probe("static")


def _no_peers(ctx, edits) -> list[dict]:  # type: ignore[no-untyped-def]
    from bench.data import plan_edits, scifact_docs

    out = []
    for n in ctx.sizes["scale_docs"]:
        docs = scifact_docs(ctx.data, n)
        out.append(edits.compare(ctx, f"scifact-{n}", "static", docs, plan_edits(ctx.data, docs), peers=False,
                                 model_only=True))
    return out


def render(path: Path, publish: bool) -> None:
    """Write report.md again from a report.json (after a change to the report's layout)."""
    import json

    from bench import findings, report

    results = json.loads(path.read_text(encoding="utf-8"))
    results["findings"] = findings.findings(results)
    _, md_path = report.write(results, path.parent)
    if publish:
        publish_md(md_path, whole=set(results["meta"].get("families", FAMILIES)) == set(FAMILIES))


def publish_md(md_path: Path, whole: bool) -> None:
    """Copy the report to docs/benchmarks.md; a partial run replaces only its own sections there."""
    from bench.report import splice

    target = REPO / "docs" / "benchmarks.md"
    target.parent.mkdir(exist_ok=True)
    if whole or not target.exists():
        shutil.copyfile(md_path, target)
    else:
        target.write_text(splice(target.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")),
                          encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "render":
        render(Path(args[1]), "--publish" in args)
        return 0
    results = run(argv)
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
