"""Golden sets in BEIR layout: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.

A golden set is loaded whole or sliced (some judged queries, their relevant documents and a fixed
number of distractors) so tests and quick checks run on a few hundred documents and a deployment
on the full set. Its ``fingerprint`` says which set (and slice) a recall figure was measured on:
two spaces are compared only on the same fingerprint.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from embedops.core.fingerprints import canonical_hash, sha256_text
from embedops.core.sources import DOCUMENTS_SCHEMA
from embedops.core.tenants import GOLDEN_TENANT
from embedops.errors import ConfigError


@dataclass(frozen=True)
class GoldenSet:
    """Documents {id: (title, text)}, queries {id: text} and judgments {query: {doc: relevance}}."""

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str = "golden"

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for doc_id in sorted(self.corpus):
            title, text = self.corpus[doc_id]
            digest.update(f"{doc_id}\x00{title}\x00{text}\x01".encode())
        return canonical_hash({"corpus": digest.hexdigest(), "queries": self.queries, "qrels": self.qrels})

    def document_text(self, doc_id: str) -> str:
        """The text indexed for a document: the title as a heading (so every chunk carries it), then the body."""
        title, text = self.corpus[doc_id]
        return f"# {' '.join(title.split())}\n\n{text}".strip() if title.strip() else text

    def documents_table(self) -> pa.Table:
        """The corpus as a source_documents table, so the real chunker and embedder index it."""
        rows = []
        for doc_id in sorted(self.corpus):
            text = self.document_text(doc_id)
            rows.append(
                {
                    "tenant": GOLDEN_TENANT,
                    "doc_id": doc_id,
                    "suffix": ".md",
                    "size": len(text),
                    "modified_at": None,
                    "checksum": sha256_text(text),
                    "text": text,
                }
            )
        return pa.Table.from_pylist(rows, schema=DOCUMENTS_SCHEMA)

    def summary(self) -> dict[str, int | str]:
        return {
            "name": self.name,
            "documents": len(self.corpus),
            "queries": len(self.queries),
            "judgments": sum(len(j) for j in self.qrels.values()),
            "fingerprint": self.fingerprint,
        }


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(
            f"golden set file {path} does not exist; a BEIR folder holds corpus.jsonl, "
            "queries.jsonl and qrels/<split>.tsv"
        )
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_beir(folder: str | Path, split: str | None = None) -> GoldenSet:
    """Load a BEIR folder; ``split`` picks qrels/<split>.tsv (default: test, else the only file)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"golden set folder {root} does not exist; pass --golden DIR or set "
            "'migration: golden:' in the space config"
        )
    qrels_files = sorted((root / "qrels").glob("*.tsv"))
    if split is not None:
        chosen = root / "qrels" / f"{split}.tsv"
    elif (root / "qrels" / "test.tsv").is_file():
        chosen = root / "qrels" / "test.tsv"
    elif len(qrels_files) == 1:
        chosen = qrels_files[0]
    else:
        raise ConfigError(
            f"golden set {root}: cannot tell which qrels split to use among "
            f"{[p.stem for p in qrels_files] or 'none'}; pass a split"
        )
    if not chosen.is_file():
        raise ConfigError(f"golden set {root} has no qrels file {chosen}")
    corpus = {
        str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or "")) for d in _jsonl(root / "corpus.jsonl")
    }
    all_queries = {str(q["_id"]): str(q["text"]) for q in _jsonl(root / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with chosen.open(encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if not row or row[0] == "query-id":
                continue
            query, doc, score = row[0], row[1], int(row[2])
            if query in all_queries and doc in corpus:
                qrels.setdefault(query, {})[doc] = score
    queries = {q: all_queries[q] for q in qrels}
    return GoldenSet(corpus=corpus, queries=queries, qrels=qrels, name=root.name)


def slice_golden(
    golden: GoldenSet, queries: int = 40, distractors: int = 150, max_chars: int | None = None
) -> GoldenSet:
    """A deterministic slice: the first ``queries`` judged queries (by id), every document relevant
    to them, and ``distractors`` other documents picked by a stable hash; texts cut to ``max_chars``."""
    chosen = sorted((q for q, j in golden.qrels.items() if any(r > 0 for r in j.values())), key=_id_order)[:queries]
    qrels = {q: dict(golden.qrels[q]) for q in chosen}
    relevant = {d for judged in qrels.values() for d in judged}
    others = sorted((d for d in golden.corpus if d not in relevant), key=lambda d: sha256_text(d))
    keep = relevant | set(others[:distractors])

    def cut(text: str) -> str:
        return text if max_chars is None else text[:max_chars]

    corpus = {d: (t, cut(x)) for d, (t, x) in golden.corpus.items() if d in keep}
    name = f"{golden.name}[{len(chosen)}q+{distractors}d{'' if max_chars is None else f',{max_chars}c'}]"
    return GoldenSet(corpus=corpus, queries={q: golden.queries[q] for q in chosen}, qrels=qrels, name=name)


def write_beir(golden: GoldenSet, folder: str | Path, split: str = "test") -> Path:
    """Write ``golden`` as a BEIR folder (for a slice that a command or a test can point at)."""
    root = Path(folder)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id in sorted(golden.corpus, key=_id_order):
            title, text = golden.corpus[doc_id]
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for query_id in sorted(golden.queries, key=_id_order):
            fh.write(json.dumps({"_id": query_id, "text": golden.queries[query_id]}, ensure_ascii=False) + "\n")
    with (root / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for query_id in sorted(golden.qrels, key=_id_order):
            for doc_id, score in sorted(golden.qrels[query_id].items()):
                fh.write(f"{query_id}\t{doc_id}\t{score}\n")
    return root


def _id_order(identifier: str) -> tuple[int, int | str]:
    return (0, int(identifier)) if identifier.isdigit() else (1, identifier)
