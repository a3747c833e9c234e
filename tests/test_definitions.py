"""The Definitions load, validate with Dagster's own command, and hold what the UI shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from embedops.definitions import defs


def test_definitions_hold_the_asset_graph() -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"source_documents", "document_chunks", "chunk_embeddings", "vector_index"} <= keys
    assert defs.resolve_job_def("embed_space_job") is not None


def test_dagster_definitions_validate_passes(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "EMBEDOPS_HOME": str(tmp_path / "home")}
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "embedops.definitions"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
