"""The space manifest: states, evaluations and the alias history a rollback reads."""

from __future__ import annotations

from pathlib import Path

from embedops.core.manifest import Manifest


def test_declared_spaces_start_building_and_the_alias_target_serves(tmp_path: Path) -> None:
    m = Manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    m.sync_spaces({"old": "id-old", "new": "id-new"}, serving_ids={"id-old"})
    assert (m.state("old"), m.state("new")) == ("serving", "building")
    m.sync_spaces({"old": "id-old", "new": "id-new2"}, serving_ids={"id-old"})  # recipe changed: a new space
    assert m.spaces()["new"]["space_id"] == "id-new2" and m.state("new") == "building"


def test_a_swap_is_recorded_before_and_after_and_moves_states(tmp_path: Path) -> None:
    m = Manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    m.sync_spaces({"old": "a", "new": "b"}, {"a"})
    swap_id = m.begin_swap("docs", "cutover", ("old", "a"), ("new", "b"), "ann", {"passed": True, "recall@10": 0.9})
    assert m.history("docs")[0].status == "pending"
    assert m.previous("docs", "b").id == swap_id  # a pending move that landed still counts
    m.finish_swap(swap_id)
    swap = m.history("docs")[0]
    assert (swap.status, swap.who, swap.from_space, swap.to_space, swap.gate["recall@10"]) == (
        "done",
        "ann",
        "old",
        "new",
        0.9,
    )
    assert (m.state("old"), m.state("new")) == ("validated", "serving")
    assert m.spaces()["old"]["auto_cutover"] is False  # a space that served is never auto-promoted again


def test_failed_swap_changes_no_state_and_evaluations_are_per_golden_set(tmp_path: Path) -> None:
    m = Manifest(f"sqlite:///{tmp_path / 'm.sqlite'}")
    m.sync_spaces({"old": "a", "new": "b"}, {"a"})
    m.finish_swap(m.begin_swap("docs", "cutover", ("old", "a"), ("new", "b"), "ann", {}), "failed")
    assert m.state("new") == "building" and m.previous("docs", "b") is None
    m.record_evaluation("new", "b", "f1", "slice", {"recall@10": 0.5})
    m.record_evaluation("new", "b", "f2", "full", {"recall@10": 0.7})
    assert m.latest_evaluation("b")["recall@10"] == 0.7
    assert m.latest_evaluation("b", "f1")["recall@10"] == 0.5 and m.latest_evaluation("a") is None
