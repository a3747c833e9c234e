"""Monitoring thresholds and staleness policies, read from a YAML file with documented defaults.

The file is ``$EMBEDOPS_MONITORING`` when set, else ``$EMBEDOPS_HOME/monitoring.yaml``; without
either, the defaults below apply. See docs/monitoring.md for the format.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedops.core.yamlfile import read_yaml
from embedops.errors import ConfigError

POLICIES = ("never", "daily", "weekly", "on_change", "on_model_upgrade")


@dataclass(frozen=True)
class SentinelConfig:
    """Mean cosine distance of re-embedded sentinel chunks: below ``pass_below`` is clean."""

    sample: int = 100
    pass_below: float = 0.005
    warn_at: float = 0.02
    error_at: float = 0.05


@dataclass(frozen=True)
class NeighbourConfig:
    """Top-k overlap of fixed queries with the previous evaluation."""

    queries_per_tenant: int = 20
    k: int = 10
    warn_below: float = 0.85
    error_below: float = 0.70
    queries: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class DistributionConfig:
    """Centroid cosine distance and relative mean-norm change against the first materialization."""

    centroid_warn: float = 0.1
    centroid_error: float = 0.25
    norm_warn: float = 0.05
    norm_error: float = 0.10


@dataclass(frozen=True)
class PolicyRule:
    pattern: str
    policy: str


@dataclass(frozen=True)
class FreshnessConfig:
    """Lag SLO (hours) and the staleness policy of each document, chosen by its first matching pattern."""

    slo_p99_hours: float = 24.0
    slo_p50_hours: float | None = None
    on_change_grace_hours: float = 24.0
    default_policy: str = "on_change"
    policies: tuple[PolicyRule, ...] = ()


@dataclass(frozen=True)
class MonitoringConfig:
    list_limit: int = 50
    trend_length: int = 10
    sentinel: SentinelConfig = field(default_factory=SentinelConfig)
    nn_stability: NeighbourConfig = field(default_factory=NeighbourConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)
    freshness: FreshnessConfig = field(default_factory=FreshnessConfig)


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {unknown}; known: {sorted(names)}")
    return cls(**raw)


def parse_monitoring(data: dict[str, Any] | None, source: str = "monitoring config") -> MonitoringConfig:
    """Build the config from a parsed YAML mapping, naming ``source`` in every error."""
    data = dict(data or {})
    sections = {
        "sentinel": SentinelConfig,
        "nn_stability": NeighbourConfig,
        "distribution": DistributionConfig,
    }
    kwargs: dict[str, Any] = {
        key: _build(cls, data.pop(key, None), f"{source}: {key}") for key, cls in sections.items()
    }
    fresh = dict(data.pop("freshness", None) or {})
    rules = []
    for i, rule in enumerate(fresh.pop("policies", None) or []):
        if not isinstance(rule, dict) or set(rule) != {"pattern", "policy"}:
            raise ConfigError(f"{source}: freshness.policies[{i}] needs exactly 'pattern' and 'policy'")
        rules.append(PolicyRule(str(rule["pattern"]), str(rule["policy"])))
    kwargs["freshness"] = _build(FreshnessConfig, {**fresh, "policies": tuple(rules)}, f"{source}: freshness")
    for name in ("list_limit", "trend_length"):
        if name in data:
            kwargs[name] = int(data.pop(name))
    if data:
        raise ConfigError(f"{source}: unknown section(s) {sorted(data)}")
    config = MonitoringConfig(**kwargs)
    _validate(config, source)
    return config


def _validate(config: MonitoringConfig, source: str) -> None:
    f = config.freshness
    for policy in [f.default_policy, *(r.policy for r in f.policies)]:
        if policy not in POLICIES:
            raise ConfigError(f"{source}: staleness policy {policy!r} is not one of {POLICIES}")
    s, n, d = config.sentinel, config.nn_stability, config.distribution
    if not s.pass_below <= s.warn_at <= s.error_at:
        raise ConfigError(f"{source}: sentinel needs pass_below <= warn_at <= error_at")
    if not n.error_below <= n.warn_below:
        raise ConfigError(f"{source}: nn_stability needs error_below <= warn_below")
    if not (d.centroid_warn <= d.centroid_error and d.norm_warn <= d.norm_error):
        raise ConfigError(f"{source}: distribution warn thresholds must not exceed error thresholds")
    if s.sample < 1 or n.queries_per_tenant < 1 or n.k < 1:
        raise ConfigError(f"{source}: sentinel.sample, nn_stability.queries_per_tenant and k must be >= 1")


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
    data = read_yaml(path, "monitoring config", "EMBEDOPS_MONITORING")
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"monitoring config {path}: expected a mapping at the top level")
    return parse_monitoring(data, source=f"monitoring config {path}")
