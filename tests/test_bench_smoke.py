"""The hand-run benchmarks keep working: quick mode on a tiny corpus writes its report (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import report
from bench.__main__ import run
from bench.context import Context
from bench.data import data_root


@pytest.fixture(scope="module")
def shared_data() -> Path:
    try:
        return data_root()
    except FileNotFoundError as exc:
        pytest.skip(f"shared data sets are absent: {exc}")


def test_quick_report_has_the_goals(tmp_path: Path, shared_data: Path) -> None:
    out = tmp_path / "out"
    results = run(["--quick", "--only", "P1,P2,P4", "--out", str(out), "--data", str(shared_data)])

    assert not results["errors"]
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    md = (out / "report.md").read_text(encoding="utf-8")
    goals = {row["goal"].split(" ")[0] for row in data["goals"]}
    assert {"P1", "P2", "P4"} <= goals
    for name in ("P1", "P2", "P4"):
        assert report.GOALS[name] in md
    assert data["p1"]["same_chunk_texts"] and data["p1"]["model_calls"] == data["p1"]["chunks"]
    assert data["p2"]["model_calls"] == 0
    assert data["p4"]["sizes"][0]["vectors"] == 2000
    assert data["p4"]["sizes"][0]["flat"]["recall_at_10"] == 1.0  # no index: LanceDB scans, exact
    assert "## Machine and versions" in md


def test_peers_edit_round(tmp_path: Path, shared_data: Path) -> None:
    from bench.peers import available

    missing = [name for name, ok in available().items() if not ok]
    if missing:
        pytest.skip(f"peer packages not installed ({', '.join(missing)}): pip install -e '.[bench]'")
    from bench.data import plan_edits, scifact_docs
    from bench.edits import compare

    ctx = Context(data=shared_data, tmp=tmp_path, quick=True, quiet=True)
    docs = scifact_docs(shared_data, 20)
    plan = plan_edits(shared_data, docs)

    result = compare(ctx, "smoke", "static", docs, plan, embedops="inprocess")

    tools = result["tools"]
    assert set(tools) == {"embedops", "langchain", "llamaindex"}
    assert tools["embedops"]["rerun"]["calls"] == 0
    assert tools["embedops"]["check"]["passed"] and tools["llamaindex"]["check"]["passed"]
    assert tools["langchain"]["check_after_full_cleanup"]["passed"]
    assert all(t["edits"]["calls"] > 0 for t in tools.values())
