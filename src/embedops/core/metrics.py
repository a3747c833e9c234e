"""Retrieval metrics with the standard definitions of BEIR / pytrec_eval, macro-averaged over queries.

``qrels`` maps a query id to {doc id: graded relevance}; only relevance > 0 counts as relevant, and
only queries with at least one relevant document are scored (as pytrec_eval does). A ``run`` maps a
query id to its ranked doc ids, best first.

- recall@k = relevant docs in the top k / all relevant docs of the query
- nDCG@k   = DCG@k / ideal DCG@k, gain = relevance, discount = log2(rank + 1)
- MRR@k    = 1 / rank of the first relevant doc in the top k (0 when none)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from embedops.errors import ConfigError

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]


def _relevant(judged: Mapping[str, int]) -> dict[str, int]:
    return {d: r for d, r in judged.items() if r > 0}


def recall_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    relevant = _relevant(judged)
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    relevant = _relevant(judged)
    if not relevant:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    for rank, doc in enumerate(ranked[:k], 1):
        if doc in relevant and doc not in seen:
            dcg += relevant[doc] / math.log2(rank + 1)
        seen.add(doc)
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))
    return dcg / idcg


def mrr_at_k(ranked: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    relevant = _relevant(judged)
    for rank, doc in enumerate(ranked[:k], 1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def overlap_at_k(a: Sequence[str], b: Sequence[str], k: int = 10) -> float:
    """Share of the top k of ``b`` (the reference, e.g. exact search) that ``a`` also returns."""
    reference = list(b[:k])
    if not reference:
        return 1.0
    return len(set(a[:k]) & set(reference)) / len(reference)


def evaluate_run(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """Macro-averaged recall@k, nDCG@k and MRR@k of ``run`` over the judged queries of ``qrels``."""
    scored = [q for q, judged in qrels.items() if _relevant(judged)]
    if not scored:
        raise ConfigError("the qrels judge no query as relevant to any document; nothing to evaluate")
    totals = {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, f"mrr@{k}": 0.0}
    for query in scored:
        ranked = list(run.get(query, ()))
        totals[f"recall@{k}"] += recall_at_k(ranked, qrels[query], k)
        totals[f"ndcg@{k}"] += ndcg_at_k(ranked, qrels[query], k)
        totals[f"mrr@{k}"] += mrr_at_k(ranked, qrels[query], k)
    return {name: value / len(scored) for name, value in totals.items()}


def mean_overlap(run_a: Run, run_b: Run, k: int = 10) -> float:
    """Mean top-k overlap of ``run_a`` with the reference ``run_b`` over the reference's queries."""
    if not run_b:
        return 1.0
    return sum(overlap_at_k(list(run_a.get(q, ())), list(ranked), k) for q, ranked in run_b.items()) / len(run_b)
