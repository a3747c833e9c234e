"""Retrieval metrics against hand-computed values (BEIR / pytrec_eval definitions)."""

from __future__ import annotations

import math

import pytest

from embedops.core.metrics import evaluate_run, mean_overlap, mrr_at_k, ndcg_at_k, overlap_at_k, recall_at_k
from embedops.errors import ConfigError


@pytest.mark.parametrize(
    ("ranked", "judged", "k", "expected"),
    [
        (["a", "b", "c"], {"a": 1}, 10, 1.0),
        (["x", "y", "a"], {"a": 1, "b": 1}, 10, 0.5),  # relevant retrieved / all relevant
        (["x", "a"], {"a": 1}, 1, 0.0),  # outside the cutoff
        (["a", "b"], {"a": 1, "b": 0}, 10, 1.0),  # relevance 0 is not relevant
        ([], {"a": 1}, 10, 0.0),
    ],
)
def test_recall_at_k(ranked: list[str], judged: dict[str, int], k: int, expected: float) -> None:
    assert recall_at_k(ranked, judged, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("ranked", "judged", "expected"),
    [
        (["a", "x"], {"a": 1}, 1.0),
        (["x", "a"], {"a": 1}, 1 / math.log2(3)),
        (["x", "a", "b"], {"a": 1, "b": 1}, (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))),
        (["b", "a"], {"a": 2, "b": 1}, (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))),  # graded gain = relevance
    ],
)
def test_ndcg_at_10(ranked: list[str], judged: dict[str, int], expected: float) -> None:
    assert ndcg_at_k(ranked, judged, 10) == pytest.approx(expected)


@pytest.mark.parametrize(("ranked", "expected"), [(["a"], 1.0), (["x", "y", "a"], 1 / 3), (["x"] * 10 + ["a"], 0.0)])
def test_mrr_at_10(ranked: list[str], expected: float) -> None:
    assert mrr_at_k(ranked, {"a": 1}, 10) == pytest.approx(expected)


def test_evaluate_run_macro_averages_over_judged_queries_only() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"z": 0}}  # q3 judges nothing relevant: skipped
    run = {"q1": ["a"], "q2": ["x", "b"], "q3": ["z"]}
    scores = evaluate_run(run, qrels, 10)
    assert scores["recall@10"] == pytest.approx((1 + 0.5) / 2)
    assert scores["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert evaluate_run({}, qrels, 10)["recall@10"] == 0.0  # a query with no results scores 0
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        evaluate_run(run, {"q": {"a": 0}}, 10)


def test_overlap_is_the_share_of_the_reference_top_k() -> None:
    assert overlap_at_k(["a", "b", "c"], ["c", "d", "a"], 3) == pytest.approx(2 / 3)
    assert overlap_at_k([], [], 10) == 1.0
    assert mean_overlap({"q": ["a"], "r": ["x"]}, {"q": ["a"], "r": ["b"]}, 1) == pytest.approx(0.5)
