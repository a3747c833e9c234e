import time
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import dagster as dg
import pyarrow as pa

from embedops.assets.metadata import table_metadata, table_of
from embedops.core.changelog import ChangeLog
from embedops.core.sources import DOCUMENTS_SCHEMA, ChangeSet, scan_tenant, source_location
from embedops.core.tables import Sink, in_filter
from embedops.core.tenants import validate_tenant
from embedops.pipelines.partitions import tenant_partitions
from embedops.resources import WorkspaceResource


class SourceDocumentsConfig(dg.Config):
    """How a run reads the tenant's sources: by file status (the default), every body (``verify``), or
    only the documents a change feed names (``changed``, ``deleted``: ids relative to the source folder)."""

    verify: bool = False
    changed: list[str] | None = None
    deleted: list[str] | None = None
    # a table's change feed: when each changed row's transaction committed (ISO 8601), kept as modified_at
    committed_at: dict[str, str] | None = None
    # where in the source's change stream the change set ends (a table's LSN): recorded in the metadata
    position: str | None = None

    def change_set(self) -> ChangeSet | None:
        if self.changed is None and self.deleted is None:
            return None
        committed = {doc_id: datetime.fromisoformat(at) for doc_id, at in (self.committed_at or {}).items()}
        return ChangeSet(tuple(self.changed or ()), tuple(self.deleted or ()), committed)


def quarantine_metadata(quarantined: list[dict]) -> dict[str, Any]:
    """Quarantined documents as a count and, when there are any, a table a person can read in the UI."""
    return {
        "quarantined": dg.MetadataValue.int(len(quarantined)),
        **({"quarantined_documents": table_of(quarantined)} if quarantined else {}),
    }


@dg.asset(partitions_def=tenant_partitions, group_name="ingestion", kinds={"lance"})
def source_documents(
    context: dg.AssetExecutionContext, config: SourceDocumentsConfig, workspace: WorkspaceResource
) -> dg.MaterializeResult:
    """A tenant's readable source documents with their checksums; unreadable files are quarantined.

    Files whose size and modification time are unchanged are not read again (``verify`` reads them all);
    when nothing changed, no new table is written.
    """
    started = time.monotonic()
    tenant = validate_tenant(context.partition_key)
    root = source_location(tenant, workspace.registry().source_dir(tenant, workspace.settings.sources_root))
    tables = workspace.tables()
    run_id = context.run.run_id
    # a new table becomes the latest as the step's last act: a run killed before leaves the previous one
    with ExitStack() as stack:
        stack.enter_context(workspace.lease(f"tables/source_documents/{tenant}", run_id, context.instance))

        log = ChangeLog(workspace.settings.control_url)
        url = tables.url("source_documents", (tenant,))

        def open_table() -> Sink:
            log.forget(url)  # a table written whole: no record of a change may chain across it
            return stack.enter_context(tables.writer("source_documents", (tenant,), DOCUMENTS_SCHEMA, run_id))

        change: list[tuple[pa.Table, list[str]]] = []  # a small change: committed last, as a new table would be
        scan = scan_tenant(
            tenant, root, workspace.max_document_bytes, open_table,
            apply_out=lambda rows, deleted: change.append((rows, deleted)),
            previous=tables.dataset("source_documents", (tenant,)),
            previous_quarantine=tables.read("source_quarantine", (tenant,)),
            verify=config.verify, changes=config.change_set(),
        )
        if scan.quarantine_changed:
            tables.write("source_quarantine", (tenant,), scan.quarantine_table(), run_id)
        for item in scan.quarantined:
            context.log.warning(f"quarantined {tenant}/{item['doc_id']}: {item['reason']}")
        for rows, deleted in change:
            where = in_filter("doc_id", deleted) if deleted else None
            base = tables.latest("source_documents", (tenant,))
            version = tables.apply("source_documents", (tenant,), DOCUMENTS_SCHEMA, rows, "doc_id", delete_where=where)
            # what this version changed, for document_chunks to compare only these documents
            log.record(url, version, base[1] if base else None, [*rows["doc_id"].to_pylist(), *deleted])
    table = tables.latest("source_documents", (tenant,))
    if not scan.written:
        context.log.info(f"{tenant}: no source document changed ({scan.bodies_read} read); no new table written")
    return dg.MaterializeResult(
        metadata={
            "documents": scan.documents,
            "unchanged": not scan.written,
            **scan.counts(),
            "verify": config.verify,
            **({"change_set": len(set(config.changed or ()) | set(config.deleted or ()))}
               if config.change_set() else {}),
            **({"source_position": config.position} if config.position else {}),
            "source_dir": dg.MetadataValue.path(root),
            **table_metadata(table),
            "duration_s": round(time.monotonic() - started, 3),
            **quarantine_metadata(scan.quarantined),
        }
    )
