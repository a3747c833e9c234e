"""Migration logic without Dagster: hot-first order, the gate, reciprocal-rank fusion, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.core.migration import TenantStatus, gate, hot_first, rrf_fuse
from embedops.core.spaces import DEFAULT_SPACE, MigrationConfig, ModelSpec, SpaceSpec, load_config
from embedops.core.stores.base import Hit
from embedops.errors import ConfigError

STATIC = SpaceSpec(
    name="static", model=ModelSpec(name="static", backend="model2vec", package="static_model"), dimension=64
)


@pytest.mark.parametrize(
    ("searches", "weights", "expected"),
    [
        ({"b": 5, "a": 1}, {}, ["b", "a", "c"]),  # traffic first
        ({}, {"c": 3, "a": 2}, ["c", "a", "b"]),  # no traffic: the configured weight
        ({"a": 2, "b": 2}, {"b": 9}, ["b", "a", "c"]),  # equal traffic: weight breaks the tie
        ({}, {}, ["a", "b", "c"]),  # nothing known: by name, stable
    ],
)
def test_hot_first(searches: dict[str, int], weights: dict[str, float], expected: list[str]) -> None:
    order = hot_first(["a", "b", "c"], searches, MigrationConfig(tenant_weights=weights))
    assert [t.tenant for t in order] == expected
    assert [t.priority for t in order] == [3, 2, 1]  # dagster/priority: hottest highest


def _eval(recall: float) -> dict[str, float | str]:
    return {"recall@10": recall, "ndcg@10": recall, "mrr@10": recall, "fingerprint": "f"}


@pytest.mark.parametrize(
    ("candidate", "serving", "tolerance", "passed"),
    [
        (0.90, 0.90, 0.01, True),
        (0.895, 0.90, 0.01, True),
        (0.88, 0.90, 0.01, False),
        (0.88, 0.90, 0.05, True),
        (0.95, 0.55, 0.0, True),
    ],
)
def test_gate_compares_recall_within_tolerance(
    candidate: float, serving: float, tolerance: float, passed: bool
) -> None:
    done = [TenantStatus("acme", "static", 3, 5, 5)]
    result = gate(STATIC, DEFAULT_SPACE, done, _eval(candidate), _eval(serving), tolerance)
    assert result.passed is passed
    assert result.numbers["candidate_recall@10"] == candidate and result.numbers["serving_recall@10"] == serving
    if not passed:
        assert "below serving" in result.reasons[0]


def test_gate_names_every_reason_it_refuses() -> None:
    missing = [TenantStatus("acme", "static", problems=["not materialized in space 'static' (no chunks)"])]
    result = gate(STATIC, DEFAULT_SPACE, missing, None, None, 0.01)
    assert not result.passed
    assert any("tenant 'acme'" in r for r in result.reasons) and any(
        "no golden-set evaluation" in r for r in result.reasons
    )
    no_serving_numbers = gate(STATIC, DEFAULT_SPACE, [], _eval(0.9), None, 0.01)
    assert "no evaluation on the same golden set" in no_serving_numbers.reasons[0]
    assert "already serves" in gate(STATIC, STATIC, [], _eval(0.9), _eval(0.9), 0.01).reasons[0]


def test_the_gate_says_when_only_the_golden_set_numbers_are_missing() -> None:
    done = [TenantStatus("acme", "static", 3, 5, 5)]
    missing = [TenantStatus("acme", "static", problems=["not materialized in space 'static' (no chunks)"])]
    assert gate(STATIC, DEFAULT_SPACE, done, None, None, 0.01).ready_for_evaluation
    assert gate(STATIC, DEFAULT_SPACE, done, _eval(0.9), None, 0.01).ready_for_evaluation  # serving unmeasured
    assert not gate(STATIC, DEFAULT_SPACE, missing, None, None, 0.01).ready_for_evaluation  # backfill first
    assert not gate(STATIC, DEFAULT_SPACE, done, _eval(0.5), _eval(0.9), 0.01).ready_for_evaluation  # measured


def _hit(chunk: str, space: str) -> Hit:
    return Hit(chunk, chunk, chunk, 0.5, {"space_id": space})


def test_rrf_combines_ranks_only() -> None:
    fused = rrf_fuse({"old": [_hit("a", "1"), _hit("b", "1")], "new": [_hit("b", "2"), _hit("c", "2")]}, k=3)
    assert [f.hit.chunk_id for f in fused] == ["b", "a", "c"]  # b is in both lists
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61) and fused[0].ranks == {"old": 2, "new": 1}
    assert fused[1].score == pytest.approx(1 / 61)


def test_migration_settings_come_from_the_space_config(tmp_path: Path) -> None:
    path = tmp_path / "spaces.yaml"
    path.write_text("spaces: [{name: a}]\nmigration: {golden: /g, tolerance: 0.02, tenant_weights: {acme: 3}}\n")
    config = load_config(path, environ={}).migration
    assert (config.golden, config.tolerance, config.weight("acme"), config.weight("other")) == ("/g", 0.02, 3.0, 1.0)
    assert load_config(path, environ={"EMBEDOPS_GOLDEN": "/x"}).migration.golden == "/x"
    assert load_config(None, environ={}).migration.tolerance == 0.01
    assert load_config(None, environ={"EMBEDOPS_GOLDEN": "/x"}).migration.golden == "/x"
    path.write_text("spaces: [{name: a}]\nmigration: {deletion_policy: shred}\n")
    with pytest.raises(ConfigError, match="migration: deletion_policy 'shred' is not one of"):
        load_config(path, environ={})


def test_the_static_model_package_resolves_offline() -> None:
    """tokenlearn-static-model ships no get_model_path: the folder is <package>/model."""
    folder = STATIC.model.model_dir()
    assert folder.name == "model" and (folder / "model.safetensors").is_file()
    assert STATIC.model.identity.startswith("static@tokenlearn-static-model==")
