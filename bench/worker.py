"""Run embedops on one corpus in a fresh process, so that its peak memory is its own.

``python -m bench.worker JOB.json OUT.json``: the job names the deployment root, the source folder, the
model and an edit plan; the worker runs a cold ingest, an unchanged re-run and the edited re-run, each
with the peak RSS of that step (the kernel's mark is reset between steps), then checks the result.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.data import EditPlan, apply_edits
from bench.system import peak_rss_mb, reset_peak_rss, rss_mb


def run_job(job: dict) -> dict:
    """Cold ingest, unchanged re-run, edits; RSS and timings of each step."""
    out: dict = {"rss_at_start_mb": rss_mb()}
    started = time.perf_counter()
    from bench.tools import EmbedopsTool, check, warm_up

    root, folder, model = Path(job["root"]), Path(job["folder"]), job["model"]
    tool = EmbedopsTool(root, folder, model)
    out["load_seconds"] = round(time.perf_counter() - started, 3)
    first = sorted(folder.iterdir())[:2]
    warm_up("embedops", model, root, {p.name: p.read_text(encoding="utf-8") for p in first},
            lambda src: EmbedopsTool(src.parent, src, model))
    plan = EditPlan.from_json(job["plan"]) if job.get("plan") else None
    originals = {}
    if plan:
        originals = {d: (folder / d).read_text(encoding="utf-8") for d in [*plan.deletes, *plan.replaces]}
    steps: dict = {}
    for name in job.get("steps", ["cold", "rerun", "edits"]):
        if name == "edits":
            if plan is None:
                continue
            apply_edits(folder, plan)
        before = rss_mb()
        resettable = reset_peak_rss()
        step = tool.sync().to_json()
        step["rss_before_mb"] = _round(before)
        step["peak_rss_mb"] = _round(peak_rss_mb()) if resettable or name == "cold" else None
        steps[name] = step
        if name == "cold" and job.get("model_only"):
            steps["model_only"] = model_only(tool)
    out["steps"] = steps
    if plan and "edits" in steps:
        out["check"] = check(tool, plan, originals)
    return out


def model_only(tool) -> dict:  # type: ignore[no-untyped-def]
    """The model's own encode() on the chunk texts of the cold ingest, batch size 32, timed."""
    from embedops.core.embedder import load_model

    table = tool.defs.resources["workspace"].tables().read("document_chunks", (tool.tenant, tool.space.name))
    texts = table.column("text").to_pylist()
    model = load_model(tool.space.model)._model
    started = time.perf_counter()
    model.encode(texts, batch_size=32)
    seconds = time.perf_counter() - started
    return {"texts": len(texts), "seconds": round(seconds, 4)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = run_job(job)
    Path(argv[1]).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
