"""A broken model is loud: the run fails or the failed documents keep their last vectors, marked stale.

Never does a failure of the model shrink the served index while everything reports success.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedops.core.embedder import _Model
from embedops.core.monitoring.reconcile import reconcile_tenant
from embedops.core.settings import control_url
from embedops.core.spaces import DEFAULT_SPACE
from embedops.core.stores.lance import LanceStore
from embedops.definitions import build_defs
from embedops.errors import RunFailedError
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project

real_encode = _Model.encode


def fail_on(marker: str, cause: str = "CUDA error: device-side assert triggered"):  # type: ignore[no-untyped-def]
    """An encode that raises for any batch holding a text with ``marker`` (every batch when it is empty)."""

    def encode(self: _Model, texts: list[str], batch_size: int) -> np.ndarray:
        if any(marker in t for t in texts):
            raise RuntimeError(cause)
        return real_encode(self, texts, batch_size)

    return encode


def index(project: Project) -> list[dict]:
    return project.store.export("acme", project.spaces.serving_space.space_id).to_pylist()


def reconciliation(project: Project):  # type: ignore[no-untyped-def]
    return reconcile_tenant(project.workspace.tables(), project.store, project.source("acme"), "acme",
                            project.spaces.serving_space)


def test_a_model_failing_on_every_text_fails_the_run_and_syncs_nothing(
    ingested: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = index(ingested)
    ingested.write("acme", {"lens.md": DOCS["lens.md"] + "\n\nA new paragraph about the lamp room."})
    shutil.rmtree(Path(ingested.workspace.settings.data_root) / "cache")  # nothing cached: every text goes to the model
    monkeypatch.setattr(_Model, "encode", fail_on(""))

    with pytest.raises(RunFailedError) as failed:
        ingested.ingest("acme")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"space {DEFAULT_SPACE.name!r} ({DEFAULT_SPACE.space_id}): model "
                              f"{DEFAULT_SPACE.model.identity} failed on")
    assert "first cause: RuntimeError: CUDA error: device-side assert triggered" in message
    assert "step chunk_embeddings" in message
    assert index(ingested) == served  # not one row deleted, none marked

    outcome = reconciliation(ingested)  # the new chunks of lens.md have no vectors: that is loud
    assert not outcome.passed and outcome.metadata["missing_chunks_total"] > 0


def test_below_the_allowed_share_failed_documents_keep_stale_vectors_and_are_retried(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dataclasses.replace(project.settings, max_model_failure_share=0.9)
    project.defs = build_defs(settings)
    project.write("acme", DOCS)
    project.ingest("acme")
    before = {r["chunk_id"]: r for r in index(project)}
    project.write("acme", {
        "intro.md": DOCS["intro.md"] + "\n\nThe last keeper left in 1990.",
        "lens.md": DOCS["lens.md"] + "\n\nZORBLAX polish was used on the prisms.",
        "new.md": "# Tides\n\nZORBLAX tables predict the tide at each harbour.",
    })
    monkeypatch.setattr(_Model, "encode", fail_on("ZORBLAX"))

    summary = project.ingest("acme")

    reasons = {q["path"]: q["reason"] for q in summary.quarantined}
    assert set(reasons) == {"lens.md", "new.md"}
    assert "CUDA error" in reasons["lens.md"] and "marked stale" in reasons["lens.md"]
    assert "no previous vectors" in reasons["new.md"]
    rows = index(project)
    lens = [r for r in rows if r["doc_id"] == "lens.md"]
    assert lens and all(r["stale"] for r in lens)
    assert all(r["chunk_id"] in before and r["text"] == before[r["chunk_id"]]["text"] for r in lens)
    assert not any(r["doc_id"] == "new.md" for r in rows)
    assert any("1990" in r["text"] and not r["stale"] for r in rows if r["doc_id"] == "intro.md")
    assert summary.stale_rows == len(lens)

    outcome = reconciliation(project)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert set(outcome.metadata["missing"]) == {"lens.md", "new.md"}
    assert "1 serving stale vectors after a model failure" in outcome.description

    monkeypatch.undo()  # the model is fixed; nobody touches the source
    retried = project.ingest("acme")
    assert retried.model_calls > 0 and retried.quarantined == []
    rows = index(project)
    assert not any(r["stale"] for r in rows)
    assert {r["doc_id"] for r in rows} == {"intro.md", "lens.md", "new.md", "notes/fog.txt"}
    assert any("ZORBLAX" in r["text"] for r in rows if r["doc_id"] == "new.md")
    assert reconciliation(project).passed


def _nan_weights(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    save_file({k: v * float("nan") if v.is_floating_point() else v for k, v in weights.items()},
              folder / "model.safetensors")


def test_nan_weights_in_the_model_folder_fail_the_run_and_the_check(tmp_path: Path, minilm, source: Path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_SPACE.model.model_dir(), model)
    spaces = tmp_path / "spaces.yaml"
    spaces.write_text(f"alias: docs\nspaces:\n  - name: local-minilm\n    dimension: 384\n"
                      f"    model: {{name: local-minilm, path: {model}}}\n")
    env = {"EMBEDOPS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "EMBEDOPS_SPACES": str(spaces), "EMBEDOPS_SOURCES": str(tmp_path / "sources"),
           "EMBEDOPS_MONITORING": None}

    def embedops(*args: str):  # type: ignore[no-untyped-def]
        from embedops.cli import main

        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    first = embedops("ingest", "--tenant", "acme", "--source", str(source), "--json")
    assert first.exit_code == 0, first.output
    served_space = json.loads(first.stdout)["space_id"]
    store = LanceStore(tmp_path / "home" / "data" / "lancedb", aliases=control_url(tmp_path / "home"))
    served = store.export("acme", served_space).to_pylist()

    _nan_weights(model)
    (source / "lens.md").write_text(DOCS["lens.md"] + "\n\nThe lamp burned whale oil, then kerosene.")
    broken = embedops("ingest", "--tenant", "acme")

    assert broken.exit_code == 2
    [line] = broken.stderr.splitlines()
    assert line.startswith("error: space 'local-minilm'") and "non-finite values" in line
    assert store.export("acme", served_space).to_pylist() == served
    assert store.get_alias("docs") == served_space

    check = embedops("check", "--tenant", "acme")
    assert check.exit_code == 1
    assert any(x.startswith("FAIL ERROR") and "reconciliation" in x for x in check.stdout.splitlines())


def test_a_model_folder_that_cannot_load_is_one_line_with_the_fix(tmp_path: Path, minilm, source: Path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_SPACE.model.model_dir(), model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])  # truncated, as by a full disk
    spaces = tmp_path / "spaces.yaml"
    spaces.write_text(f"alias: docs\nspaces:\n  - name: local-minilm\n    dimension: 384\n"
                      f"    model: {{name: local-minilm, path: {model}}}\n")
    env = {"EMBEDOPS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "EMBEDOPS_SPACES": str(spaces), "EMBEDOPS_SOURCES": str(tmp_path / "sources")}
    from embedops.cli import main

    result = CliRunner().invoke(main, ["ingest", "--tenant", "acme", "--source", str(source)], env=env)

    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: model 'local-minilm' could not be loaded from {model}")
    assert "fix the space's model 'path'" in line and "step chunk_embeddings" in line and "run " in line


def test_the_summary_reports_what_the_index_sync_did_after_a_crash(
    ingested: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingested.write("acme", {"lens.md": "# The Fresnel lens\n\nRewritten entirely, in one paragraph."})

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("vector store went away")

    monkeypatch.setattr(LanceStore, "sync", crash)
    with pytest.raises(RunFailedError, match="vector store went away"):
        ingested.ingest("acme")
    monkeypatch.undo()

    recovery = ingested.ingest("acme")  # the chunks and vectors were made by the crashed run

    assert (recovery.added, recovery.changed, recovery.deleted, recovery.model_calls) == (0, 0, 0, 0)
    assert recovery.index_upserted >= 1 and recovery.index_deleted >= 1
