"""SCALE: does a run cost the change, not the corpus? Today's design against the previous one, at growing sizes.

Per size (target chunks; a synthetic document gives about 2) the corpus is generated once and written as files
for each design; every measurement is a fresh process running the command a user runs,
``embedops ingest --tenant T --source DIR --json``, with only EMBEDOPS_HOME set (today's design puts its control
database and data folder under it by default, the previous one keeps everything there). Measured per design:
the cold ingest (wall, peak RSS of the process), two no-op re-runs, an edit of 0.1% of the documents (wall; the
model's share is its texts times the static model's measured time per text), the bytes of state it left, and
what Dagster recorded of each run (the run's own time and each step's ``duration_s``). The previous design is
commit PREVIOUS, checked out as a detached git worktree and put first on PYTHONPATH. Nothing here imports either
design: the JSON summary and Dagster's records are the only things read.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.context import Context
from bench.data import EditPlan, apply_edits, plan_edits, scifact_docs, synthetic_docs, write_corpus
from bench.tools import STATIC_SPACES_YAML

PREVIOUS = "7040972"  # the last commit before the control and data planes (shared state)
REPO = Path(__file__).resolve().parents[1]
TENANT = "bench"
EDIT_FRACTION = 0.001
NOOP_RUNS = 2
CLI_DOCS, CLI_RUNS = 1000, 5
SUMMARY_KEYS = ("documents", "chunks", "added", "changed", "deleted", "unchanged", "model_calls", "cache_hits",
                "index_rows", "bodies_read")


def run(ctx: Context) -> dict:
    """Both designs at every size of ``ctx.sizes["scale_chunks"]``, and the 1k-document CLI no-op."""
    previous = checkout_previous(ctx.tmp / "previous")
    designs = {"today": REPO / "src", "previous": previous / "src"}
    out: dict = {"previous_commit": PREVIOUS, "edit_fraction": EDIT_FRACTION, "sizes": []}
    try:
        out["encode"] = encode_rate(ctx)
        ctx.log(f"SCALE: static model {out['encode']['ms_per_text']} ms per text")
        for chunks in ctx.sizes["scale_chunks"]:
            n = chunks // 2
            started = time.perf_counter()
            docs = synthetic_docs(ctx.data, n)
            plan = edit_plan(ctx, docs)
            row: dict = {"target_chunks": chunks, "documents": n, "edited": len(plan.edits),
                         "generate_seconds": round(time.perf_counter() - started, 1), "designs": {}}
            for name, src in designs.items():
                ctx.log(f"SCALE: {name}, {n:,} documents")
                row["designs"][name] = measure(ctx, f"{chunks}-{name}", src, docs, plan, out["encode"])
            out["sizes"].append(row)
            del docs
        if ctx.sizes.get("scale_cli", True):
            docs = scifact_docs(ctx.data, CLI_DOCS if not ctx.quick else 50)
            out["cli_noop"] = {name: cli_noop(ctx, name, src, docs) for name, src in designs.items()}
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(previous)], check=False,
                       capture_output=True)
    return out


def checkout_previous(path: Path) -> Path:
    """The previous design's code at ``path`` (a detached git worktree of this repository)."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), PREVIOUS], check=True,
                   capture_output=True)
    return path


def edit_plan(ctx: Context, docs: dict[str, str]) -> EditPlan:
    """One sentence changed in EDIT_FRACTION of the documents (no appends, no deletions)."""
    plan = plan_edits(ctx.data, docs, EDIT_FRACTION)
    return EditPlan(edits=plan.edits)


def encode_rate(ctx: Context) -> dict:
    """The static model's own encode() time per text, on paragraphs of the synthetic corpus (about chunk-sized)."""
    from bench.tools import space_for
    from embedops.core.embedder import load_model

    _, space = space_for("static", ctx.tmp / "encode")
    model = load_model(space.model)._model
    texts = [p for d in synthetic_docs(ctx.data, 2000, seed=3).values() for p in d.split("\n\n")[1:]]
    model.encode(texts[:64], batch_size=32)
    best = min(_seconds(lambda: model.encode(texts, batch_size=32)) for _ in range(3))
    return {"texts": len(texts), "seconds": round(best, 4), "ms_per_text": round(best / len(texts) * 1000, 4)}


