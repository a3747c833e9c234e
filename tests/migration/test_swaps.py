"""Alias moves under load, a killed backfill, and the cutover command's gate and --force.

The alias moves and the cutover command run on LanceDB and on Weaviate (the fake server).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from embedops.cli import main
from embedops.core.cutover import check_gate, cutover, open_manifest, rollback
from embedops.core.embedder import SpaceEmbedder
from embedops.core.evaluation import evaluate_space
from embedops.core.golden import load_beir
from embedops.core.migration import MigrationConfig
from embedops.core.search import search_tenant, serving_space
from embedops.pipelines.backfill import run_backfill
from tests.migration.conftest import STORE_KINDS, MakeMigration, cli_env


@pytest.mark.parametrize("store_kind", STORE_KINDS)
def test_cutover_and_rollback_are_atomic_under_concurrent_searches(
    make_migration: MakeMigration, golden_dir: Path
) -> None:
    project = make_migration("static", "minilm")
    store, spaces = project.store, project.spaces
    static, minilm = spaces.get("static"), spaces.get("minilm")
    run_backfill(project.defs, project.instance, minilm)
    manifest = open_manifest(project.settings.control_url, spaces, store)
    golden = load_beir(golden_dir)
    for space in (minilm, static):
        result = evaluate_space(golden, space, SpaceEmbedder(space), project.workspace.cache(), store)
        manifest.record_evaluation(space.name, space.space_id, golden.fingerprint, golden.name, result.numbers())
    verdict = check_gate(
        spaces, MigrationConfig(), minilm, "docs", store, project.workspace.tables(), manifest,
        {t: project.source(t) for t in ("acme", "globex")},
    )
    assert verdict.passed, verdict.reasons

    embedders = {s.space_id: SpaceEmbedder(s) for s in (static, minilm)}
    stop = threading.Event()
    errors: list[str] = []
    served: list[str] = []

    def search(tenant: str) -> None:
        while not stop.is_set():
            try:
                space = serving_space(store, spaces)  # resolve the alias once, then search that space only
                hits = search_tenant(store, space, embedders[space.space_id], tenant, "payment and shipping", k=5)
                found = {h.provenance["space_id"] for h in hits}
                if not hits or found != {space.space_id}:
                    errors.append(f"{tenant}: result set from spaces {found}, alias said {space.space_id}")
                served.append(space.space_id)
            except Exception as exc:  # any error during the swaps fails the test
                errors.append(f"{tenant}: {exc!r}")

    threads = [threading.Thread(target=search, args=(t,)) for t in ("acme", "globex", "acme", "globex")]
    for t in threads:
        t.start()
    cycles = 0
    # at least 8 swaps and back, and on until more than 20 searches ran beside them, however slow the store
    while (cycles < 8 or len(served) <= 20) and cycles < 200:
        cutover(store, manifest, spaces, "docs", minilm, verdict, "load-test")
        time.sleep(0.05)
        rollback(store, manifest, spaces, "docs", "load-test")
        time.sleep(0.05)
        cycles += 1
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert len(served) > 20 and set(served) == {static.space_id, minilm.space_id}
    history = manifest.history("docs")
    assert history[0].action == "first-pointing"  # by the serving space's first sync
    assert len(history) == 1 + 2 * cycles and all(s.status == "done" for s in history)
    assert store.get_alias("docs") == static.space_id


def test_a_killed_backfill_resumes_without_redoing_finished_tenants(
    make_migration: MakeMigration, tmp_path: Path
) -> None:
    project = make_migration("minilm", "static")
    env = {**os.environ, **cli_env(project, tmp_path / "dagster"), "PYTHONUNBUFFERED": "1"}
    command = [str(Path(sys.executable).parent / "embedops"), "backfill", "--space", "static"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed as soon as the first tenant is materialized
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert first.startswith("acme:") and "materialized" in first, first

    # resume (here in-process): the finished tenant is skipped, launching no run; the killed one is done
    report = run_backfill(project.defs, project.instance, project.spaces.get("static"))
    steps = {s.tenant: s for s in report.steps}
    assert steps["acme"].action == "skipped" and steps["acme"].run_id is None
    assert steps["globex"].action == "materialized" and steps["globex"].run_id is not None


@pytest.mark.parametrize("store_kind", STORE_KINDS)
def test_cutover_and_rollback_onto_a_worse_space_need_force_and_are_recorded(
    make_migration: MakeMigration, tmp_path: Path
) -> None:
    project = make_migration("minilm", "static")
    env = cli_env(project, tmp_path / "dagster")

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    assert run("backfill", "--space", "static").exit_code == 0
    evaluated = run("evaluate", "--space", "static", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    numbers = json.loads(evaluated.stdout)
    assert numbers["gate_passed"] is False and numbers["serving_space"] == "minilm"
    refused = run("cutover", "--alias", "docs", "--space", "static")
    assert refused.exit_code == 2 and "below serving 'minilm'" in refused.output
    retire = run("spaces", "retire", "minilm")  # the serving space cannot be retired
    assert retire.exit_code == 2 and "served by alias 'docs'" in retire.output
    forced = run("cutover", "--alias", "docs", "--space", "static", "--force", "--json")
    assert forced.exit_code == 0 and "WARNING: --force" in forced.stderr
    assert project.store.get_alias("docs") == project.spaces.get("static").space_id  # moved in the project's store
    swap = json.loads(forced.stdout)
    assert (swap["action"], swap["forced"], swap["who"], swap["to_space"]) == (
        "forced-cutover",
        True,
        "tester",
        "static",
    )
    assert "below serving" in swap["gate"]["reasons"][0]
    listing = json.loads(run("spaces", "--json").stdout)
    by_name = {s["name"]: s for s in listing["spaces"]}
    assert by_name["static"]["state"] == "serving" and by_name["static"]["aliases"] == ["docs"]
    assert by_name["minilm"]["state"] == "validated" and by_name["minilm"]["evaluation"]["recall@10"] > 0.9
    for key in ("model", "dimension", "metric", "chunker", "preprocessing", "deletion_policy", "tenants"):
        assert key in by_name["static"]
    assert {t["tenant"]: t["materialized"] for t in by_name["static"]["tenants"]} == {"acme": True, "globex": True}
    assert listing["history"][-1]["forced"] is True
    back = run("rollback", "--alias", "docs", "--json")
    assert back.exit_code == 0 and json.loads(back.stdout)["to_space"] == "minilm"
    assert json.loads(back.stdout)["forced"] is False

    # rolling back again would put the gate-refused space back into service: that needs --force
    again = run("rollback", "--alias", "docs")
    assert again.exit_code == 2
    assert "space 'static' refused" in again.stderr and "failed the cutover gate" in again.stderr
    assert "below serving" in again.stderr and "--force" in again.stderr
    assert project.store.get_alias("docs") == project.spaces.get("minilm").space_id
    forced_back = run("rollback", "--alias", "docs", "--force", "--json")
    assert forced_back.exit_code == 0 and "FORCED" in forced_back.stderr
    swap = json.loads(forced_back.stdout)
    assert (swap["action"], swap["forced"], swap["to_space"]) == ("forced-rollback", True, "static")
    assert project.store.get_alias("docs") == project.spaces.get("static").space_id
