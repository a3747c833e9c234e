"""Benchmark corpora and edits: SciFact abstracts, wiki article revisions, and synthetic documents.

The shared data sets are read in place (``EMBEDOPS_SHARED_DATA`` or ``--data``), never copied into the
repository; the corpora are written as files into a temporary folder, one file per document, the way a
tenant's source folder looks.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_WS = re.compile(r"\s+")


def data_root(override: str | Path | None = None) -> Path:
    """The shared data folder: the flag, else EMBEDOPS_SHARED_DATA, else ../shared/data."""
    root = Path(override or os.environ.get("EMBEDOPS_SHARED_DATA") or DEFAULT_DATA)
    if not (root / "scifact" / "corpus.jsonl").is_file():
        raise FileNotFoundError(
            f"SciFact corpus not found under {root}; pass --data DIR or set EMBEDOPS_SHARED_DATA "
            "to the folder holding scifact/ and wiki-versions/"
        )
    return root


@lru_cache(maxsize=2)
def scifact(root: Path) -> list[dict]:
    """SciFact abstracts in corpus order: {_id, title, text}."""
    with (root / "scifact" / "corpus.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@lru_cache(maxsize=2)
def scifact_queries(root: Path) -> list[str]:
    with (root / "scifact" / "queries.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


@lru_cache(maxsize=2)
def wiki_versions(root: Path) -> dict[str, list[str]]:
    """Article -> its versions' texts, oldest first."""
    path = root / "wiki-versions" / "versions.jsonl"
    found: dict[str, dict[int, str]] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            found.setdefault(row["article"], {})[row["version"]] = row["text"]
    return {a: [v[k] for k in sorted(v)] for a, v in sorted(found.items())}


@lru_cache(maxsize=2)
def wiki_sentences(root: Path) -> list[str]:
    """Clean sentences of real article text, used as the new text of edits and appends."""
    out = []
    for versions in wiki_versions(root).values():
        for raw in re.split(r"(?<=\.)\s+", versions[-1]):
            s = _WS.sub(" ", raw).strip()
            if 60 <= len(s) <= 200 and s.endswith(".") and s.isascii() and ":" not in s and s[0].isalpha():
                out.append(s[0].upper() + s[1:])
    return out


def normalize(text: str) -> str:
    return _WS.sub(" ", text).strip()


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "doc"


# --- corpora -------------------------------------------------------------------------------------


def scifact_docs(root: Path, n: int) -> dict[str, str]:
    """The first ``n`` SciFact abstracts as Markdown files: ``# title`` then the abstract."""
    docs = scifact(root)
    if n > len(docs):
        raise ValueError(f"asked for {n} SciFact documents; the corpus has {len(docs)}")
    return {f"{d['_id']}.md": f"# {d['title'].strip()}\n\n{d['text'].strip()}\n" for d in docs[:n]}


def synthetic_docs(root: Path, n: int, seed: int = 7) -> dict[str, str]:
    """``n`` documents recombined from SciFact sentences: a title and two short paragraphs each."""
    rng = random.Random(seed)
    pool = [s for d in scifact(root) for s in sentences(normalize(d["text"])) if 40 <= len(s) <= 400]
    titles = [normalize(d["title"]) for d in scifact(root)]
    out = {}
    for i in range(n):
        first = " ".join(rng.choice(pool) for _ in range(rng.randint(2, 3)))
        second = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 3)))
        out[f"s{i:06d}.md"] = f"# {rng.choice(titles)} ({i})\n\n{first}\n\n{second}\n"
    return out


def wiki_docs(root: Path, version: int = 0, limit: int | None = None) -> dict[str, str]:
    """The articles (the first ``limit`` by name) at ``version`` (or their last version) as text files."""
    items = list(wiki_versions(root).items())[:limit]
    return {f"{slug(a)}.txt": v[min(version, len(v) - 1)] for a, v in items}


def write_corpus(folder: Path, docs: dict[str, str]) -> Path:
    """Write the documents as files into a fresh ``folder``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def read_folder(folder: Path) -> Iterator[tuple[str, str]]:
    """(document id, text) of every file, the id being the path relative to ``folder``."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield path.relative_to(folder).as_posix(), path.read_text(encoding="utf-8")


# --- edits ---------------------------------------------------------------------------------------


