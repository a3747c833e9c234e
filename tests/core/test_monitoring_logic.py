"""The monitoring logic as plain functions: drift math, overlap, freshness, reconciliation, pager state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.stores.contract import DIM, SPACE, make_rows

from embedops.core.monitoring import ERROR, WARN
from embedops.core.monitoring.config import (
    FreshnessConfig,
    MonitoringConfig,
    NeighbourConfig,
    PolicyRule,
    SentinelConfig,
    load_monitoring,
    parse_monitoring,
)
from embedops.core.monitoring.drift import (
    distribution_shift,
    fixed_sample,
    fixed_sample_rows,
    grade_high,
    grade_low,
    neighbour_stability,
    overlap,
    sentinel_drift,
    trend_table,
)
from embedops.core.monitoring.freshness import (
    DocFreshness,
    freshness,
    histogram,
    lag_seconds,
    policy_for,
    stale_reason,
)
from embedops.core.monitoring.pager import Evaluation, PagerOutbox, trigger_event
from embedops.core.monitoring.reconcile import list_source, one_space, provenance, reconcile
from embedops.core.monitoring.repair import find_bad_rows
from embedops.core.monitoring.sentinel import sentinel_texts
from embedops.core.monitoring.state import MonitoringState
from embedops.core.settings import Settings
from embedops.core.spaces import ModelSpec, SpaceSpec
from embedops.errors import ConfigError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, None), (0.004, None), (0.01, None), (0.0199, None), (0.02, WARN), (0.049, WARN), (0.05, ERROR),
     (0.9, ERROR)],
)
def test_sentinel_bands(value: float, expected: str | None) -> None:
    config = SentinelConfig()
    assert grade_high(value, config.warn_at, config.error_at) == expected


@pytest.mark.parametrize(("value", "expected"), [(1.0, None), (0.85, None), (0.84, WARN), (0.70, WARN), (0.69, ERROR)])
def test_neighbour_bands(value: float, expected: str | None) -> None:
    assert grade_low(value, 0.85, 0.70) == expected


def test_fixed_sample_is_stable_and_local() -> None:
    ids = [f"c{i}" for i in range(500)]
    first = fixed_sample(ids, 100)
    assert first == fixed_sample(list(reversed(ids)), 100) and len(set(first)) == 100
    # removing ids outside the sample leaves it unchanged; removing one inside swaps in exactly one id
    outside = [i for i in ids if i not in first][:50]
    assert fixed_sample([i for i in ids if i not in outside], 100) == first
    shrunk = fixed_sample([i for i in ids if i != first[0]], 100)
    assert len(set(shrunk) - set(first)) == 1


@pytest.mark.parametrize("batch", [1, 7, 100, 500])
def test_fixed_sample_rows_read_batch_by_batch_are_the_fixed_sample(batch: int) -> None:
    ids = [f"c{i}" for i in range(500)]
    table = pa.table({"chunk_id": ids, "seq": list(range(500))})
    picked = fixed_sample_rows((table.slice(s, batch) for s in range(0, 500, batch)), 40)
    assert picked is not None and picked.column("chunk_id").to_pylist() == fixed_sample(ids, 40)
    assert picked.column_names == ["chunk_id", "seq"]
    assert [int(i[1:]) for i in picked.column("chunk_id").to_pylist()] == picked.column("seq").to_pylist()
    assert fixed_sample_rows(iter([]), 40) is None
    assert fixed_sample_rows([table.slice(0, 3)], 40).num_rows == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(("noise", "level"), [(0.0, None), (0.3, WARN), (5.0, ERROR)])
def test_sentinel_drift_grades_mean_distance(noise: float, level: str | None) -> None:
    rng = np.random.default_rng(0)
    stored = rng.normal(size=(20, 32))
    fresh = stored + noise * rng.normal(size=stored.shape)
    outcome = sentinel_drift([f"c{i}" for i in range(20)], stored, fresh, SentinelConfig(warn_at=0.02, error_at=0.3))
    assert outcome.passed == (level is None)
    if level:
        assert outcome.severity == level and outcome.ids
    assert outcome.metadata["sampled"] == 20


@pytest.mark.parametrize(
    ("previous", "current", "k", "expected"),
    [
        ([["a", "b"]], [["a", "b"]], 2, [1.0]),
        ([["a", "b"]], [["b", "c"]], 2, [0.5]),
        ([["a", "b", "c"]], [["a", "x", "y"]], 2, [0.5]),
        ([[], ["a"]], [[], ["b"]], 10, [1.0, 0.0]),
    ],
)
def test_overlap(previous: list, current: list, k: int, expected: list[float]) -> None:
    assert overlap(previous, current, k) == pytest.approx(expected)


def test_neighbour_stability_first_then_compared() -> None:
    config = NeighbourConfig(k=2)
    assert neighbour_stability(["q"], None, [["a", "b"]], config).passed
    low = neighbour_stability(["q1", "q2"], [["a", "b"], ["c", "d"]], [["a", "x"], ["y", "z"]], config)
    assert not low.passed and low.severity == ERROR and low.metadata["mean_overlap"] == 0.25


@pytest.mark.parametrize(
    ("shift", "scale", "level"),
    [((1.0, 0.0), 1.0, None), ((1.0, 0.0), 1.07, WARN), ((1.0, 0.0), 1.2, ERROR), ((1.0, 0.6), 1.0, WARN),
     ((0.0, 1.0), 1.0, ERROR)],
)
def test_distribution_shift(shift: tuple[float, float], scale: float, level: str | None) -> None:
    from embedops.core.monitoring.config import DistributionConfig

    outcome = distribution_shift(np.array(shift), scale, np.array([1.0, 0.0]), 1.0, DistributionConfig())
    assert outcome.passed == (level is None) and (level is None or outcome.severity == level)


@pytest.mark.parametrize(
    ("doc_id", "policy"),
    [("news/today.md", "daily"), ("news/2026/may.md", "daily"), ("archive/old.txt", "never"),
     ("guides/a.md", "weekly"), ("guides/deep/a.md", "on_change"), ("readme.md", "on_change")],
)
def test_policy_matching(doc_id: str, policy: str) -> None:
    rules = (PolicyRule("news/**", "daily"), PolicyRule("archive/*", "never"), PolicyRule("guides/*.md", "weekly"))
    assert policy_for(doc_id, rules, "on_change") == policy


def _doc(embedded_hours_ago: float, modified_hours_ago: float, pending: bool = False, model: str = "m@1"
         ) -> DocFreshness:
    at = NOW - timedelta(hours=embedded_hours_ago)
    return DocFreshness("d.md", NOW - timedelta(hours=modified_hours_ago), at, at, pending, {model})


@pytest.mark.parametrize(
    ("doc", "policy", "stale"),
    [
        (_doc(30, 40), "never", False),
        (_doc(30, 40), "daily", True),
        (_doc(20, 40), "daily", False),
        (_doc(30, 40), "weekly", False),
        (_doc(200, 300), "weekly", True),
        (_doc(1, 30, pending=True), "on_change", True),
        (_doc(1, 2, pending=True), "on_change", False),
        (_doc(1000, 2000), "on_change", False),
        (_doc(1, 2, model="m@0"), "on_model_upgrade", True),
        (_doc(1000, 2000), "on_model_upgrade", False),
    ],
)
def test_stale_reason_per_policy(doc: DocFreshness, policy: str, stale: bool) -> None:
    assert (stale_reason(doc, policy, "m@1", NOW, FreshnessConfig()) is not None) == stale


def test_lag_counts_from_the_later_of_change_and_first_materialization() -> None:
    done = _doc(embedded_hours_ago=1, modified_hours_ago=3)
    assert lag_seconds(done, NOW, None) == 2 * 3600
    assert lag_seconds(done, NOW, floor=NOW - timedelta(hours=1.5)) == 0.5 * 3600
    waiting = _doc(embedded_hours_ago=10, modified_hours_ago=5, pending=True)
    assert lag_seconds(waiting, NOW, None) == 5 * 3600


def test_freshness_percentiles_slo_and_histogram() -> None:
    docs = [_doc(0, 0.5) for _ in range(9)] + [_doc(0, 30)]
    outcome = freshness(docs, FreshnessConfig(slo_p99_hours=24), "m@1", NOW)
    assert not outcome.passed and "p99 lag" in outcome.description
    assert outcome.metadata["p50_lag_hours"] == pytest.approx(0.5)
    table = outcome.markdown["lag_histogram"]
    assert "| 1 min - 1 h | 9 |" in table and "| 1 d - 7 d | 1 |" in table
    assert freshness(docs[:9], FreshnessConfig(), "m@1", NOW).passed
    assert histogram([]).count("| 0 |") == 6


def test_list_source_follows_the_scan_rules(tmp_path: Path) -> None:
    for name in ("a.md", "sub/b.txt", ".hidden.md", ".git/c.md", "image.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert sorted(list_source(tmp_path)) == ["a.md", "sub/b.txt"]
    assert list_source(tmp_path / "missing") == {}


def _index(ids: list[str], docs: list[str]) -> pa.Table:
    return pa.table({"chunk_id": ids, "doc_id": docs})


@pytest.mark.parametrize(
    ("source", "index_docs", "ledger_docs", "orphans", "missing", "passed"),
    [
        ({"a", "b"}, ["a", "b"], ["a", "b"], [], [], True),
        ({"a"}, ["a", "b"], ["a", "b"], ["b"], [], False),
        ({"a", "b", "q"}, ["a", "b"], ["a", "b"], [], [], True),  # q is quarantined: reported, not missing
        ({"a", "b", "c"}, ["a", "b"], ["a", "b"], [], ["c"], False),
    ],
)
def test_reconcile(
    source: set, index_docs: list, ledger_docs: list, orphans: list, missing: list, passed: bool
) -> None:
    index = _index([f"{d}-1" for d in index_docs], index_docs)
    ledger = _index([f"{d}-1" for d in ledger_docs], ledger_docs)
    outcome = reconcile(source, {"q"}, index, ledger, None)
    assert outcome.passed == passed
    assert outcome.metadata["orphans"] == orphans and outcome.metadata["missing"] == missing
    assert outcome.metadata["orphans_total"] == len(orphans)


def test_reconcile_lists_chunks_outside_the_ledger_and_caps_lists() -> None:
    index = _index(["a-1", "a-2", "x-1"], ["a", "a", "a"])
    ledger = _index(["a-1", "a-2", "a-3"], ["a", "a", "a"])
    outcome = reconcile({"a"}, set(), index, ledger, None, limit=1)
    assert not outcome.passed
    assert outcome.metadata["orphan_chunks"] == ["x-1"] and outcome.metadata["missing_chunks"] == ["a-3"]
    many = reconcile(set(), set(), _index([f"c{i}" for i in range(80)], [f"d{i}" for i in range(80)]), None, None)
    assert many.metadata["orphans_total"] == 80 and len(many.metadata["orphans"]) == 50


def _spec() -> SpaceSpec:
    """A space whose ids are the ones the contract rows carry (no model needs to load)."""
    spec = SpaceSpec(name=SPACE[1], model=ModelSpec(name="m", path="/nonexistent"), dimension=DIM)
    spec.__dict__["space_id"] = SPACE[0]
    spec.model.__dict__["identity"] = "contract-model@1"
    return spec


SPEC = _spec()


@pytest.fixture
def rows() -> pa.Table:
    return make_rows("acme", ["1-a", "2-a", "3-a"])


def test_one_space_and_provenance_pass_on_clean_rows(rows: pa.Table) -> None:
    assert one_space(rows, SPEC).passed and provenance(rows, SPEC, "acme").passed


def test_one_space_lists_rows_of_another_space(rows: pa.Table) -> None:
    bad = pa.concat_tables([rows, make_rows("acme", ["9-a"], space=("ffffffffffff", "other"))])
    outcome = one_space(bad, SPEC)
    assert not outcome.passed and outcome.ids == ["9-a"] and "ffffffffffff" in outcome.metadata["space_ids_found"]


def test_provenance_lists_missing_fields_wrong_tenant_and_dimension(rows: pa.Table) -> None:
    data = rows.to_pylist()
    data[0]["source_checksum"] = ""
    data[1]["tenant"] = "globex"
    data[2]["vector"] = [0.1] * (DIM - 1)
    table = pa.Table.from_pylist(data)
    outcome = provenance(table, SPEC, "acme")
    assert not outcome.passed and outcome.ids == ["1-a", "2-a", "3-a"]
    assert outcome.metadata["missing_by_field"] == {"source_checksum": ["1-a"]}
    assert outcome.metadata["wrong_dimension_rows"] == ["3-a"]


def test_find_bad_rows(rows: pa.Table) -> None:
    data = rows.to_pylist()
    data[0]["vector"] = list(-np.asarray(data[0]["vector"]))
    data[1]["model"] = ""
    extra = make_rows("acme", ["9-a"], space=("ffffffffffff", "other")).to_pylist()
    plan = find_bad_rows(pa.Table.from_pylist(data[:2] + extra), rows, SPACE[0])
    assert set(plan.rewrite) == {"1-a", "2-a"} and "vector" in plan.rewrite["1-a"] and "model" in plan.rewrite["2-a"]
    assert set(plan.delete) == {"9-a"} and plan.missing == ["3-a"]
    assert find_bad_rows(rows, rows, SPACE[0]).empty


def test_sentinel_texts_use_todays_recipe_when_it_changed() -> None:
    rows = [{"chunk_id": "c1", "doc_id": "d", "seq": 0, "text": "old", "source_checksum": "s"},
            {"chunk_id": "c2", "doc_id": "e", "seq": 0, "text": "same", "source_checksum": "s"}]
    texts, changed = sentinel_texts(rows, {"d": ("s", ["new"]), "e": ("s", ["same"])})
    assert texts == ["new", "same"] and changed == ["c1"]
    # a document whose source moved on is compared on its stored text
    assert sentinel_texts(rows[:1], {"d": ("other", ["new"])}) == (["old"], [])


def test_config_defaults_and_errors(tmp_path: Path) -> None:
    assert load_monitoring(None) == MonitoringConfig()
    config = parse_monitoring({"sentinel": {"sample": 10}, "freshness": {"policies": [
        {"pattern": "news/**", "policy": "daily"}]}})
    assert config.sentinel.sample == 10 and config.freshness.policies[0].policy == "daily"
    for bad, message in [
        ({"sentinel": {"warn": 1}}, "sentinel.warn is not a known key; did you mean warn_at"),
        ({"bogus": {}}, "bogus is not a known key"),
        ({"freshness": {"policies": [{"pattern": "*", "policy": "hourly"}]}}, "not one of"),
        ({"sentinel": {"warn_at": 0.5, "error_at": 0.1}}, "pass_below <= warn_at <= error_at"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_monitoring(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_monitoring(tmp_path / "nope.yaml")


def test_state_keeps_the_first_baseline_and_history(tmp_path: Path) -> None:
    state = MonitoringState.at(Settings(home=tmp_path, sources_root=tmp_path))
    assert state.keep_baseline("acme", "s1", np.array([1.0, 2.0]), 1.5, 3)
    assert not state.keep_baseline("acme", "s1", np.array([9.0, 9.0]), 9.0, 3)
    assert list(state.baseline("acme", "s1").centroid) == [1.0, 2.0]
    for v in (0.1, 0.2, 0.3):
        state.record("acme", "s1", {"m": v})
    assert [p["value"] for p in state.history("acme", "s1", "m", 2)] == [0.2, 0.3]
    assert "| m |" in trend_table({"m": state.history("acme", "s1", "m", 5)})


def _evaluation(passed: bool, severity: str = "ERROR") -> Evaluation:
    return Evaluation("reconciliation", "vector_index", "space|acme", passed, severity, "1 orphan")


@pytest.mark.parametrize(
    ("sequence", "actions"),
    [
        ([False, False, False], ["trigger"]),
        ([False, True, True], ["trigger", "resolve"]),
        ([True, True], []),
        ([False, True, False], ["trigger", "resolve", "trigger"]),
    ],
)
def test_outbox_pages_once_per_failing_key(tmp_path: Path, sequence: list[bool], actions: list[str]) -> None:
    outbox = PagerOutbox.at(Settings(home=tmp_path, sources_root=tmp_path))
    done = [a for a in (outbox.observe(_evaluation(p)) for p in sequence) if a]
    assert done == actions and [p.action for p in outbox.pending()] == actions


def test_warn_failures_do_not_page(tmp_path: Path) -> None:
    outbox = PagerOutbox.at(Settings(home=tmp_path, sources_root=tmp_path))
    assert outbox.observe(_evaluation(False, "WARN")) is None and outbox.pending() == []


def test_trigger_event_has_the_pagerduty_v2_shape() -> None:
    event = trigger_event(_evaluation(False))
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "embedops/vector_index/reconciliation/space|acme"
    assert set(event["payload"]) == {"summary", "source", "severity", "custom_details"}
    assert event["payload"]["severity"] == "error" and "routing_key" not in event
