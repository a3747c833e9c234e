"""The control stores behave the same on SQLite (the embedded default) and on a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedops.core import control
from embedops.core.aliases import AliasBook
from embedops.core.manifest import Manifest
from embedops.core.monitoring.pager import Evaluation, PagerOutbox
from embedops.core.monitoring.state import MonitoringState
from embedops.core.registry import Registry
from embedops.errors import UnknownTenantError


@pytest.fixture
def database(control_database: str) -> str:
    """A fresh control database, on SQLite then on PostgreSQL (tests/postgres.py)."""
    return control_database


def test_registry_keeps_tenants_and_search_counts(database: str, tmp_path: Path) -> None:
    registry = Registry(database)
    registry.add_tenant("acme", tmp_path / "a")
    registry.add_tenant("acme", tmp_path / "b")  # a new source folder replaces the old one
    registry.add_tenant("globex", "s3://docs/globex/")  # sources on an object store: kept as the URL
    assert registry.tenants() == {"acme": str((tmp_path / "b").resolve()), "globex": "s3://docs/globex"}
    assert registry.source_dir("globex") == "s3://docs/globex"
    assert registry.source_dir("initech", tmp_path) == str(tmp_path / "initech")
    with pytest.raises(UnknownTenantError, match="initech"):
        registry.source_dir("initech")
    for tenant in ("acme", "acme", "globex"):
        registry.log_search(tenant, "docs")
    assert Registry(database).search_counts() == {"acme": 2, "globex": 1}  # another handle sees the same rows


def test_manifest_states_swaps_and_evaluations(database: str) -> None:
    m = Manifest(database)
    m.sync_spaces({"old": "a", "new": "b"}, {"a"})
    assert (m.state("old"), m.state("new")) == ("serving", "building")
    swap_id = m.begin_swap("docs", "cutover", ("old", "a"), ("new", "b"), "ann", {"recall@10": 0.9})
    assert m.previous("docs", "b").id == swap_id  # pending, but it may have landed
    m.finish_swap(swap_id)
    failed = m.begin_swap("docs", "rollback", ("new", "b"), ("old", "a"), "bob", {})
    m.finish_swap(failed, "failed")
    history = Manifest(database).history("docs")
    assert [(s.action, s.status, s.forced, s.gate) for s in history] == [
        ("cutover", "done", False, {"recall@10": 0.9}),
        ("rollback", "failed", False, {}),
    ]
    assert (m.state("old"), m.state("new")) == ("validated", "serving")
    assert m.spaces()["old"]["auto_cutover"] is False and m.spaces()["new"]["auto_cutover"] is True
    m.record_evaluation("new", "b", "f1", "slice", {"recall@10": 0.5})
    m.record_evaluation("new", "b", "f2", "full", {"recall@10": 0.7})
    assert m.latest_evaluation("b")["recall@10"] == 0.7 and m.latest_evaluation("b", "f1")["golden"] == "slice"


def _swap_many(database: str, who: str, count: int, start: Any) -> None:
    """One process's share of the concurrent swaps (run in a spawned process)."""
    manifest = Manifest(database)
    start.wait(timeout=60)  # both processes go at once
    for i in range(count):
        # both processes declare the same new space at once: the manifest serialises the read-then-insert
        manifest.sync_spaces({f"shared-{i}": f"s{i}", f"{who}-{i}": f"{who}{i}"}, set())
        swap_id = manifest.begin_swap("docs", "cutover", (f"shared-{i}", f"s{i}"), (f"{who}-{i}", f"{who}{i}"), who, {})
        manifest.finish_swap(swap_id)


