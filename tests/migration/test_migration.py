"""A full model migration through real Dagster runs, two real models, a two-tenant corpus.

static (64-d model2vec) -> MiniLM passes the gate; MiniLM -> static is refused. Each test runs on
LanceDB and on Weaviate (the fake server), where the alias is a Weaviate collection alias.
"""

from __future__ import annotations

import dagster as dg
import pytest

from embedops.core.cutover import open_manifest, retire, rollback
from embedops.errors import ConfigError
from embedops.pipelines.backfill import PRIORITY_TAG, run_backfill, space_backfill_sensor
from embedops.pipelines.migration import cutover_sensor, dual_write_sensor
from tests.conftest import Project
from tests.migration.conftest import STORE_KINDS, MakeMigration, evaluate, run_job, sensor_tick, skip_reason, status

pytestmark = pytest.mark.parametrize("store_kind", STORE_KINDS)


def test_migration_to_a_better_space_backfills_hot_first_dual_writes_and_cuts_over(
    make_migration: MakeMigration,
) -> None:
    project = make_migration("static", "minilm", weights={"acme": 5})
    store, spaces = project.store, project.spaces
    static, minilm = spaces.get("static"), spaces.get("minilm")
    assert store.get_alias("docs") == static.space_id
    registry = project.workspace.registry()
    for _ in range(3):
        registry.log_search("globex", "static")  # globex is hotter than acme despite acme's weight

    # 1. backfill: hottest tenant first, priorities visible on the runs (the sensor, for the daemon's queue, too)
    queued = sensor_tick(project, space_backfill_sensor).run_requests
    assert [(r.partition_key.keys_by_dimension["tenant"], r.tags[PRIORITY_TAG]) for r in queued] == [
        ("globex", "2"),
        ("acme", "1"),
    ]
    report = run_backfill(project.defs, project.instance, minilm)
    assert [(s.tenant, s.priority, s.action) for s in report.steps] == [
        ("globex", 2, "materialized"),
        ("acme", 1, "materialized"),
    ]
    runs = project.instance.get_runs(dg.RunsFilter(tags={"embedops/backfill": "minilm"}), ascending=True)
    assert [(r.tags["dagster/partition/tenant"], r.tags[PRIORITY_TAG]) for r in runs] == [
        ("globex", "2"),
        ("acme", "1"),
    ]
    assert all(status(project, t, minilm).materialized for t in ("acme", "globex"))
    assert "every tenant is materialized" in skip_reason(sensor_tick(project, space_backfill_sensor))

    # 2. dual write: a source change reaches the serving space and the candidate
    cursor = sensor_tick(project, dual_write_sensor).cursor
    project.write("acme", {"billing.md": ACME_BILLING_V2})
    run_job(project, "source_documents_job", partition_key="acme")
    stale = status(project, "acme", minilm)
    assert not stale.materialized and "changed or added" in stale.problems[0]
    requests = sensor_tick(project, dual_write_sensor, cursor).run_requests
    assert sorted(r.partition_key.keys_by_dimension["space"] for r in requests) == ["minilm", "static"]
    for request in requests:
        run_job(project, "embed_space_job", request)
    for space in (static, minilm):
        assert status(project, "acme", space).materialized
        assert any("ten days" in r["text"] for r in store.export("acme", space.space_id).to_pylist())

    # 3. golden-set evaluation, then the sensor launches the cutover
    numbers = evaluate(project, "minilm")
    assert numbers["recall@10"] >= numbers["serving_recall@10"] - 0.01 and numbers["gate_passed"] is True
    assert numbers["ann_exact_overlap@10"] == pytest.approx(1.0, abs=0.05)
    for key in ("ndcg@10", "mrr@10", "exact_recall@10", "serving_ndcg@10", "queries", "golden_fingerprint"):
        assert key in numbers
    tick = sensor_tick(project, cutover_sensor)
    assert len(tick.run_requests) == 1
    assert run_job(project, "cutover_job", tick.run_requests[0]).success
    assert store.get_alias("docs") == minilm.space_id
    manifest = open_manifest(project.settings.control_url, spaces, store)
    swap = manifest.history("docs")[-1]
    assert (swap.action, swap.who, swap.from_space, swap.to_space, swap.forced) == (
        "cutover",
        "cutover_sensor",
        "static",
        "minilm",
        False,
    )
    assert swap.gate["candidate_recall@10"] == numbers["recall@10"] and swap.gate["passed"] is True
    assert (manifest.state("minilm"), manifest.state("static")) == ("serving", "validated")

    # 4. rollback: one step back; the sensor does not promote the rolled-back space again
    back = rollback(store, manifest, spaces, "docs", "oncall")
    assert (back.to_space, store.get_alias("docs"), back.who) == ("static", static.space_id, "oncall")
    assert "no candidate" in skip_reason(sensor_tick(project, cutover_sensor))
    with pytest.raises(Exception, match="served by alias 'docs'"):
        retire(store, manifest, spaces, static, "drop-on-retire", [])
    done = retire(store, manifest, spaces, minilm, "drop-on-retire", [])
    assert set(done.tenants_emptied) >= {"acme", "globex"} and store.count("acme", minilm.space_id) == 0
    assert manifest.state("minilm") == "retired"
    with pytest.raises(ConfigError, match="retired"):
        run_backfill(project.defs, project.instance, minilm)
    assert [r.partition_key.keys_by_dimension["space"] for r in _dual_write_after_change(project)] == ["static"]


ACME_BILLING_V2 = "# Billing\n\nAcme bills monthly in arrears. A failed card payment is retried after ten days."


def _dual_write_after_change(project: Project) -> list[dg.RunRequest]:
    cursor = sensor_tick(project, dual_write_sensor).cursor
    project.write("acme", {"keys.md": "# API keys\n\nKeys rotate every ninety days."})
    run_job(project, "source_documents_job", partition_key="acme")
    return list(sensor_tick(project, dual_write_sensor, cursor).run_requests)


def test_gate_refuses_a_worse_space_and_says_why(make_migration: MakeMigration) -> None:
    project = make_migration("minilm", "static")
    store, spaces = project.store, project.spaces
    run_backfill(project.defs, project.instance, spaces.get("static"))
    numbers = evaluate(project, "static")
    assert numbers["recall@10"] < numbers["serving_recall@10"] - 0.01
    assert numbers["gate_passed"] is False and "below serving 'minilm'" in numbers["gate_reasons"][0]
    tick = sensor_tick(project, cutover_sensor)
    assert tick.run_requests == [] and "below serving 'minilm'" in skip_reason(tick)
    refused = run_job(
        project,
        "cutover_job",
        run_config={"ops": {"cutover_alias": {"config": {"space": "static"}}}},
        raise_on_error=False,
    )
    assert not refused.success and store.get_alias("docs") == spaces.get("minilm").space_id
    manifest = open_manifest(project.settings.control_url, spaces, store)
    assert [s.action for s in manifest.history()] == ["first-pointing"] and manifest.state("static") == "building"
