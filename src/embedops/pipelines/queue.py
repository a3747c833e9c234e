"""The run queue, hottest tenant first, whoever launches the runs.

``HotFirstRunCoordinator`` is Dagster's QueuedRunCoordinator with two additions. A run that does not
say who launched it gets ``embedops/launched_by`` (``backfill:ID``, ``sensor:NAME``, ``schedule:NAME`` or
``ui``). A tenant x space run that arrives without a ``dagster/priority`` tag gets its tenant's place
in the backfill order (recorded searches, then the configured weight) as that tag before it is queued. The daemon
dequeues the highest priority first, so a partition backfill launched from the Dagster UI, whose
runs Dagster tags only with their partition, runs hottest tenant first like `embedops backfill`.
Runs that already carry a priority (the backfill command, space_backfill_sensor, a person's tag)
keep it. Set it in DAGSTER_HOME/dagster.yaml:

    run_coordinator:
      module: embedops.pipelines.queue
      class: HotFirstRunCoordinator
      config: {max_concurrent_runs: 2}

The process that queues runs (the daemon for backfills and sensors, the webserver for launches
from the UI) reads EMBEDOPS_HOME and EMBEDOPS_SPACES from its environment, as the code location does.
"""

from __future__ import annotations

import logging

import dagster as dg

from embedops.core.settings import Settings
from embedops.pipelines.backfill import PRIORITY_TAG, backfill_order, priority_tags
from embedops.pipelines.dagster_internals import instance_of
from embedops.pipelines.execution import LAUNCHED_BY, launcher_of
from embedops.pipelines.in_flight import TENANT_TAG
from embedops.resources import WorkspaceResource

log = logging.getLogger(__name__)


class HotFirstRunCoordinator(dg.QueuedRunCoordinator):
    """QueuedRunCoordinator that tags who launched a run and gives tenant x space runs their tenant's
    hotness as priority."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        tenant = run.tags.get(TENANT_TAG)
        if run.status == dg.DagsterRunStatus.NOT_STARTED:
            tags = {} if LAUNCHED_BY in run.tags else launcher_of(dict(run.tags))  # the runs list says who
            if tenant and PRIORITY_TAG not in run.tags:
                tags.update(self._hotness_tags(tenant))
            if tags:
                instance = instance_of(self)
                instance.add_run_tags(run.run_id, tags)
                tagged = instance.get_run_by_id(run.run_id) or run
                context = dg.SubmitRunContext(tagged, context.workspace)
        return super().submit_run(context)

    def _hotness_tags(self, tenant: str) -> dict[str, str]:
        try:
            order = backfill_order(WorkspaceResource.from_settings(Settings.from_env()), instance_of(self))
        except Exception as exc:  # a run must never be lost for want of a priority
            log.warning(f"run queue: no hotness priority for tenant {tenant!r} ({type(exc).__name__}: {exc})")
            return {}
        for hot in order:
            if hot.tenant == tenant:
                return priority_tags(hot)
        return {}
