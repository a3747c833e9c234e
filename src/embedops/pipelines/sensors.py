"""Sensors that keep partitions in step with the world: tenant folders and declared spaces."""


import json
import os
from pathlib import Path

import dagster as dg

from embedops.core.tenants import validate_tenant
from embedops.errors import InvalidTenantError
from embedops.pipelines.execution import launched_by
from embedops.pipelines.jobs import source_documents_job
from embedops.resources import WorkspaceResource


def folder_signature(folder: Path) -> str:
    """A cheap change marker for a folder: file count, total size and newest modification time."""
    count = size = 0
    newest = 0.0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                stat = (Path(dirpath) / name).stat()
            except OSError:
                continue
            count, size, newest = count + 1, size + stat.st_size, max(newest, stat.st_mtime)
    return f"{count}:{size}:{newest:.6f}"


@dg.sensor(
    job=source_documents_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the sources root (EMBEDOPS_SOURCES): a new folder becomes a tenant partition and is read "
    "(source_documents_job); a folder whose files changed is read again.",
)
def tenant_folders_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
    """A new folder under the sources root becomes a tenant partition; a changed folder is re-read."""
    root = workspace.settings.sources_root
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    new_tenants, requests, signatures = [], [], {}
    for folder in folders:
        try:
            tenant = validate_tenant(folder.name)
        except InvalidTenantError as exc:
            context.log.warning(f"skipping folder {folder}: {exc}")
            continue
        signatures[tenant] = folder_signature(folder)
        if not context.instance.has_dynamic_partition("tenants", tenant):
            new_tenants.append(tenant)
        if seen.get(tenant) != signatures[tenant]:
            requests.append(dg.RunRequest(partition_key=tenant, run_key=f"{tenant}:{signatures[tenant]}",
                                          tags=launched_by("sensor", "tenant_folders_sensor")))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest("tenants", new_tenants)] if new_tenants else [],
        cursor=json.dumps(signatures, sort_keys=True),
    )


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds every space declared in the space config (EMBEDOPS_SPACES) as a space partition; "
    "launches no run.",
)
def declared_spaces_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
    """Every space declared in the space config is a partition of the tenant x space assets."""
    names = workspace.spaces().names
    new = [n for n in names if not context.instance.has_dynamic_partition("spaces", n)]
    return dg.SensorResult(
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest("spaces", new)] if new else []
    )