def test_concurrent_swaps_from_two_processes_are_all_recorded(database: str) -> None:
    count = 25
    Manifest(database)  # tables created once, before the race
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    workers = [spawn.Process(target=_swap_many, args=(database, who, count, start)) for who in ("p", "q")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]

    manifest = Manifest(database)
    history = manifest.history("docs")
    assert len(history) == 2 * count and len({s.id for s in history}) == 2 * count
    assert all(s.status == "done" for s in history)
    assert sorted(s.who for s in history) == ["p"] * count + ["q"] * count
    states = {name: row["state"] for name, row in manifest.spaces().items()}
    assert len(states) == 3 * count  # each shared space declared once, whichever process came first
    assert all(states[f"{who}-{i}"] == "serving" for who in ("p", "q") for i in range(count))


def _declare(database: str, name: str) -> None:
    Manifest(database).sync_spaces({name: "id-" + name}, set())


def test_a_manifest_write_waits_while_another_process_holds_the_manifest(database: str) -> None:
    manifest = Manifest(database)
    spawn = multiprocessing.get_context("spawn")
    with control.serialised(manifest.engine, "manifest"):
        writer = spawn.Process(target=_declare, args=(database, "late"))
        writer.start()
        writer.join(timeout=8)  # long enough for a spawned process to start and write, were it not kept waiting
        assert writer.is_alive() and manifest.state("late") is None
    writer.join(timeout=60)
    assert writer.exitcode == 0 and manifest.state("late") == "building"


def test_monitoring_state_keeps_the_first_baseline_neighbours_and_history(database: str) -> None:
    state = MonitoringState(database)
    assert state.keep_baseline("acme", "s1", np.array([1.0, 2.0]), 1.5, 3)
    assert not state.keep_baseline("acme", "s1", np.array([9.0, 9.0]), 9.0, 3)
    baseline = state.baseline("acme", "s1")
    assert list(baseline.centroid) == [1.0, 2.0] and (baseline.mean_norm, baseline.rows) == (1.5, 3)
    state.reset_baseline("acme", "s1")
    assert state.baseline("acme", "s1") is None

    assert state.neighbours("acme", "s1") is None
    state.keep_neighbours("acme", "s1", ["q1", "q2"], None)
    state.keep_neighbours("acme", "s1", ["q1", "q2"], [["c1"], ["c2"]])
    assert state.neighbours("acme", "s1") == (["q1", "q2"], [["c1"], ["c2"]])
    state.forget_neighbour_results("acme", "s1")
    assert state.neighbours("acme", "s1") == (["q1", "q2"], None)

    for v in (0.1, 0.2, 0.3):
        state.record("acme", "s1", {"m": v, "other": 1.0})
    assert [p["value"] for p in state.history("acme", "s1", "m", 2)] == [0.2, 0.3]


def test_pager_outbox_queues_one_trigger_and_one_resolve(database: str) -> None:
    outbox = PagerOutbox(database)
    failing = Evaluation("reconciliation", "vector_index", "space|acme", False, "ERROR", "1 orphan")
    passing = Evaluation("reconciliation", "vector_index", "space|acme", True, "ERROR")
    assert [outbox.observe(e) for e in (failing, failing, passing, passing)] == ["trigger", None, "resolve", None]
    assert outbox.open_incidents() == []
    outbox.observe(failing)
    first, second, third = outbox.pending()
    assert (first.action, second.action, third.action) == ("trigger", "resolve", "trigger")
    assert outbox.open_incidents() == [failing.dedup_key]
    outbox.mark_failed(first.id, "HTTP 503")
    outbox.mark_sent(second.id)
    left = PagerOutbox(database).pending()
    assert [(p.id, p.attempts) for p in left] == [(first.id, 1), (third.id, 0)]


def test_aliases_move_atomically_and_compare_and_set(database: str) -> None:
    book = AliasBook(database)
    assert book.get("docs") is None
    assert book.compare_and_set("docs", None, "a")
    assert not book.compare_and_set("docs", None, "b")  # it points somewhere already
    assert not book.compare_and_set("docs", "b", "c")  # not where the caller thinks
    assert book.compare_and_set("docs", "a", "b")
    book.set("faq", "a")
    assert AliasBook(database).all() == {"docs": "b", "faq": "a"}
