"""The indexing tools under test behind one small interface, and the result checks they share.

A tool keeps an index of one source folder: ``sync()`` brings the index in step with the folder and
reports the texts it sent to the model and its wall time; ``chunks()`` and ``search()`` let the checks
look at what it serves.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.data import EditPlan, coverage, present, shingles

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STATIC_SPACES_YAML = """\
alias: docs
serving: static-c200
spaces:
  - name: static-c200
    dimension: 64
    model: {name: tokenlearn-static, backend: model2vec, package: static_model}
"""
MODELS = ("minilm", "static")


@dataclass
class Step:
    """One sync: texts sent to the model, wall seconds, and what the tool itself reported."""

    calls: int
    seconds: float
    detail: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"calls": self.calls, "seconds": round(self.seconds, 4), **self.detail}


class Tool(Protocol):
    name: str

    def sync(self) -> Step: ...

    def chunks(self) -> dict[str, list[str]]:
        """Document id -> the texts of its chunks currently in the index."""
        ...

    def search(self, query: str, k: int) -> list[str]:
        """Document ids of the top-k chunks for ``query``."""
        ...


def space_for(model: str, root: Path):  # type: ignore[no-untyped-def]
    """(spaces file or None, the SpaceSpec) for ``minilm`` (the default space) or ``static``."""
    from embedops.core.spaces import DEFAULT_SPACE, load_config

    if model == "minilm":
        return None, DEFAULT_SPACE
    if model != "static":
        raise ValueError(f"unknown model {model!r}; use one of {MODELS}")
    path = root / "spaces.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(STATIC_SPACES_YAML, encoding="utf-8")
    return path, load_config(path).serving_space


_LOOKUP = {"seconds": 0.0, "calls": 0}


def _time_distribution_lookups() -> None:
    """Time importlib.metadata.packages_distributions(), which ModelSpec.identity calls (measured, not changed)."""
    import importlib.metadata as md

    original = md.packages_distributions
    if getattr(original, "_bench_timed", False):
        return

    def timed():  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original()
        finally:
            _LOOKUP["seconds"] += time.perf_counter() - started
            _LOOKUP["calls"] += 1

    timed._bench_timed = True  # type: ignore[attr-defined]
    md.packages_distributions = timed  # type: ignore[assignment]


class EmbedopsTool:
    """embedops through Dagster (run_ingest, as `embedops ingest` runs it) on a throw-away deployment."""

    name = "embedops"

    def __init__(self, root: Path, folder: Path, model: str, tenant: str = "bench") -> None:
        import dagster as dg

        from embedops.core.embedder import SpaceEmbedder, load_model
        from embedops.core.settings import Settings
        from embedops.definitions import build_defs

        spaces_file, self.space = space_for(model, root)
        self.settings = Settings(home=root / "home", sources_root=root / "sources", spaces_file=spaces_file)
        self.defs = build_defs(self.settings)
        self.instance = dg.DagsterInstance.ephemeral()
        self.folder, self.tenant = folder, tenant
        self.embedder = SpaceEmbedder(self.space)
        self._model = load_model(self.space.model)  # loads the model now, outside any timing

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.defs.resources["vector_store"].open()

    def sync(self) -> Step:
        from embedops.core.embedder import load_model
        from embedops.pipelines.runs import run_ingest

        _time_distribution_lookups()
        # the process's model now: a run that syncs every row drops it, and the next run loads another
        self._model = load_model(self.space.model)
        before, lookups = self._model.calls, dict(_LOOKUP)
        started, cpu = time.perf_counter(), time.process_time()
        summary = run_ingest(self.defs, self.instance, self.tenant, [self.space], source=self.folder)[0]
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        counted = self._model.calls - before
        detail = {k: getattr(summary, k) for k in ("documents", "chunks", "added", "changed", "deleted",
                                                   "unchanged", "model_calls", "cache_hits", "index_rows")}
        detail["cpu_seconds"] = round(cpu, 3)
        detail["identity_lookup_seconds"] = round(_LOOKUP["seconds"] - lookups["seconds"], 3)
        detail["identity_lookups"] = _LOOKUP["calls"] - lookups["calls"]
        return Step(calls=counted, seconds=seconds, detail=detail)

    def chunks(self) -> dict[str, list[str]]:
        rows = self.store.export(self.tenant, self.space.space_id).select(["doc_id", "text"]).to_pylist()
        out: dict[str, list[str]] = {}
        for row in rows:
            out.setdefault(row["doc_id"], []).append(row["text"])
        return out

    def search(self, query: str, k: int) -> list[str]:
        from embedops.core.search import search_tenant

        hits = search_tenant(self.store, self.space, self.embedder, self.tenant, query, k=k)
        return [h.doc_id for h in hits]


_WARM: set[tuple[str, str]] = set()
SEARCHED = 50  # documents per kind whose retrieval is checked by a search


def warm_up(name: str, model: str, root: Path, docs: dict[str, str], factory) -> None:  # type: ignore[no-untyped-def]
    """Run a tool twice on two documents so that imports and one-time set-up are not timed as a cold ingest."""
    from bench.data import write_corpus

    if (name, model) in _WARM:
        return
    small = dict(list(docs.items())[:2])
    folder = write_corpus(root / f"warm-{name}-{model}" / "src", small)
    tool = factory(folder)
    tool.sync()
    tool.sync()
    _WARM.add((name, model))


def check(tool: Tool, plan: EditPlan, originals: dict[str, str], k: int = 10) -> dict:
    """Is the index right after the edits? Deleted documents gone and not retrieved, new text present.

    Content is checked for every document; retrieval by search for the first ``SEARCHED`` of each kind.
    """
    current = tool.chunks()
    out: dict = {}
    if plan.deletes:
        out["deleted_gone"] = not any(doc in current for doc in plan.deletes)
        missed = [doc for doc in plan.deletes[:SEARCHED] if doc in tool.search(_first_line(originals[doc]), k)]
        out["deleted_not_retrieved"] = not missed
        out["deleted_still_retrieved"] = len(missed)
    if plan.edits:
        out["edited_text_present"] = all(present(current.get(d, []), new) for d, (_, new) in plan.edits.items())
        out["old_text_gone"] = not any(present(current.get(d, []), old) for d, (old, _) in plan.edits.items())
        sample = list(plan.edits.items())[:SEARCHED]
        # how often the edited document is in the top k for its new sentence: a property of the model, not a check
        out["edited_retrieved_rate"] = round(sum(d in tool.search(new, k) for d, (_, new) in sample) / len(sample), 3)
    if plan.appends:
        out["appended_text_present"] = all(present(current.get(d, []), text) for d, text in plan.appends.items())
    if plan.replaces:
        added = [coverage(current.get(d, []), shingles(new) - shingles(originals[d]))
                 for d, new in plan.replaces.items()]
        removed = [coverage(current.get(d, []), shingles(originals[d]) - shingles(new))
                   for d, new in plan.replaces.items() if shingles(originals[d]) - shingles(new)]
        out["revised_text_present"] = min(added) >= 0.9
        out["removed_text_gone"] = not removed or max(removed) < 0.1
    out["index_chunks"] = sum(len(v) for v in current.values())
    out["passed"] = all(v for key, v in out.items() if isinstance(v, bool))
    return out


def _first_line(text: str) -> str:
    line = next((ln for ln in text.splitlines() if ln.strip()), text)
    return line.lstrip("# ").strip()[:300]
