import time
from typing import Any

import dagster as dg

from embedops.assets.metadata import table_metadata, table_of
from embedops.core.sources import DOCUMENTS_SCHEMA, scan_tenant
from embedops.core.tenants import validate_tenant
from embedops.errors import ConfigError
from embedops.pipelines.partitions import tenant_partitions
from embedops.resources import WorkspaceResource


def quarantine_metadata(quarantined: list[dict]) -> dict[str, Any]:
    """Quarantined documents as a count and, when there are any, a table a person can read in the UI."""
    return {
        "quarantined": dg.MetadataValue.int(len(quarantined)),
        **({"quarantined_documents": table_of(quarantined)} if quarantined else {}),
    }


@dg.asset(partitions_def=tenant_partitions, group_name="ingestion", kinds={"lance"})
def source_documents(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """A tenant's readable source documents with their checksums; unreadable files are quarantined."""
    started = time.monotonic()
    tenant = validate_tenant(context.partition_key)
    root = workspace.registry().source_dir(tenant, workspace.settings.sources_root)
    if not root.is_dir():
        raise ConfigError(
            f"tenant {tenant!r} has no source folder {root}; create it or register another with "
            f"`embedops ingest --tenant {tenant} --source DIR`"
        )
    tables = workspace.tables()
    # the new table becomes the latest as the step's last act: a run killed before leaves the previous one
    with (
        workspace.lease(f"tables/source_documents/{tenant}", context.run.run_id, context.instance),
        tables.writer("source_documents", (tenant,), DOCUMENTS_SCHEMA, context.run.run_id) as out,
    ):
        scan = scan_tenant(tenant, root, workspace.max_document_bytes, out)
        tables.write("source_quarantine", (tenant,), scan.quarantine_table(), context.run.run_id)
        for item in scan.quarantined:
            context.log.warning(f"quarantined {tenant}/{item['doc_id']}: {item['reason']}")
    return dg.MaterializeResult(
        metadata={
            "documents": scan.documents,
            "source_dir": dg.MetadataValue.path(str(root)),
            **table_metadata(out),
            "duration_s": round(time.monotonic() - started, 3),
            **quarantine_metadata(scan.quarantined),
        }
    )
