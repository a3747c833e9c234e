"""Monitoring thresholds and staleness policies, read from a YAML file with documented defaults.

The file is ``$EMBEDOPS_MONITORING`` when set, else ``$EMBEDOPS_HOME/monitoring.yaml``; without
either, the defaults below apply. See docs/monitoring.md for the format.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Any

from pydantic import StrictFloat, StrictInt, StrictStr
from pydantic.dataclasses import dataclass

from embedops.core.configfile import STRICT, parse_config_data, read_config

POLICIES = ("never", "daily", "weekly", "on_change", "on_model_upgrade")

# Rules below raise ValueError: the config loader reports it at the key, with the file (pydantic's protocol).


@dataclass(frozen=True, config=STRICT)
class SentinelConfig:
    """Mean cosine distance of re-embedded sentinel chunks: below ``pass_below`` is clean."""

    sample: StrictInt = 100
    pass_below: StrictFloat = 0.005
    warn_at: StrictFloat = 0.02
    error_at: StrictFloat = 0.05

    def __post_init__(self) -> None:
        if not self.pass_below <= self.warn_at <= self.error_at:
            raise ValueError("needs pass_below <= warn_at <= error_at")
        if self.sample < 1:
            raise ValueError("sample must be >= 1")


@dataclass(frozen=True, config=STRICT)
class NeighbourConfig:
    """Top-k overlap of fixed queries with the previous evaluation."""

    queries_per_tenant: StrictInt = 20
    k: StrictInt = 10
    warn_below: StrictFloat = 0.85
    error_below: StrictFloat = 0.70
    queries: dict[StrictStr, list[StrictStr]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.error_below <= self.warn_below:
            raise ValueError("needs error_below <= warn_below")
        if self.queries_per_tenant < 1 or self.k < 1:
            raise ValueError("queries_per_tenant and k must be >= 1")


@dataclass(frozen=True, config=STRICT)
class DistributionConfig:
    """Centroid cosine distance and relative mean-norm change against the first materialization."""

    centroid_warn: StrictFloat = 0.1
    centroid_error: StrictFloat = 0.25
    norm_warn: StrictFloat = 0.05
    norm_error: StrictFloat = 0.10

    def __post_init__(self) -> None:
        if not (self.centroid_warn <= self.centroid_error and self.norm_warn <= self.norm_error):
            raise ValueError("warn thresholds must not exceed error thresholds")


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"staleness policy {policy!r} is not one of {POLICIES}")


@dataclass(frozen=True, config=STRICT)
class PolicyRule:
    pattern: StrictStr
    policy: StrictStr

    def __post_init__(self) -> None:
        _check_policy(self.policy)


@dataclass(frozen=True, config=STRICT)
class FreshnessConfig:
    """Lag SLO (hours) and the staleness policy of each document, chosen by its first matching pattern."""

    slo_p99_hours: StrictFloat = 24.0
    slo_p50_hours: StrictFloat | None = None
    on_change_grace_hours: StrictFloat = 24.0
    default_policy: StrictStr = "on_change"
    policies: tuple[PolicyRule, ...] = ()

    def __post_init__(self) -> None:
        _check_policy(self.default_policy)


@dataclass(frozen=True, config=STRICT)
class ReplicationSlotConfig:
    """WAL a table source's slot may hold on the source database before the check warns, then pages."""

    warn_bytes: StrictInt = 256 * 1024 * 1024
    error_bytes: StrictInt = 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.warn_bytes <= self.error_bytes:
            raise ValueError("warn_bytes must be positive and at most error_bytes")


@dataclass(frozen=True, config=STRICT)
class MonitoringConfig:
    list_limit: StrictInt = 50
    trend_length: StrictInt = 10
    sentinel: SentinelConfig = field(default_factory=SentinelConfig)
    nn_stability: NeighbourConfig = field(default_factory=NeighbourConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)
    freshness: FreshnessConfig = field(default_factory=FreshnessConfig)
    replication_slot: ReplicationSlotConfig = field(default_factory=ReplicationSlotConfig)


def parse_monitoring(data: Any, source: str = "monitoring config") -> MonitoringConfig:
    """The MonitoringConfig of a parsed YAML mapping, naming ``source`` in every error."""
    return parse_config_data(data, MonitoringConfig, source)


def config_path(home: Path, environ: dict[str, str]) -> Path | None:
    """The monitoring file in effect: $EMBEDOPS_MONITORING, else <home>/monitoring.yaml if present."""
    if environ.get("EMBEDOPS_MONITORING"):
        return Path(environ["EMBEDOPS_MONITORING"]).expanduser().resolve()
    default = home / "monitoring.yaml"
    return default if default.is_file() else None


def load_monitoring(path: str | Path | None) -> MonitoringConfig:
    """Read the monitoring file at ``path``; with no path, the defaults."""
    if path is None:
        return MonitoringConfig()
    return read_config(path, MonitoringConfig, "monitoring config", "EMBEDOPS_MONITORING")