def _seconds(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def environment(src: Path, home: Path) -> dict[str, str]:
    """The process environment of one design: its code first on PYTHONPATH, EMBEDOPS_HOME and nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDOPS_", "DAGSTER_"))}
    env.update(EMBEDOPS_HOME=str(home), PYTHONPATH=f"{src}{os.pathsep}{REPO}", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    return env


def deployment(root: Path) -> Path:
    """A fresh EMBEDOPS_HOME at ``root/home`` holding the static space's spaces.yaml."""
    if root.exists():
        shutil.rmtree(root)
    home = root / "home"
    home.mkdir(parents=True)
    (home / "spaces.yaml").write_text(STATIC_SPACES_YAML, encoding="utf-8")
    return home


def invoke(env: dict[str, str], folder: Path, log: Path) -> dict:
    """`embedops ingest --json` as a new process: wall time, its peak RSS, its summary and Dagster's step times."""
    cmd = [str(Path(sys.executable).with_name("embedops")), "ingest", "--tenant", TENANT, "--source", str(folder),
           "--json"]
    load = round(os.getloadavg()[0], 2)
    with (log.with_suffix(".out")).open("w") as out, log.with_suffix(".err").open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.with_suffix(".err").read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"embedops ingest failed ({proc.returncode}): {' | '.join(tail)}")
    summary = json.loads(log.with_suffix(".out").read_text())
    result = {"wall_seconds": round(wall, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "load": load,
              **{k: summary[k] for k in SUMMARY_KEYS if k in summary}}
    result.update(dagster_record(env, Path(env["EMBEDOPS_HOME"]) / "dagster", summary.get("run_ids", [])))
    return result


def dagster_record(env: dict[str, str], dagster_home: Path, run_ids: list[str]) -> dict:
    """Each run's own seconds and each step's duration_s, read by bench.run_steps under the design's code."""
    if not run_ids:
        return {}
    proc = subprocess.run([sys.executable, "-m", "bench.run_steps", str(dagster_home), *run_ids], env=env,
                          capture_output=True, text=True, check=True)
    found = json.loads(proc.stdout)
    return {"run_seconds": round(sum(r["seconds"] or 0.0 for r in found["runs"]), 3), "runs": len(found["runs"]),
            "steps": found["steps"]}


def measure(ctx: Context, label: str, src: Path, docs: dict[str, str], plan: EditPlan, encode: dict) -> dict:
    """Cold ingest, no-op re-runs, the edit, and the state left, of one design on one corpus."""
    root = ctx.tmp / f"scale-{label}"
    home = deployment(root)
    folder = write_corpus(root / "src", docs)
    env = environment(src, home)
    out: dict = {"cold": invoke(env, folder, root / "cold")}
    ctx.log(f"SCALE {label}: cold {out['cold']['wall_seconds']} s, {out['cold'].get('chunks')} chunks, "
            f"peak {out['cold']['peak_rss_mb']} MiB")
    out["state"] = state_sizes(home, out["cold"].get("chunks") or 0)
    out["noop"] = [invoke(env, folder, root / f"noop{i}") for i in range(NOOP_RUNS)]
    ctx.log(f"SCALE {label}: no-op {[r['wall_seconds'] for r in out['noop']]} s")
    apply_edits(folder, plan)
    edit = invoke(env, folder, root / "edit")
    edit["model_seconds"] = round(edit.get("model_calls", 0) * encode["ms_per_text"] / 1000, 3)
    edit["beyond_model_seconds"] = round(edit["wall_seconds"] - edit["model_seconds"], 3)
    out["edit"] = edit
    ctx.log(f"SCALE {label}: edit {edit['wall_seconds']} s ({edit.get('model_calls')} texts)")
    if not ctx.sizes.get("scale_keep"):
        shutil.rmtree(root, ignore_errors=True)
    return out


def cli_noop(ctx: Context, name: str, src: Path, docs: dict[str, str]) -> dict:
    """A no-op `embedops ingest` as a new process on SciFact documents: the median of CLI_RUNS runs."""
    root = ctx.tmp / f"cli-{name}"
    home = deployment(root)
    folder = write_corpus(root / "src", docs)
    env = environment(src, home)
    cold = invoke(env, folder, root / "cold")
    runs = [invoke(env, folder, root / f"noop{i}") for i in range(CLI_RUNS)]
    walls = [r["wall_seconds"] for r in runs]
    ctx.log(f"SCALE CLI no-op ({name}, {len(docs)} SciFact documents): {walls}")
    shutil.rmtree(root, ignore_errors=True)
    return {"documents": len(docs), "cold_seconds": cold["wall_seconds"], "runs": walls,
            "median_seconds": round(statistics.median(walls), 3), "model_calls": [r.get("model_calls") for r in runs],
            "run_seconds": [r.get("run_seconds") for r in runs], "load": runs[0]["load"]}


def state_sizes(home: Path, chunks: int) -> dict:
    """Bytes under EMBEDOPS_HOME by part (its entries, and the entries of data/), SQLite row counts per table."""
    parts: dict[str, int] = {}
    for entry in sorted(home.iterdir()):
        if entry.name == "data" and entry.is_dir():
            for sub in sorted(entry.iterdir()):
                parts[f"data/{sub.name}"] = _bytes(sub)
        else:
            parts[entry.name] = _bytes(entry)
    rows = {}
    for db in sorted([*home.glob("*.sqlite"), *home.glob("*/*.sqlite"), *home.glob("*/*/*.sqlite")]):
        if "dagster" in db.relative_to(home).parts:
            continue
        rows[str(db.relative_to(home))] = _table_rows(db)
    per_million = {k: round(v * 1_000_000 / chunks / 2**20, 1) for k, v in parts.items()} if chunks else {}
    return {"chunks": chunks, "bytes": parts, "mib_per_million_chunks": per_million, "sqlite_rows": rows}


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _table_rows(db: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: con.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()
