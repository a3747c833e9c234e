"""The Dagster internals embedops relies on (pipelines/dagster_internals.py) exist and behave as relied on.

When one of these fails after a Dagster upgrade, the upgrade moved or changed a private API: adapt
dagster_internals.py (and only it), or look for a public replacement.
"""

import inspect
from pathlib import Path

import dagster as dg
import yaml
from dagster._daemon.monitoring import run_monitoring

from embedops.pipelines.dagster_internals import (
    CheckRunHealthResult,
    WorkerStatus,
    instance_of,
    latest_check_evaluations,
)
from embedops.pipelines.liveness import WatchedRunLauncher
from embedops.pipelines.queue import HotFirstRunCoordinator

REPO = Path(__file__).resolve().parents[2]
letters = dg.StaticPartitionsDefinition(["a", "b"])


@dg.asset(partitions_def=letters)
def letter(context: dg.AssetExecutionContext) -> str:
    return str(context.partition_key)


@dg.asset_check(asset=letter, partitions_def=letters)
def is_a(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    key = str(context.partition_key)
    return dg.AssetCheckResult(passed=key == "a", severity=dg.AssetCheckSeverity.ERROR, description=f"saw {key}",
                               metadata={"failing_ids": dg.MetadataValue.json([] if key == "a" else [key])})


def _materialize(instance: dg.DagsterInstance, partition: str) -> str:
    return dg.materialize([letter, is_a], instance=instance, partition_key=partition).run_id


def test_the_latest_evaluation_of_each_check_partition_after_a_storage_id() -> None:
    instance = dg.DagsterInstance.ephemeral()
    runs = {p: _materialize(instance, p) for p in ("a", "b")}
    found, cursor = latest_check_evaluations(instance, [is_a.check_key], None)
    assert {(r.partition, r.evaluation.passed, r.run_id) for r in found} == {("a", True, runs["a"]),
                                                                            ("b", False, runs["b"])}
    failing = next(r for r in found if r.partition == "b")
    assert failing.check_key == is_a.check_key and failing.evaluation.description == "saw b"
    assert failing.evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert failing.evaluation.metadata["failing_ids"].value == ["b"]

    assert latest_check_evaluations(instance, [is_a.check_key], cursor) == ([], cursor)
    again = _materialize(instance, "b")
    found, later = latest_check_evaluations(instance, [is_a.check_key], cursor)
    assert later > cursor and [(r.partition, r.run_id) for r in found] == [("b", again)]


def test_the_launcher_health_check_is_the_interface_run_monitoring_calls() -> None:
    assert list(inspect.signature(dg.DefaultRunLauncher.check_run_worker_health).parameters) == ["self", "run"]
    assert isinstance(inspect.getattr_static(dg.DefaultRunLauncher, "supports_check_run_worker_health"), property)
    daemon = inspect.getsource(run_monitoring)
    assert "supports_check_run_worker_health" in daemon and ".check_run_worker_health(" in daemon
    assert "WorkerStatus.FAILED" in daemon  # what makes the daemon fail the run
    result = CheckRunHealthResult(WorkerStatus.FAILED, "its process is gone")
    assert (result.status, result.msg) == (WorkerStatus.FAILED, "its process is gone")
    assert {"RUNNING", "FAILED"} <= set(WorkerStatus.__members__)


def test_the_coordinator_and_launcher_of_the_projects_dagster_yaml_reach_their_instance(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({**config, "telemetry": {"enabled": False}}))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, HotFirstRunCoordinator)
        assert isinstance(instance.run_launcher, WatchedRunLauncher)
        assert instance_of(instance.run_coordinator) is instance
        assert instance_of(instance.run_launcher) is instance
