"""Reading a tenant's source folder: one row per readable document, one reason per unreadable one.

Document id = path relative to the tenant root (POSIX form). Nothing here raises for a bad file:
it is quarantined with its reason and the scan goes on.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
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
    """Read every supported file under ``root`` into ``out``, ``batch`` documents at a time; every
    entry ``list_entries`` refuses is quarantined with its reason."""
    scan = SourceScan()
    pending: list[dict] = []
    for entry in list_entries(root):
        found = entry.problem or _read(tenant, entry, max_bytes)
        if isinstance(found, str):
            scan.quarantined.append({"doc_id": entry.doc_id, "stage": "source", "reason": found})
            continue
        pending.append(found)
        if len(pending) >= batch:
            out.write(pa.Table.from_pylist(pending, schema=DOCUMENTS_SCHEMA))
            pending = []
    out.write(pa.Table.from_pylist(pending, schema=DOCUMENTS_SCHEMA))
    scan.documents = out.rows
    return scan


@dataclass(frozen=True)
class SourceEntry:
    """A file (or a folder the walk will not enter) of a tenant's source folder, seen without opening it.

    ``status`` is the regular file's status (through a symlink that stays inside the root); ``problem`` is
    why the entry cannot be indexed, or None.
    """

    doc_id: str
    path: Path
    status: os.stat_result | None = None
    problem: str | None = None


def list_entries(root: Path) -> Iterator[SourceEntry]:
    """Every entry of ``root``, hidden files and folders skipped, then any folder that could not be
    listed; nothing is opened.

    Only regular files with a supported suffix come without a problem. Devices, sockets and FIFOs,
    symlink loops, broken symlinks, symlinks and symlinked folders leaving the root, and symlinked
    folders inside it (never followed, so a folder loop cannot recurse) each come with the reason.
    """
    if not root.is_dir():
        return
    real_root = Path(os.path.realpath(root))
    unlisted: list[OSError] = []
    for folder, dirs, files in os.walk(root, onerror=unlisted.append, followlinks=False):
        linked = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in linked)
        for name in sorted([*files, *linked]):
            if not name.startswith("."):
                yield _inspect(root, real_root, Path(folder) / name)
    for error in unlisted:
        path = Path(error.filename or root)
        yield _entry(root, path, problem=f"folder cannot be listed: {error.strerror or error}")


def list_source(root: Path) -> dict[str, datetime]:
    """Documents the scan would read from ``root`` now, with their modification times (no file is read)."""
    return {
        entry.doc_id: datetime.fromtimestamp(entry.status.st_mtime, tz=UTC)
        for entry in list_entries(root)
        if entry.problem is None and entry.status is not None
    }


def _entry(root: Path, path: Path, status: os.stat_result | None = None, problem: str | None = None) -> SourceEntry:
    return SourceEntry(path.relative_to(root).as_posix(), path, status, problem)


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _inspect(root: Path, real_root: Path, path: Path) -> SourceEntry:
    """The entry for ``path`` from its status alone: what it is and whether it can be indexed."""
    try:
        status = path.lstat()
        if stat.S_ISLNK(status.st_mode):
            followed = _follow(path, real_root)
            if isinstance(followed, str):
                return _entry(root, path, problem=followed)
            status = followed
    except OSError as exc:
        return _entry(root, path, problem=f"cannot be read: {exc.strerror or exc}")
    for is_special, kind in _SPECIAL_FILES:
        if is_special(status.st_mode):
            return _entry(root, path, problem=f"is {kind}, not a regular file; it was not opened")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        return _entry(root, path, problem=f"unsupported file type {suffix or '(none)'!r}; supported: {supported}")
    if not stat.S_ISREG(status.st_mode):
        return _entry(root, path, problem="not a regular file; it was not opened")
    return _entry(root, path, status)


def _follow(link: Path, real_root: Path) -> str | os.stat_result:
    """The status of the file the symlink ``link`` points at, or why it cannot be indexed."""
    try:
        target = Path(os.path.realpath(link, strict=True))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop: following the link never ends; remove it or point it at a file"
        return f"broken symlink (to {os.readlink(link)}); remove it or point it at a file"
    status = target.stat()
    folder = stat.S_ISDIR(status.st_mode)
    if not target.is_relative_to(real_root):
        return f"{'symlinked folder' if folder else 'symlink'} points outside the tenant root (to {target}); copy it in"
    if folder and Path(os.path.realpath(link.parent)).is_relative_to(target):
        return f"symlinked folder loops back to a folder above it ({target}); remove the link"
    if folder:
        return f"symlinked folder (to {target}) is not followed; the files there are read at their own path"
    return status


def _read(tenant: str, entry: SourceEntry, max_bytes: int) -> dict | str:
    """The document's row, or why it cannot be indexed.

    The file is opened non-blocking and checked again once open, so a file swapped for a FIFO after
    the listing cannot hang the scan.
    """
    try:
        fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                return "not a regular file; it was not read"
            if status.st_size > max_bytes:
                return (
                    f"file is {status.st_size} bytes, over the {max_bytes}-byte limit; split it or raise "
                    "EMBEDOPS_MAX_DOCUMENT_BYTES"
                )
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if len(data) > max_bytes:
        return f"file grew over the {max_bytes}-byte limit while read; split it or raise EMBEDOPS_MAX_DOCUMENT_BYTES"
    try:
        text = decode_source(data)
    except ValueError as exc:
        return str(exc)
    if not text.strip():
        return "empty or whitespace-only document"
    return {
        "tenant": tenant,
        "doc_id": entry.doc_id,
        "suffix": entry.path.suffix.lower(),
        "size": len(data),
        "modified_at": datetime.fromtimestamp(status.st_mtime, tz=UTC),
        "checksum": sha256_bytes(data),
        "text": text,
    }
