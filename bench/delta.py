"""What a run costs when little or nothing changed: a synthetic tenant in the static space, ingested once,
then an unchanged re-run and a run after editing a small share of the documents, each step timed.

    python -m bench.delta --docs 50000 --fraction 0.001 --out /tmp/delta.json

Run by hand (never by CI). Per step: the wall seconds each asset recorded (``duration_s``) and the wall
time of the whole ``run_ingest`` call (both Dagster runs, in process).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.data import apply_edits, data_root, plan_edits, synthetic_docs, write_corpus
from bench.tools import EmbedopsTool

STEPS = ("source_documents", "document_chunks", "chunk_embeddings", "vector_index")


def _durations(tool: EmbedopsTool, run_ids: list[str]) -> dict[str, float | None]:
    """Each step's recorded ``duration_s`` in these runs (None: the step did not run)."""
    import dagster as dg

    found: dict[str, float | None] = dict.fromkeys(STEPS)
    for step in STEPS:
        records = tool.instance.fetch_materializations(dg.AssetKey(step), limit=1).records
        event = records[0] if records else None
        if event is not None and event.run_id in run_ids and event.asset_materialization is not None:
            value = event.asset_materialization.metadata.get("duration_s")
            found[step] = getattr(value, "value", None)
    return found


def _run(tool: EmbedopsTool) -> dict:
    from embedops.pipelines.runs import run_ingest

    started = time.perf_counter()
    summary = run_ingest(tool.defs, tool.instance, tool.tenant, [tool.space], source=tool.folder)[0]
    wall = time.perf_counter() - started
    keys = ("documents", "chunks", "added", "changed", "deleted", "model_calls", "index_upserted", "index_deleted")
    return {"wall_s": round(wall, 3), "steps_s": _durations(tool, summary.run_ids),
            **{k: getattr(summary, k) for k in keys}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50000)
    parser.add_argument("--fraction", type=float, default=0.001, help="share of documents edited, appended, deleted")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-delta-"))
    data = data_root()
    docs = synthetic_docs(data, args.docs)
    folder = write_corpus(root / "src", docs)
    old = time.time() - 3600  # written an hour ago: their size and time vouch for them on the next run
    for path in folder.iterdir():
        os.utime(path, (old, old))
    tool = EmbedopsTool(root, folder, "static")
    result: dict = {"docs": args.docs}
    started = time.perf_counter()
    result["first"] = _run(tool)
    result["first"]["wall_s"] = round(time.perf_counter() - started, 3)
    result["noop"] = _run(tool)
    plan = plan_edits(data, docs, args.fraction / 3)  # as many edits, appends and deletions
    apply_edits(folder, plan)
    result["edit"] = {"plan": plan.counts(), **_run(tool)}
    result["noop_after_edit"] = _run(tool)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
