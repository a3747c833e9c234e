from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from embedops.core.monitoring.config import MonitoringConfig, config_path, load_monitoring
from embedops.core.monitoring.pager import PagerOutbox
from embedops.core.monitoring.state import MonitoringState


class MonitoringResource(dg.ConfigurableResource):
    """Check thresholds and staleness policies (monitoring.yaml) and the state checks keep in EMBEDOPS_HOME.

    Without ``config_file``, $EMBEDOPS_MONITORING or <home>/monitoring.yaml is read at each evaluation,
    so a changed threshold applies from the next check on.
    """

    home: str
    config_file: str | None = None

    def config(self) -> MonitoringConfig:
        path = Path(self.config_file) if self.config_file else config_path(Path(self.home), dict(os.environ))
        return load_monitoring(path)

    def state(self) -> MonitoringState:
        return MonitoringState.at(Path(self.home))

    def outbox(self) -> PagerOutbox:
        return PagerOutbox.at(Path(self.home))
