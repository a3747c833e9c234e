"""A run killed with kill -9 in the middle of a step: nothing half-written is served, its queue slot is freed.

Real parts: `embedops ingest` in its own process, stopped by SIGKILL while its source_documents step
runs; the Dagster instance in DAGSTER_HOME (SQLite) with the project's dagster.yaml; a real
`dagster-daemon` whose run monitoring fails the dead run and whose queue then launches the next one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.fs as pafs
import pytest
import yaml

from embedops.core.settings import Settings
from embedops.core.tables import TableStore
from embedops.definitions import build_defs
from embedops.pipelines.liveness import PID_TAG
from embedops.pipelines.runs import run_ingest
from tests.migration.conftest import STATIC
from tests.processes import Background, wait_for
from tests.state import state_env

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# `embedops ingest` that stalls in source_documents once its sources are read and written, just
# before the step's last act (writing the quarantine list): rows written, the new version not yet
# committed.
STALLING_INGEST = """
import sys, time, pathlib
from embedops.core import tables
from embedops.core.tables import TableStore
tables.FLUSH_BYTES = 1  # its rows reach storage as they are written, before the commit
from embedops.core import sources
sources.MAX_CHANGE_BYTES = 0  # a new table even for a small change (which is otherwise held and merged, last)
write = TableStore.write
def stall(self, asset, partition, table, run_id="local"):
    if asset == "source_quarantine":
        pathlib.Path(sys.argv[1]).write_text("stalled")
        time.sleep(600)
    return write(self, asset, partition, table, run_id)
TableStore.write = stall
from embedops.cli import main
main(sys.argv[2:])
"""


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    """Tenant acme ingested once into the static space, on the instance of the project's dagster.yaml."""
    spaces_file = tmp_path / "spaces.yaml"
    spaces_file.write_text(yaml.safe_dump({"alias": "docs", "serving": "static", "spaces": [STATIC]}))
    env = {
        **os.environ,
        "EMBEDOPS_HOME": str(tmp_path / "home"),
        "EMBEDOPS_SOURCES": str(tmp_path / "sources"),
        "EMBEDOPS_SPACES": str(spaces_file),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "HF_HUB_OFFLINE": "1",
        **state_env(),
    }
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["run_monitoring"]["enabled"] is True
    config["run_monitoring"]["poll_interval_seconds"] = 1
    config["run_coordinator"]["config"].update(max_concurrent_runs=1, dequeue_interval_seconds=1)
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text(yaml.safe_dump({**config, "telemetry": {"enabled": False}}))
    settings = Settings.from_env(env)
    folder = settings.sources_root / "acme"
    folder.mkdir(parents=True)
    (folder / "guide.md").write_text("# Acme\n\nAcme ships parcels and rotates its API keys every month.\n")
    defs = build_defs(settings)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        run_ingest(defs, instance, "acme", [defs.resources["workspace"].spaces().get("static")], source=folder)  # type: ignore[attr-defined]
    (folder / "billing.md").write_text("# Billing\n\nAcme bills monthly; a failed payment is retried.\n")
    (folder / "empty.md").write_text("")  # a new refusal: the next run writes its quarantine list (where it stalls)
    return env


def _kill_ingest_mid_step(env: dict[str, str], tmp_path: Path) -> None:
    """Start `embedops ingest --tenant acme`, wait until it stalls inside source_documents, kill -9 it."""
    ready = tmp_path / "stalled"
    log = tmp_path / "ingest.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", STALLING_INGEST, str(ready), "ingest", "--tenant", "acme"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_for(lambda: ready.exists() or proc.poll() is not None, 120, "the ingest to stall mid-step")
            assert ready.exists(), log.read_text()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _tables(env: dict[str, str]) -> TableStore:
    return build_defs(Settings.from_env(env)).resources["workspace"].tables()  # type: ignore[attr-defined, no-any-return]


def _data_files(url: str) -> list[pafs.FileInfo]:
    """The data files in a Lance dataset's folder, on a local disk or an object store (committed or not)."""
    fs, path = pafs.FileSystem.from_uri(url)
    return fs.get_file_info(pafs.FileSelector(f"{path}/data", allow_not_found=True))


def _docs_runs(env: dict[str, str]) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return list(instance.get_runs(dg.RunsFilter(job_name="source_documents_job")))  # newest first


def test_a_run_killed_mid_step_leaves_the_previous_version_latest_and_a_rerun_converges(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    env, tables = deployment, _tables(deployment)
    good = tables.latest("source_documents", ("acme",))
    assert good is not None and tables.read("source_documents", ("acme",)).num_rows == 1  # type: ignore[union-attr]

    _kill_ingest_mid_step(env, tmp_path)  # killed after writing its rows, before its commit
    assert tables.latest("source_documents", ("acme",)) == good  # not the dead run's table
    latest = tables.dataset("source_documents", ("acme",))
    assert latest is not None
    referenced = sum(len(fragment.data_files()) for fragment in latest.get_fragments())
    assert len(_data_files(good[0])) > referenced, "the killed run wrote no rows before the kill"
    assert tables.read("source_documents", ("acme",)).num_rows == 1  # type: ignore[union-attr]

    settings = Settings.from_env(env)
    defs = build_defs(settings)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        run_ingest(defs, instance, "acme", [defs.resources["workspace"].spaces().get("static")])  # type: ignore[attr-defined]
    url, version = tables.latest("source_documents", ("acme",))  # type: ignore[misc]
    assert url == good[0] and version == good[1] + 1  # the re-run's commit follows the last good one
    docs = tables.read("source_documents", ("acme",))
    assert docs is not None and sorted(docs.column("doc_id").to_pylist()) == ["billing.md", "guide.md"]
    # and the chunks caught up with both documents in the same run
    chunks = tables.read("document_chunks", ("acme", "static"))
    assert chunks is not None and set(chunks.column("doc_id").to_pylist()) == {"billing.md", "guide.md"}


def test_a_killed_ingest_is_marked_failed_and_the_queue_moves_again(
    deployment: dict[str, str], tmp_path: Path
) -> None:
    env = deployment
    _kill_ingest_mid_step(env, tmp_path)
    dead = _docs_runs(env)[0]
    assert dead.status == dg.DagsterRunStatus.STARTED and dead.tags[PID_TAG]  # what a kill -9 leaves behind

    # one run slot, held by the dead run: tenant_folders_sensor's run for the changed folder waits behind it
    daemon = Background([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
                        tmp_path / "daemon.log", env, cwd=REPO)
    try:
        wait_for(lambda: _docs_runs(env)[0].run_id != dead.run_id, 120, "the sensor's run", daemon)
        wait_for(lambda: _status(env, dead.run_id) == dg.DagsterRunStatus.FAILURE, 120,
                 "run monitoring to fail the dead run", daemon)
        nxt = _docs_runs(env)[0]
        wait_for(lambda: _status(env, nxt.run_id) == dg.DagsterRunStatus.SUCCESS, 180, "the queued run", daemon)
    finally:
        daemon.stop()
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        failure = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert f"process {dead.tags[PID_TAG]} on host" in "".join(str(e.message) for e in failure)
    tables = _tables(env)
    assert tables.read("source_documents", ("acme",)).num_rows == 2  # type: ignore[union-attr]


def _status(env: dict[str, str], run_id: str) -> dg.DagsterRunStatus | None:
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        run = instance.get_run_by_id(run_id)
        return run.status if run else None
