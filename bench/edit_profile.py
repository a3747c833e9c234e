"""Where a 0.1% edit's time goes: one tenant built once, then the same edit measured from the same state.

``python -m bench.edit_profile --chunks 100000 --home /work/edit-home [--src SRC] [--runs 2] [--profile]``

The first call builds the tenant (synthetic documents, the static model, a cold ``embedops ingest``) under
``HOME/built`` and keeps it. Every measured edit restores that state into ``HOME/work`` (``cp -a``, so the files keep
their modification times and every path stays the same), changes one sentence in 0.1% of the documents (as SCALE's
edit does) and runs ``embedops ingest --json`` as a new process with the code at ``--src`` first on PYTHONPATH (this
checkout's src/ by default; pass an older tree to measure before and after back to back). Printed per run: the wall
time, Dagster's run times and each step's ``duration_s``, the texts sent to the model, the load average. With
``--profile`` the same process runs under cProfile and the top functions by cumulative time are printed too.
``--warmup`` first runs (unmeasured) an edit of another 0.1% of the documents with the same code, so the measured
edit starts from the state that code leaves after an edit, not from the cold ingest's.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.context import Context
from bench.data import EditPlan, apply_edits, data_root, plan_edits, synthetic_docs, write_corpus
from bench.scale import EDIT_FRACTION, REPO, TENANT, dagster_record, deployment, edit_plan, environment, invoke


def build(root: Path, chunks: int, src: Path) -> dict:
    """The tenant's state after a cold ingest, kept under ``root/built`` (built once)."""
    built = root / "built"
    record = built / "built.json"
    if record.is_file():
        return json.loads(record.read_text())
    home = deployment(built)
    docs = synthetic_docs(data_root(), chunks // 2)
    write_corpus(built / "src", docs)
    cold = invoke(environment(src, home), built / "src", built / "cold")
    out = {"documents": len(docs), "cold": cold}
    record.write_text(json.dumps(out, indent=1))
    return out


def restore(root: Path) -> Path:
    """A fresh copy of the built state at ``root/work`` (same paths every time)."""
    work = root / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    for part in ("home", "src"):
        subprocess.run(["cp", "-a", str(root / "built" / part), str(work / part)], check=True)
    return work


def edit_once(root: Path, chunks: int, src: Path, label: str, profile: bool, warmup: bool) -> dict:
    """Restore, edit 0.1% of the documents, run one ``embedops ingest`` and say where its time went."""
    work = restore(root)
    ctx = Context(data=data_root(), tmp=root, quick=False, quiet=True)
    docs = synthetic_docs(data_root(), chunks // 2)
    plan = edit_plan(ctx, docs)
    env = environment(src, work / "home")
    if warmup:  # an earlier edit of other documents, by the same code: the state a run of this code leaves
        earlier = plan_edits(ctx.data, docs, EDIT_FRACTION, seed=23)
        apply_edits(work / "src", EditPlan(edits={d: e for d, e in earlier.edits.items() if d not in plan.edits}))
        invoke(env, work / "src", root / f"{label}-warmup")
    apply_edits(work / "src", plan)
    if not profile:
        return {"label": label, "edited": len(plan.edits), **invoke(env, work / "src", root / label)}
    stats = root / f"{label}.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "embedops.cli", "ingest", "--tenant", TENANT,
           "--source", str(work / "src"), "--json"]
    load = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = round(time.perf_counter() - started, 3)
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    out = {"label": label, "edited": len(plan.edits), "wall_seconds": wall, "load": load,
           "model_calls": summary.get("model_calls"),
           **dagster_record(env, work / "home" / "dagster", summary.get("run_ids", []))}
    out["top"] = top_functions(stats)
    return out


def top_functions(path: Path, limit: int = 45) -> list[str]:
    """The functions with the most cumulative time, as ``seconds  file:line(name)``."""
    stats = pstats.Stats(str(path))
    rows = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)  # type: ignore[attr-defined]
    return [f"{ct:8.3f}  {Path(f).name}:{line}({name})" for (f, line, name), (_, _, _, ct, _) in rows[:limit]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--src", type=Path, default=REPO / "src")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--label", default="edit")
    parser.add_argument("--warmup", action="store_true", help="first an unmeasured edit of other documents")
    args = parser.parse_args()
    args.home.mkdir(parents=True, exist_ok=True)
    built = build(args.home, args.chunks, args.src.resolve())
    print(json.dumps({"built": {"documents": built["documents"], "chunks": built["cold"].get("chunks"),
                                "cold_seconds": built["cold"]["wall_seconds"]}}), flush=True)
    for i in range(args.runs):
        result = edit_once(args.home, args.chunks, args.src.resolve(), f"{args.label}{i}", args.profile,
                            args.warmup)
        top = result.pop("top", None)
        print(json.dumps(result), flush=True)
        if top:
            print("\n".join(top), flush=True)


if __name__ == "__main__":
    main()
