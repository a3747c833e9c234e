"""Reading a tenant's source folder: one row per readable document, one reason per unreadable one.

Document id = path relative to the tenant root (POSIX form). Nothing here raises for a bad file:
it is quarantined with its reason and the scan goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from embedops.core.fingerprints import sha256_bytes
from embedops.core.preprocess import decode_source
from embedops.core.tables import Sink

SUPPORTED_SUFFIXES = (".md", ".txt", ".rst", ".html", ".htm")

DOCUMENTS_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("doc_id", pa.string()),
        ("suffix", pa.string()),
        ("size", pa.int64()),
        ("modified_at", pa.timestamp("us", tz="UTC")),
        ("checksum", pa.string()),
        ("text", pa.string()),
    ]
)
QUARANTINE_SCHEMA = pa.schema([("doc_id", pa.string()), ("stage", pa.string()), ("reason", pa.string())])


@dataclass
class SourceScan:
    """What a scan wrote: how many documents, and every file it refused with the reason."""

    documents: int = 0
    quarantined: list[dict] = field(default_factory=list)

    def quarantine_table(self) -> pa.Table:
        return quarantine_table(self.quarantined)


def quarantine_table(items: list[dict]) -> pa.Table:
    """Quarantined documents as a table: doc_id, the stage that refused it, and why."""
    return pa.Table.from_pylist(items, schema=QUARANTINE_SCHEMA)


def scan_tenant(tenant: str, root: Path, max_bytes: int, out: Sink, batch: int = 256) -> SourceScan:
    """Read every supported file under ``root`` into ``out``, ``batch`` documents at a time; hidden
    files and folders are skipped."""
    scan = SourceScan()
    real_root = root.resolve()
    pending: list[dict] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            doc_id = path.relative_to(root).as_posix()
            found = _read(tenant, doc_id, path, real_root, max_bytes)
            if isinstance(found, str):
                scan.quarantined.append({"doc_id": doc_id, "stage": "source", "reason": found})
                continue
            pending.append(found)
            if len(pending) >= batch:
                out.write(pa.Table.from_pylist(pending, schema=DOCUMENTS_SCHEMA))
                pending = []
    out.write(pa.Table.from_pylist(pending, schema=DOCUMENTS_SCHEMA))
    scan.documents = out.rows
    return scan


def _read(tenant: str, doc_id: str, path: Path, root: Path, max_bytes: int) -> dict | str:
    """The document's row, or why it cannot be indexed."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return f"unsupported file type {suffix or '(none)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            return f"symlink points outside the tenant root (to {target}); copy the file in instead"
    try:
        stat = path.stat()
        if stat.st_size > max_bytes:
            return (
                f"file is {stat.st_size} bytes, over the {max_bytes}-byte limit; split it or raise "
                "EMBEDOPS_MAX_DOCUMENT_BYTES"
            )
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    try:
        text = decode_source(data)
    except ValueError as exc:
        return str(exc)
    if not text.strip():
        return "empty or whitespace-only document"
    return {
        "tenant": tenant,
        "doc_id": doc_id,
        "suffix": suffix,
        "size": stat.st_size,
        "modified_at": datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        "checksum": sha256_bytes(data),
        "text": text,
    }
