"""Searching during a migration: --fuse (rank fusion, never mixed vectors) and --adapter (Drift-Adapter).

The searches during a backfill run on LanceDB and on Weaviate (the fake server).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from embedops.cli import main
from embedops.core.adapter import adapter_path
from embedops.core.cache import EmbeddingCache
from embedops.core.embedder import SpaceEmbedder
from embedops.core.evaluation import fit_and_evaluate_adapter
from embedops.core.golden import load_beir
from embedops.core.migration import rrf_fuse
from embedops.core.search import search_tenant
from embedops.core.settings import control_url
from embedops.core.spaces import ChunkerSpec, ModelSpec, SpaceSpec
from embedops.core.stores.lance import LanceStore
from embedops.core.tables import TableStore
from embedops.pipelines.backfill import run_backfill
from tests.migration.conftest import STORE_KINDS, MakeMigration, cli_env

QUERY = "when is a failed card payment retried"


@pytest.mark.parametrize("store_kind", STORE_KINDS)
def test_fuse_and_adapter_searches_during_a_backfill(
    make_migration: MakeMigration, golden_dir: Path, tmp_path: Path
) -> None:
    project = make_migration("static", "minilm")
    store, spaces = project.store, project.spaces
    static, minilm = spaces.get("static"), spaces.get("minilm")
    run_backfill(project.defs, project.instance, minilm)
    env = cli_env(project, tmp_path / "dagster")

    def run(*args: str) -> dict:
        result = CliRunner().invoke(main, [*args, "--json"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    # --fuse: each space searched alone with its own query vector; only ranks are combined
    fused = run("search", QUERY, "--tenant", "acme", "--fuse", "-k", "4")
    assert fused["fused"] == ["static", "minilm"] and fused["method"] == "rrf"
    separate = {s.name: search_tenant(store, s, SpaceEmbedder(s), "acme", QUERY, k=4) for s in (static, minilm)}
    for name, space in (("static", static), ("minilm", minilm)):
        assert {h.provenance["space_id"] for h in separate[name]} == {space.space_id}
    expected = rrf_fuse(separate, 4)
    assert [h["chunk_id"] for h in fused["hits"]] == [f.hit.chunk_id for f in expected]
    assert [h["ranks"] for h in fused["hits"]] == [f.ranks for f in expected]
    assert fused["hits"][0]["doc_id"] == "billing.md" and set(fused["hits"][0]["ranks"]) == {"static", "minilm"}

    # --adapter: MiniLM query vectors mapped into the static space, searching the static index
    golden = load_beir(golden_dir)
    bridge = fit_and_evaluate_adapter(
        golden,
        minilm,
        static,
        SpaceEmbedder,
        project.workspace.cache(),
        store,
        project.workspace.tables(),
        tenant_chunks=[],
        sample=500,
    )
    report = bridge.report
    chance = 10 / len(golden.corpus)
    assert bridge.method == "least-squares" and bridge.matrix.shape == (384, 64)
    assert report["new_recall@10"] > report["old_recall@10"] > report["adapter_recall@10"] > chance
    assert report["recovered_fraction"] == round(report["adapter_recall@10"] / report["new_recall@10"], 4)
    assert 0 < report["added_latency_us"] < 1000
    bridge.save(adapter_path(project.settings.data_root, "minilm", "static"))
    bridged = run("search", QUERY, "--tenant", "acme", "--adapter", "-k", "3")
    assert bridged["adapter"] == {"from": "minilm", "to": "static", "method": "least-squares"}
    assert bridged["space_id"] == static.space_id
    assert {h["provenance"]["space_id"] for h in bridged["hits"]} == {static.space_id}


def test_an_adapter_between_compatible_spaces_recovers_the_recall(golden_dir: Path, tmp_path: Path) -> None:
    """Same model, another chunker: Procrustes finds ~the identity and recovers ~all of the recall."""
    model = ModelSpec(name="tokenlearn-static", backend="model2vec", package="static_model")
    old = SpaceSpec(name="static", model=model, dimension=64)
    new = SpaceSpec(name="static-c64", model=model, dimension=64, chunker=ChunkerSpec(64, 8, 16))
    bridge = fit_and_evaluate_adapter(
        load_beir(golden_dir),
        new,
        old,
        SpaceEmbedder,
        EmbeddingCache(str(tmp_path / "data")),
        LanceStore(tmp_path / "lance", aliases=control_url(tmp_path)),
        TableStore(tmp_path / "tables"),
        tenant_chunks=[],
    )
    assert bridge.method == "procrustes"
    assert bridge.report["recovered_fraction"] >= 0.95
    assert abs(bridge.report["adapter_recall@10"] - bridge.report["old_recall@10"]) <= 0.03
