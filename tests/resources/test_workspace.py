"""The config files are read once per run, sensor tick or command, and an edit applies from the next one,
also in a process that keeps its Definitions (a code server): Dagster builds resources anew each time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

import embedops.core.configfile as configfile
from embedops.core.embedder import SpaceEmbedder
from embedops.core.spaces import load_config
from embedops.pipelines.execution import execute_job
from embedops.pipelines.partitions import tenant_space_key
from embedops.pipelines.sensors import declared_spaces_sensor
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project, make_project

WIDE = "  - name: wide\n    chunker: {max_tokens: 200}\n"
NARROW = "  - name: narrow\n    chunker: {max_tokens: 30, overlap_tokens: 8, min_tokens: 4}\n"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every config file the loader reads, in order."""
    seen: list[Path] = []
    real = configfile._read_yaml

    def counting(file: Path, what: str, env_var: str) -> object:
        seen.append(file)
        return real(file, what, env_var)

    monkeypatch.setattr(configfile, "_read_yaml", counting)
    return seen


def _project(tmp_path: Path, spaces: str) -> tuple[Project, Path]:
    spaces_file = tmp_path / "spaces.yaml"
    spaces_file.write_text(f"alias: docs\nserving: wide\nspaces:\n{spaces}")
    project = make_project(tmp_path, spaces_file=spaces_file)
    project.write("acme", DOCS)
    return project, spaces_file


def test_a_run_reads_each_config_file_once(tmp_path: Path, minilm: SpaceEmbedder, reads: list[Path]) -> None:
    project, spaces_file = _project(tmp_path, WIDE)
    monitoring_file = project.settings.home / "monitoring.yaml"
    monitoring_file.parent.mkdir(parents=True, exist_ok=True)
    monitoring_file.write_text("list_limit: 20\n")
    project.ingest("acme")
    key = tenant_space_key("acme", "wide")

    # embed_space_job: chunks, embeddings, index and their checks each ask for the space config
    reads.clear()
    assert execute_job(project.defs, "embed_space_job", project.instance, key).success
    assert reads == [spaces_file]

    # the monitoring checks of the partition each ask for both files
    reads.clear()
    checks = {k for k in project.defs.resolve_asset_graph().asset_check_keys
              if k.asset_key.path[0] == "vector_index" and k.name != "sentinel_drift"}  # it loads the model anew
    result = execute_job(project.defs, "monitoring_checks_job", project.instance, key, check_keys=checks)
    assert len(result.get_asset_check_evaluations()) == len(checks) > 3
    assert sorted(reads) == sorted([spaces_file, monitoring_file])


def test_a_command_reads_the_space_config_once(
    tmp_path: Path, run: Callable[..., object], reads: list[Path]
) -> None:
    spaces_file = tmp_path / "home" / "spaces.yaml"  # found under EMBEDOPS_HOME
    spaces_file.parent.mkdir(parents=True)
    spaces_file.write_text(f"alias: docs\nspaces:\n{WIDE}{NARROW}")
    result = run("spaces", "--json")
    assert [s["name"] for s in json.loads(result.output)["spaces"]] == ["wide", "narrow"]  # type: ignore[attr-defined]
    assert reads.count(spaces_file) == 1


def test_an_edited_space_config_is_seen_by_the_next_tick_and_run_of_the_same_definitions(
    tmp_path: Path, minilm: SpaceEmbedder
) -> None:
    project, spaces_file = _project(tmp_path, WIDE)
    project.ingest("acme")
    # the sensor's resource as a code server passes it, tick after tick: the Definitions' own object
    workspace = project.defs.get_repository_def().get_top_level_resources()["workspace"]

    def tick() -> list[str]:
        with dg.build_sensor_context(instance=project.instance, resources={"workspace": workspace}) as context:
            result = declared_spaces_sensor(context)
        return [k for r in result.dynamic_partitions_requests for k in r.partition_keys]

    assert tick() == []  # "wide" is a partition already
    spaces_file.write_text(spaces_file.read_text() + NARROW)
    assert tick() == ["narrow"]

    project.instance.add_dynamic_partitions("spaces", ["narrow"])
    result = execute_job(project.defs, "embed_space_job", project.instance, tenant_space_key("acme", "narrow"))
    narrow = load_config(spaces_file).get("narrow")
    rows = project.store.export("acme", narrow.space_id).to_pylist()
    assert result.success and rows and {r["space_name"] for r in rows} == {"narrow"}