@dataclass
class EditPlan:
    """One-sentence edits, appends and deletions, by document id, with the texts a check looks for."""

    edits: dict[str, tuple[str, str]] = field(default_factory=dict)  # doc -> (old sentence, new sentence)
    appends: dict[str, str] = field(default_factory=dict)  # doc -> appended paragraph
    deletes: list[str] = field(default_factory=list)
    replaces: dict[str, str] = field(default_factory=dict)  # doc -> whole new text (real revisions)

    def to_json(self) -> dict:
        return {"edits": self.edits, "appends": self.appends, "deletes": self.deletes, "replaces": self.replaces}

    @classmethod
    def from_json(cls, data: dict) -> EditPlan:
        return cls(
            edits={k: (v[0], v[1]) for k, v in data["edits"].items()},
            appends=data["appends"],
            deletes=data["deletes"],
            replaces=data.get("replaces", {}),
        )

    def counts(self) -> dict[str, int]:
        return {"edited": len(self.edits), "appended": len(self.appends), "deleted": len(self.deletes),
                "revised": len(self.replaces)}


def plan_edits(root: Path, docs: dict[str, str], fraction: float = 0.01, seed: int = 11) -> EditPlan:
    """Edit one sentence of ``fraction`` of the documents, append to as many, delete as many (disjoint)."""
    rng = random.Random(seed)
    n = max(1, round(len(docs) * fraction))
    ids = sorted(docs)
    chosen = rng.sample(ids, min(3 * n, len(ids)))
    new_text = iter(rng.sample(wiki_sentences(root), 4 * n))
    plan = EditPlan()
    for doc in chosen[:n]:
        body = docs[doc].split("\n\n", 1)[-1]
        candidates = [s.strip() for s in sentences(body) if len(s.strip()) > 30 and s.strip() in docs[doc]]
        old = candidates[len(candidates) // 2] if candidates else body.strip()
        plan.edits[doc] = (old, next(new_text))
    for doc in chosen[n : 2 * n]:
        plan.appends[doc] = f"{next(new_text)} {next(new_text)}"
    plan.deletes = chosen[2 * n : 3 * n]
    return plan


def plan_revisions(root: Path, docs: dict[str, str], fraction: float = 0.05, seed: int = 13) -> EditPlan:
    """Real edits: ``fraction`` of the wiki articles in ``docs`` move from version 0 to version 1."""
    rng = random.Random(seed)
    versions = {f"{slug(a)}.txt": v for a, v in wiki_versions(root).items() if len(v) > 1}
    candidates = sorted(set(versions) & set(docs))
    picked = rng.sample(candidates, max(1, round(len(candidates) * fraction)))
    return EditPlan(replaces={doc: versions[doc][1] for doc in picked})


def apply_edits(folder: Path, plan: EditPlan) -> None:
    """Change the files in ``folder`` as the plan says."""
    for doc, (old, new) in plan.edits.items():
        path = folder / doc
        text = path.read_text(encoding="utf-8")
        if old not in text:
            raise ValueError(f"edit plan does not match {path}: sentence to replace not found")
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    for doc, para in plan.appends.items():
        path = folder / doc
        path.write_text(path.read_text(encoding="utf-8").rstrip() + f"\n\n{para}\n", encoding="utf-8")
    for doc, text in plan.replaces.items():
        (folder / doc).write_text(text, encoding="utf-8")
    for doc in plan.deletes:
        (folder / doc).unlink()


def shingles(text: str, size: int = 3) -> set[str]:
    """Word 3-grams of each line (none across a line break, where chunkers cut)."""
    out: set[str] = set()
    for line in text.splitlines():
        words = line.split()
        out.update(" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1)) if words)
    return out


def coverage(chunks: list[str], wanted: set[str]) -> float:
    """The share of ``wanted`` word 3-grams found in the chunks (1.0 when nothing is wanted).

    A sentence cut between two chunks without overlap loses the 3-grams that span the cut, so a text counts
    as present from 0.9 on, and as gone below 0.1.
    """
    if not wanted:
        return 1.0
    have = set().union(*(shingles(c) for c in chunks)) if chunks else set()
    return len(wanted & have) / len(wanted)


def present(chunks: list[str], text: str) -> bool:
    return coverage(chunks, shingles(text)) >= 0.9
