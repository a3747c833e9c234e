"""Runs whose process died are failed by Dagster's run monitoring, in-process runs included.

Dagster's run monitoring (``run_monitoring`` in dagster.yaml, run by the daemon) asks the run
launcher whether each STARTED run's worker is alive and fails the runs whose worker is gone. The
DefaultRunLauncher cannot answer, and runs that `embedops` commands execute in their own process
(``execute_in_process``) have no launcher-tracked worker at all: killed with ``kill -9``, they
would stay STARTED and hold their slot in the run queue forever.

So every in-process run carries its process as tags (``worker_tags``: host, PID, start time), and
``WatchedRunLauncher`` is the DefaultRunLauncher that answers the health check from them: a run
whose process is gone is FAILED, and the monitoring daemon marks it failed. A run without the tags
(launched through a code server, which fails runs whose worker process exits) or whose process is on
another host is reported RUNNING, as before. Set it in DAGSTER_HOME/dagster.yaml:

    run_launcher:
      module: embedops.pipelines.liveness
      class: WatchedRunLauncher
    run_monitoring:
      enabled: true

This uses Dagster's launcher health-check interface, which has no public equivalent; it comes from
``embedops.pipelines.dagster_internals``, whose test fails if an upgrade changes it.
"""

from __future__ import annotations

from dagster import DagsterInstance, DagsterRun, DefaultRunLauncher

from embedops.core.liveness import ProcessIdentity, is_alive, this_process
from embedops.pipelines.dagster_internals import CheckRunHealthResult, WorkerStatus

HOST_TAG, PID_TAG, STARTED_TAG = "embedops/host", "embedops/pid", "embedops/pid_started"


def worker_tags() -> dict[str, str]:
    """Tags naming this process, for a run executed in it."""
    me = this_process()
    return {HOST_TAG: me.host, PID_TAG: str(me.pid), STARTED_TAG: me.started}


def run_process(run: DagsterRun) -> ProcessIdentity | None:
    """The process a run was executed in, from its tags; None for a run without them."""
    tags = run.tags
    if HOST_TAG not in tags or not tags.get(PID_TAG, "").isdigit():
        return None
    return ProcessIdentity(tags[HOST_TAG], int(tags[PID_TAG]), tags.get(STARTED_TAG, ""))


class WatchedRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose worker health check knows the processes of in-process runs."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        process = run_process(run)
        if process is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no embedops process tags; not checked")
        alive = is_alive(process)
        if alive is False:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"{process}, which executed this run, is gone (killed or crashed) before the run ended; "
                "its steps did not finish and what they wrote was never made the latest. Re-run it",
            )
        where = "running" if alive else "on another host; not checked from here"
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"{process} is {where}")


def run_is_over(instance: DagsterInstance, run_id: str) -> bool:
    """True when Dagster records the run as finished, or the process that executed it (on this host) is gone:
    such a run no longer holds its partition leases. An unknown run, or one on another host, may be alive."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return False
    if run.is_finished:
        return True
    process = run_process(run)
    return process is not None and is_alive(process) is False
