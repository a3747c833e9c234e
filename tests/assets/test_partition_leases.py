"""A partition another run is writing: the ingest waits EMBEDOPS_LEASE_WAIT_S, then fails naming that run,
and has changed nothing; once the lease is free the same ingest goes through."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest

from embedops.core.embedder import SpaceEmbedder
from embedops.core.leases import Leases
from embedops.core.settings import Settings
from embedops.definitions import build_defs
from embedops.errors import RunFailedError
from tests.conftest import Project


def test_an_ingest_of_a_partition_being_written_fails_naming_the_other_run(
    tmp_path: Path, minilm: SpaceEmbedder
) -> None:
    settings = Settings(home=tmp_path / "home", sources_root=tmp_path / "sources", lease_wait_s=1.0)
    project = Project(settings, build_defs(settings), dg.DagsterInstance.ephemeral())
    project.write("acme", {"a.md": "# Lamps\n\nA lighthouse lamp burned whale oil, then kerosene."})
    other = Leases(settings.control_url).acquire("tables/source_documents/acme", "77aa88bb-another-run", wait=0)
    try:
        started = time.monotonic()
        with pytest.raises(RunFailedError, match=r"tables/source_documents/acme is being written by run 77aa88bb "):
            project.ingest("acme")
        assert time.monotonic() - started >= 1.0
        assert project.workspace.tables().dataset("source_documents", ("acme",)) is None  # nothing written
    finally:
        other.release()
    summary = project.ingest("acme")
    assert summary.documents == 1 and summary.index_rows == summary.chunks >= 1
