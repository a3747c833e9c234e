"""The Definitions load, validate with Dagster's own command, and hold what the UI shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

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


def test_the_ui_says_what_every_sensor_and_schedule_does() -> None:
    automations = [*defs.sensors, *defs.schedules]  # type: ignore[misc]
    assert {a.name for a in automations if not a.description} == set()
    assert len(automations) == 11


def test_the_checks_jobs_have_a_partition_picker_and_run_in_one_process() -> None:
    for job, dimensions in (("monitoring_checks_job", ["space", "tenant"]), ("source_checks_job", None)):
        job_def = defs.resolve_job_def(job)
        partitions = job_def.partitions_def
        assert partitions is not None, job
        assert getattr(partitions, "partition_dimension_names", None) == dimensions
        assert job_def.executor_def.name == "in_process"


def test_golden_set_evaluation_reads_the_index_in_the_lineage_graph() -> None:
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get(dg.AssetKey("golden_set_evaluation")).parent_keys} == {
        "vector_index"
    }
