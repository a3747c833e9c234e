"""P3 edits and the scaling runs: every tool gets the same documents and the same edits.

Per tool and corpus: a cold ingest, an unchanged re-run (P2 for the peers too), then one-sentence edits to
1% of the documents, appends to 1% and deletions of 1%, then checks of what each index serves.
embedops runs in a child process (``bench.worker``) so that its peak RSS is measured per step; the
peers run in this process on their in-memory stores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.context import Context
from bench.data import (
    EditPlan,
    apply_edits,
    plan_edits,
    plan_revisions,
    scifact_docs,
    synthetic_docs,
    wiki_docs,
    write_corpus,
)
from bench.peers import LangChainTool, LlamaIndexTool, available
from bench.tools import EmbedopsTool, Tool, check, warm_up

REPO = Path(__file__).resolve().parents[1]


def sequence(tool: Tool, folder: Path, plan: EditPlan, originals: dict[str, str], full_cleanup: bool = False,
             done: dict | None = None) -> dict:
    """Cold ingest, unchanged re-run, edited re-run and checks (``done`` holds steps already run)."""
    out = dict(done or {})
    for step in ("cold", "rerun"):
        if step not in out:
            out[step] = tool.sync().to_json()
    apply_edits(folder, plan)
    out["edits"] = tool.sync().to_json()
    out["check"] = check(tool, plan, originals)
    if full_cleanup:
        out["full_cleanup"] = tool.sync(cleanup="full").to_json()  # type: ignore[call-arg]
        out["check_after_full_cleanup"] = check(tool, plan, originals)
    return out


def run_worker(ctx: Context, label: str, folder: Path, model: str, plan: EditPlan, model_only: bool) -> dict:
    """embedops on ``folder`` in a fresh process; returns its steps, RSS and check."""
    root = ctx.tmp / label / "embedops"
    root.mkdir(parents=True, exist_ok=True)
    job = {"root": str(root), "folder": str(folder), "model": model, "plan": plan.to_json(),
           "model_only": model_only}
    job_path, out_path = root / "job.json", root / "result.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "bench.worker", str(job_path), str(out_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.worker failed for {label}: {proc.stderr.strip()[-2000:]}")
    return json.loads(out_path.read_text(encoding="utf-8"))


def compare(ctx: Context, label: str, model: str, docs: dict[str, str], plan: EditPlan, *, embedops: str = "worker",
            peers: bool = True, model_only: bool = False, splitter: str = "embedops") -> dict:
    """Every tool on its own copy of ``docs``: cold, re-run, edits, checks."""
    have = available()
    result: dict = {"label": label, "model": model, "documents": len(docs), "plan": plan.counts(),
                    "splitter": splitter, "source_mb": round(sum(len(t.encode()) for t in docs.values()) / 1e6, 2),
                    "tools": {}}
    originals = {d: docs[d] for d in [*plan.deletes, *plan.replaces]}
    if embedops:
        folder = write_corpus(ctx.tmp / label / "embedops" / "src", docs)
        ctx.log(f"{label}: embedops ({model}, {len(docs)} documents)")
        if embedops == "worker":
            worker = run_worker(ctx, label, folder, model, plan, model_only)
            result["tools"]["embedops"] = {**worker["steps"], "check": worker["check"],
                                           "load_seconds": worker["load_seconds"]}
        else:
            warm_up("embedops", model, ctx.tmp, docs, lambda src: EmbedopsTool(src.parent, src, model))
            tool = EmbedopsTool(ctx.tmp / label / "embedops", folder, model)
            result["tools"]["embedops"] = sequence(tool, folder, plan, originals)
    if peers and have["langchain"]:
        ctx.log(f"{label}: langchain ({model}, {len(docs)} documents)")
        warm_up(f"langchain-{splitter}", model, ctx.tmp, docs,
                lambda src: LangChainTool(src, model, splitter=splitter))
        folder = write_corpus(ctx.tmp / label / "langchain" / "src", docs)
        lc = LangChainTool(folder, model, splitter=splitter)
        result["tools"]["langchain"] = sequence(lc, folder, plan, originals, full_cleanup=True)
    if peers and have["llamaindex"]:
        ctx.log(f"{label}: llamaindex ({model}, {len(docs)} documents)")
        warm_up(f"llamaindex-{splitter}", model, ctx.tmp, docs,
                lambda src: LlamaIndexTool(src, model, splitter=splitter))
        folder = write_corpus(ctx.tmp / label / "llamaindex" / "src", docs)
        li = LlamaIndexTool(folder, model, splitter=splitter)
        result["tools"]["llamaindex"] = sequence(li, folder, plan, originals)
    return result


def run_main(ctx: Context, tool: EmbedopsTool, docs: dict[str, str], p1: dict, p2: dict) -> dict:
    """P3 with all-MiniLM-L6-v2 on the P1 slice; embedops goes on from the P1/P2 deployment."""
    plan = plan_edits(ctx.data, docs, ctx.sizes["p3_fraction"])
    done = {"cold": {"calls": p1["model_calls"], "seconds": p1["ingest_seconds"]},
            "rerun": {"calls": p2["model_calls"], "seconds": p2["rerun_seconds"]}}
    ctx.log(f"P3: embedops (minilm, {len(docs)} documents)")
    originals = {d: docs[d] for d in plan.deletes}
    embedops_result = sequence(tool, tool.folder, plan, originals, done=done)
    result = compare(ctx, "p3-minilm", "minilm", docs, plan, embedops="")
    result["tools"] = {"embedops": embedops_result, **result["tools"]}
    return result


def run_scaling(ctx: Context) -> list[dict]:
    """P2 and P3 at each SciFact size, every tool, static model."""
    out = []
    for n in ctx.sizes["scale_docs"]:
        docs = scifact_docs(ctx.data, n)
        plan = plan_edits(ctx.data, docs, ctx.sizes["p3_fraction"])
        out.append(compare(ctx, f"scifact-{n}", "static", docs, plan, model_only=True))
    return out


def run_synthetic(ctx: Context) -> dict:
    """The synthetic corpus (about 2 chunks a document), embedops only: the largest scaling point and P6."""
    n = ctx.sizes["synthetic_docs"]
    docs = synthetic_docs(ctx.data, n)
    plan = plan_edits(ctx.data, docs, ctx.sizes["p3_fraction"])
    return compare(ctx, f"synthetic-{n}", "static", docs, plan, peers=False)


def run_variants(ctx: Context) -> list[dict]:
    """The peers with their own recommended splitters, and LangChain with a larger batch size."""
    n = ctx.sizes["variant_docs"]
    docs = scifact_docs(ctx.data, n)
    plan = plan_edits(ctx.data, docs, ctx.sizes["p3_fraction"])
    out = [compare(ctx, f"native-{n}", "static", docs, plan, embedops="", splitter="native")]
    if available()["langchain"]:
        folder = write_corpus(ctx.tmp / f"lc-batch-{n}" / "src", docs)
        ctx.log(f"variant: langchain batch_size=1000 ({n} documents)")
        lc = LangChainTool(folder, "static", batch_size=1000)
        originals = {d: docs[d] for d in plan.deletes}
        out.append({"label": f"langchain-batch1000-{n}", "model": "static", "documents": n, "plan": plan.counts(),
                    "splitter": "embedops",
                    "tools": {"langchain (batch_size=1000)": sequence(lc, folder, plan, originals, full_cleanup=True)}})
    return out


def run_revisions(ctx: Context) -> dict:
    """Real edits: a fraction of the wiki articles move to their next version."""
    docs = wiki_docs(ctx.data, 0, ctx.sizes.get("wiki_articles"))
    plan = plan_revisions(ctx.data, docs, ctx.sizes["revision_fraction"])
    return compare(ctx, "wiki-revisions", "static", docs, plan, embedops="inprocess")
