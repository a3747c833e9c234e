from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import dagster as dg

from embedops.core.monitoring.config import MonitoringConfig, config_path, load_monitoring
from embedops.core.monitoring.pager import PagerOutbox
from embedops.core.monitoring.state import MonitoringState
from embedops.core.settings import control_url
from embedops.resources.vector_store import field_value


class MonitoringResource(dg.ConfigurableResource):
    """Check thresholds and staleness policies (monitoring.yaml) and the state checks keep in EMBEDOPS_HOME.

    Without ``config_file``, $EMBEDOPS_MONITORING or <home>/monitoring.yaml is read, once per resource
    instance: Dagster builds one for each run and sensor tick, so a changed threshold applies from the
    next run of the checks on.
    """

    home: str
    config_file: str | None = None
    database_url: str = ""  # the control database (see WorkspaceResource.database_url); empty: SQLite in home

    @cached_property
    def _config(self) -> MonitoringConfig:
        path = Path(self.config_file) if self.config_file else config_path(Path(self.home), dict(os.environ))
        return load_monitoring(path)

    def config(self) -> MonitoringConfig:
        return self._config

    def control_url(self) -> str:
        return control_url(Path(self.home), field_value(self.database_url) or "")

    def state(self) -> MonitoringState:
        return MonitoringState(self.control_url())

    def outbox(self) -> PagerOutbox:
        return PagerOutbox(self.control_url())
