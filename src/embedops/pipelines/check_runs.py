"""Running the checks through Dagster for `embedops check`, and reading back what each one found.

Every run lands in the Dagster instance (DAGSTER_HOME), so the UI shows each evaluation per partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg

from embedops.assets.metadata import plain
from embedops.core.spaces import SpacesConfig
from embedops.core.tenants import validate_tenant
from embedops.errors import NotMaterializedError, UnknownCheckError
from embedops.pipelines.execution import execute_job, step_failures
from embedops.pipelines.jobs import TENANT_ASSETS, TENANT_SPACE_ASSETS, monitoring_checks_job, source_checks_job
from embedops.pipelines.partitions import register_partitions, tenant_space_key, tenant_space_partitions


def check_keys(keys: Iterable[dg.AssetCheckKey], assets: Iterable[str]) -> list[dg.AssetCheckKey]:
    """The checks (of ``keys``) that target one of ``assets``, in a stable order."""
    wanted = {dg.AssetKey(a) for a in assets}
    return sorted((k for k in keys if k.asset_key in wanted), key=lambda k: (k.asset_key.to_string(), k.name))


@dataclass
class CheckReport:
    """One check's evaluation on one partition (an item of `embedops check --json`)."""

    check: str
    asset: str
    tenant: str
    space: str | None
    passed: bool
    severity: str
    description: str
    ids: list[str] = field(default_factory=list)
    run_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return not self.passed and self.severity == "ERROR"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def targets(
    instance: dg.DagsterInstance, spaces: SpacesConfig, store: Any, tenant: str | None, space: str | None
) -> tuple[list[tuple[str, str]], list[str]]:
    """(tenant, space) pairs with an index and tenants with sources: materialized in Dagster or in the store."""
    pairs = set()
    for raw in instance.get_materialized_partitions(dg.AssetKey("vector_index")):
        dims = tenant_space_partitions.get_partition_key_from_str(raw).keys_by_dimension
        if dims["space"] in spaces.names:
            pairs.add((dims["tenant"], dims["space"]))
    for declared in spaces.spaces:
        pairs.update((t, declared.name) for t in store.tenants(declared.space_id))
    tenants = set(instance.get_materialized_partitions(dg.AssetKey("source_documents")))
    if space is not None:
        spaces.get(space)
        pairs = {p for p in pairs if p[1] == space}
    if tenant is not None:
        validate_tenant(tenant)
        pairs, tenants = {p for p in pairs if p[0] == tenant}, tenants & {tenant}
        if not pairs and not tenants:
            raise NotMaterializedError(
                f"tenant {tenant!r} has nothing materialized{f' in space {space!r}' if space else ''}; "
                f"run `embedops ingest --tenant {tenant}` first"
            )
    return sorted(pairs), sorted(tenants)


def _reports(result: dg.ExecuteInProcessResult, tenant: str, space: str | None) -> list[CheckReport]:
    reports = []
    for e in result.get_asset_check_evaluations():
        metadata: dict[str, Any] = plain(e.metadata)
        reports.append(CheckReport(
            check=e.check_name, asset=e.asset_key.to_user_string(), tenant=tenant, space=space, passed=e.passed,
            severity=e.severity.value, description=e.description or "", ids=list(metadata.pop("failing_ids", [])),
            run_id=result.run_id, metadata=metadata,
        ))
    for failure in step_failures(result):
        reports.append(CheckReport(
            check=failure.step, asset="?", tenant=tenant, space=space, passed=False, severity="ERROR",
            description=f"the check raised: {failure.error}", run_id=result.run_id,
        ))
    return reports


def run_checks(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tenant: str | None = None,
    space: str | None = None,
    names: list[str] | None = None,
) -> list[CheckReport]:
    """Run every check (or the ``names`` given) on every materialized partition, tenant x space first."""
    resources: Any = defs.resources
    spaces = resources["workspace"].spaces()
    pairs, tenants = targets(instance, spaces, resources["vector_store"].open(), tenant, space)
    register_partitions(instance, sorted({t for t, _ in pairs} | set(tenants)), spaces)
    all_keys = list(defs.resolve_asset_graph().asset_check_keys)
    if names:
        known = {k.name for k in all_keys}
        unknown = sorted(set(names) - known)
        if unknown:
            raise UnknownCheckError(f"unknown check(s) {unknown}; known checks: {', '.join(sorted(known))}")
        all_keys = [k for k in all_keys if k.name in names]
    # the jobs the UI's Launchpad and the nightly schedules run: one run per partition
    runs: list[tuple[str, str, str, str | None, list[dg.AssetCheckKey]]] = [
        (monitoring_checks_job.name, tenant_space_key(t, s), t, s, check_keys(all_keys, TENANT_SPACE_ASSETS))
        for t, s in pairs
    ] + [(source_checks_job.name, t, t, None, check_keys(all_keys, TENANT_ASSETS)) for t in tenants]
    reports: list[CheckReport] = []
    for job, key, t, s, keys in runs:
        if not keys:
            continue
        result = execute_job(defs, job, instance, key, check_keys=set(keys), raise_on_error=False)
        reports.extend(_reports(result, t, s))
    return reports
