"""Nothing half-done is served: a failed run leaves the index as it was; a re-run converges."""

from __future__ import annotations

import pytest

import embedops.assets.embeddings as embeddings_asset
import embedops.core.delta as delta
from embedops.errors import RunFailedError
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project


def test_a_failed_run_leaves_the_served_index_unchanged_and_a_rerun_converges(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write("acme", DOCS)
    project.ingest("acme")
    space_id = project.spaces.serving_space.space_id
    served = project.store.export("acme", space_id).to_pylist()

    project.write("acme", {"lens.md": "# The Fresnel lens\n\nRewritten entirely."})
    (project.source("acme") / "intro.md").unlink()

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("model server went away")

    monkeypatch.setattr(embeddings_asset, "embed_chunks", crash)  # a new table
    monkeypatch.setattr(delta, "embed_chunks", crash)  # a change of the table
    with pytest.raises(RunFailedError, match="model server went away"):
        project.ingest("acme")
    assert project.store.export("acme", space_id).to_pylist() == served
    assert project.store.get_alias("docs") == space_id

    monkeypatch.undo()
    summary = project.ingest("acme")
    rows = project.store.export("acme", space_id).to_pylist()
    assert {r["doc_id"] for r in rows} == {"lens.md", "notes/fog.txt"}
    assert any("Rewritten entirely" in r["text"] for r in rows)
    assert summary.index_rows == len(rows)
    assert project.ingest("acme").model_calls == 0
