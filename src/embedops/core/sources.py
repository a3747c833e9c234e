"""Reading a tenant's sources: one row per readable document, one reason per unreadable one.

A tenant's sources are a folder, an object-store prefix (``s3://bucket/docs/acme``) or a PostgreSQL table
(core/cdc.py, whose rows come with their text and checksum): one scan logic for all, over entries that carry a
size, a modification time and any problem, with one listing and one body reader per backend (symlink and
special-file rules are the folder's alone). Document id = path relative to the tenant root (POSIX form), or
``<table>/<id>``. Nothing here raises for a bad file: it is quarantined with its reason and the scan goes on; a
store that does not answer fails the scan (StateUnreachableError).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from embedops.core import cdc
from embedops.core.dataplane import filesystem, get_bytes, is_remote, join, unreachable
from embedops.core.fingerprints import sha256_bytes
from embedops.core.preprocess import decode_source
from embedops.core.tables import Rows, Sink, batches, columns, where_in, worth_a_change
from embedops.errors import ConfigError

# a tenant's sources: a folder (path) or an object-store prefix (URL)
SourceRoot = str | Path
# whether each listed file (doc_ids, sizes, stat modification times in seconds) is as last recorded
Vouches = Callable[[list[str], list[int], list[float]], np.ndarray]
# a body read: the bytes and what the file looked like, or why it was not read
Body = tuple[bytes, "Seen"] | tuple[str, "Seen | None"]

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
        ("read_at", pa.timestamp("us", tz="UTC")),  # when the body was last read (null: never recorded)
    ]
)
QUARANTINE_SCHEMA = pa.schema([("doc_id", pa.string()), ("stage", pa.string()), ("reason", pa.string())])
# the source stage's quarantine also keeps what a refused file looked like when read, so that the next
# scan refuses it again from its status alone (null for a file refused without being read)
SOURCE_QUARANTINE_SCHEMA = pa.schema(
    [*QUARANTINE_SCHEMA, *(DOCUMENTS_SCHEMA.field(name) for name in ("size", "modified_at", "read_at"))]
)
# A file modified this close before it was read may be written again within the same modification time
# (file systems keep coarse times), so its size and time do not vouch for its content: it is read again.
RACY_SECONDS = 2.0
# A change of the documents is held in memory to commit as one change of the last table up to this much text;
# past it (or past `worth_a_change`'s count) the documents are written out as a new table instead.
MAX_CHANGE_BYTES = 64 * 1024 * 1024


def quarantine_table(items: list[dict]) -> pa.Table:
    """Quarantined documents as a table: doc_id, the stage that refused it, and why."""
    return pa.Table.from_pylist(items, schema=QUARANTINE_SCHEMA)


@dataclass(frozen=True)
class Seen:
    """What a file looked like when its body was last read: size, modification time, when it was read."""

    size: int | None
    modified_at: datetime | None
    read_at: datetime | None

    def vouches_for(self, entry: SourceEntry) -> bool:
        """True when ``entry`` shows the same file as read then, and the read came late enough after its
        last modification that any later write would have changed the modification time."""
        if self.size is None or self.modified_at is None or self.read_at is None:
            return False
        if self.modified_at >= self.read_at - timedelta(seconds=RACY_SECONDS):
            return False
        return entry.size == self.size and entry.modified_at == self.modified_at


class _Known:
    """The documents of the last materialization: each one's checksum, and for those whose read came late
    enough after their modification (`Seen.vouches_for`'s rule, computed over the columns at once) the size
    and modification time that vouch for them. Kept as columns: a listing's files are looked up all at once
    (`vouched_mask`), and per-document dictionaries are built only when a scan asks one document at a time."""

    def __init__(self, previous: Rows | None) -> None:
        self._table = pa.table({"doc_id": pa.array([], pa.string()), "checksum": pa.array([], pa.string())})
        self._size = np.zeros(0, np.int64)  # -1 where the row does not vouch
        self._micros = np.zeros(0, np.int64)
        self._listed = np.zeros(0, bool)  # rows a listing vouched for
        if previous is None:
            return
        names = [n for n in ("doc_id", "checksum", "size", "modified_at", "read_at") if n in previous.schema.names]
        table = columns(previous, names).combine_chunks()
        self._table = table.select(["doc_id", "checksum"])
        self._size = np.full(table.num_rows, -1, np.int64)
        self._micros = np.zeros(table.num_rows, np.int64)
        self._listed = np.zeros(table.num_rows, bool)
        if not {"size", "modified_at", "read_at"} <= set(names):
            return  # a table written before these columns existed: nothing vouches, every body is read
        modified = table["modified_at"].cast(pa.int64())
        late = pc.less(modified, pc.subtract(table["read_at"].cast(pa.int64()), int(RACY_SECONDS * 1_000_000)))
        vouching = pc.and_(pc.fill_null(late, False), pc.is_valid(table["size"])).to_numpy(zero_copy_only=False)
        self._size[vouching] = table["size"].fill_null(-1).to_numpy()[vouching]
        self._micros = modified.fill_null(0).to_numpy().copy()

    @cached_property
    def _positions(self) -> dict[str, int]:
        """Each recorded document's row, built on the first question about one document."""
        return {doc_id: i for i, doc_id in enumerate(self._table["doc_id"].to_pylist())}

    def ids(self) -> list[str]:
        return list(self._positions)

    @cached_property
    def _checksums(self) -> list[str]:
        return self._table["checksum"].to_pylist()

    def checksum(self, doc_id: str) -> str | None:
        at = self._positions.get(doc_id)
        return None if at is None else self._checksums[at]

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._positions

    def vouched(self, entry: SourceEntry) -> bool:
        """Whether the recorded size and modification time of ``entry``'s document vouch for it."""
        at = self._positions.get(entry.doc_id)
        if at is None or entry.modified_at is None or entry.size is None:
            return False
        return bool(self._size[at] == entry.size and self._micros[at] == _micros(entry.modified_at))

    def vouched_mask(self, doc_ids: list[str], sizes: list[int], mtimes: list[float]) -> np.ndarray:
        """For each listed file (id, size, stat modification time), whether its recorded row vouches for it;
        the rows that vouch are remembered as listed (see `unlisted`)."""
        found = np.zeros(len(doc_ids), bool)
        if not doc_ids or not len(self._size):
            return found
        at = pc.index_in(pa.array(doc_ids, pa.string()), value_set=self._table["doc_id"])
        positions = at.fill_null(-1).to_numpy()
        known = positions >= 0
        rows = positions[known]
        found[known] = (self._size[rows] == np.asarray(sizes, np.int64)[known]) & (
            self._micros[rows] == stat_micros(np.asarray(mtimes, np.float64))[known]
        )
        self._listed[positions[found]] = True
        return found

    def unlisted(self) -> list[str]:
        """The documents no listing vouched for (all of them when none was asked)."""
        return self._table["doc_id"].filter(pa.array(~self._listed)).to_pylist()


def _micros(moment: datetime) -> int:
    """A time as the tables store it: microseconds since the epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def stat_micros(seconds: np.ndarray) -> np.ndarray:
    """``_micros(datetime.fromtimestamp(s, UTC))`` of each stat time ``s`` (float seconds), without building
    datetimes: the same rounding (the fraction to the nearest microsecond, halves to even)."""
    fraction, whole = np.modf(seconds)
    micros = np.rint(fraction * 1_000_000)  # rint rounds halves to even, as fromtimestamp does
    whole = whole + (micros >= 1_000_000) - (micros < 0)
    micros = micros - 1_000_000 * (micros >= 1_000_000) + 1_000_000 * (micros < 0)
    return whole.astype(np.int64) * 1_000_000 + micros.astype(np.int64)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ChangeSet:
    """Documents a change feed names (ids relative to the source folder): only these are looked at."""

    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    # when the source says when each change was committed (a table's change feed): recorded as modified_at
    committed_at: dict[str, datetime] = field(default_factory=dict)


@dataclass
class SourceScan:
    """What a scan found: the documents, every file it refused with the reason, and what changed.

    ``added``, ``changed`` and ``deleted`` are document ids whose content is new, different or gone;
    ``touched`` counts files read again whose content had not changed; ``bodies_read`` counts the files
    opened. ``written`` says whether the documents changed, so that a new table was written.
    """

    documents: int = 0
    quarantined: list[dict] = field(default_factory=list)
    bodies_read: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    touched: int = 0
    written: bool = False
    quarantine_changed: bool = True
    _seen: dict[str, Seen] = field(default_factory=dict, repr=False)

    def quarantine_table(self) -> pa.Table:
        """The source quarantine with what each refused file looked like when read."""
        rows = [{**item, **vars(self._seen.get(item["doc_id"], Seen(None, None, None)))} for item in self.quarantined]
        return pa.Table.from_pylist(rows, schema=SOURCE_QUARANTINE_SCHEMA)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "changed": len(self.changed), "deleted": len(self.deleted),
                "touched": self.touched, "bodies_read": self.bodies_read}


def scan_tenant(
    tenant: str,
    root: SourceRoot,
    max_bytes: int,
    open_out: Callable[[], Sink],
    *,
    apply_out: Callable[[pa.Table, list[str]], None] | None = None,
    previous: Rows | None = None,
    previous_quarantine: pa.Table | None = None,
    verify: bool = False,
    changes: ChangeSet | None = None,
    batch: int = 256,
) -> SourceScan:
    """The tenant's documents under ``root`` as a new materialization, reading only what may have changed.

    A file whose size and modification time are those recorded in ``previous`` (the last materialization)
    is carried over unread, and so is a file ``previous_quarantine`` refused; ``verify`` reads every file.
    With ``changes`` the folder is not listed: only the named files are read, the documents of ``deleted``
    leave, everything else is carried over. ``open_out`` is called (once, and only when the documents
    changed or there is no ``previous``) for the sink of a new materialization. With ``apply_out``, a small
    change (see `worth_a_change`, at most MAX_CHANGE_BYTES of text) is given to it instead, as the rows read
    and the ids deleted, to commit as a change of ``previous``: nothing else is copied.
    """
    scan = SourceScan()
    known = _Known(previous)
    refused = _refused(previous_quarantine)
    carried: set[str] = set()  # documents whose recorded row stands
    kept: dict[str, dict] = {}  # refusals that stand
    fresh: set[str] = set()  # documents read into new rows
    pending: list[dict] = []
    pending_bytes = 0
    out: Sink | None = None

    def sink() -> Sink:
        nonlocal out
        if out is None:
            out = open_out()
        return out

    backend = _backend(root)
    entries: Iterable[SourceEntry | list[str]]
    if changes is None and isinstance(backend, _Folder) and not verify:
        entries = backend.entries_unless(known.vouched_mask)  # the files that vouch come as one list of ids
    elif changes is None:
        entries = backend.entries()  # this backend reads the bodies next (a table's came with the listing)
    elif previous is None:
        raise ConfigError(
            f"a change set names documents of {root}, whose documents were never read in full; read them all "
            f"first (`embedops ingest --tenant {tenant}`), then apply changes"
        )
    else:
        entries = backend.named(sorted(set(changes.changed)))
        named = {*changes.changed, *changes.deleted}
        for doc_id in changes.deleted:
            document_path(root, doc_id)  # refuses a name that could leave the folder
        carried = {d for d in known.ids() if d not in named}
        kept = {d: row for d, row in refused.items() if d not in named}
    for entry in entries:
        if isinstance(entry, list):
            carried.update(entry)  # files the listing found as recorded
            continue
        if changes is not None and entry.doc_id in changes.committed_at:
            entry = replace(entry, modified_at=changes.committed_at[entry.doc_id])
        if entry.problem is not None or entry.size is None:
            scan.quarantined.append(_refusal(entry.doc_id, entry.problem or "cannot be read"))
            continue
        if entry.size > max_bytes:
            scan.quarantined.append(_refusal(entry.doc_id, _too_big(entry.size, max_bytes)))
            continue
        if entry.checksum is not None and known.checksum(entry.doc_id) == entry.checksum and not verify:
            carried.add(entry.doc_id)  # a backend that knows the content's checksum without a read vouches by it
            continue
        if changes is None and not verify:  # a named file is read: the feed says it changed
            if known.vouched(entry):
                carried.add(entry.doc_id)
                continue
            if entry.doc_id in refused and refused[entry.doc_id]["seen"].vouches_for(entry):
                kept[entry.doc_id] = refused[entry.doc_id]
                continue
        scan.bodies_read += 1
        found, seen = _read(tenant, backend, entry, max_bytes)
        if isinstance(found, str):
            scan.quarantined.append(_refusal(entry.doc_id, found))
            if seen is not None:
                scan._seen[entry.doc_id] = seen
            continue
        if known.checksum(entry.doc_id) == found["checksum"]:
            if known.vouched(entry):
                carried.add(entry.doc_id)  # read again and found as recorded: the recorded row stands
                continue
            scan.touched += 1  # same content; its new size, time or read time are recorded
        else:
            (scan.changed if entry.doc_id in known else scan.added).append(entry.doc_id)
        fresh.add(entry.doc_id)
        pending.append(found)
        pending_bytes += len(found["text"])
        small = worth_a_change(len(pending)) and pending_bytes <= MAX_CHANGE_BYTES
        held = small and out is None and apply_out is not None and previous is not None  # may yet be a change
        if len(pending) >= batch and not held:
            sink().write(pa.Table.from_pylist(pending, schema=DOCUMENTS_SCHEMA))
            pending = []
    scan.deleted = sorted(d for d in known.unlisted() if d not in carried and d not in fresh)
    change = len(fresh) + len(scan.deleted)
    small = worth_a_change(change) and pending_bytes <= MAX_CHANGE_BYTES
    if out is None and apply_out is not None and previous is not None and change and small:
        apply_out(pa.Table.from_pylist(pending, schema=DOCUMENTS_SCHEMA), scan.deleted)
        scan.documents = len(carried) + len(fresh)
        scan.written = True
    elif previous is None or fresh or scan.deleted:
        target = sink()
        target.write(pa.Table.from_pylist(pending, schema=DOCUMENTS_SCHEMA))
        if previous is not None and carried:
            _copy(previous, carried, target)
        scan.documents = target.rows
        scan.written = True
    else:
        scan.documents = len(carried)
    for doc_id, row in kept.items():
        scan.quarantined.append(_refusal(doc_id, row["reason"], row["stage"]))
        scan._seen[doc_id] = row["seen"]
    scan.quarantined.sort(key=lambda item: item["doc_id"])
    scan.quarantine_changed = previous_quarantine is None or _records(scan.quarantine_table()) != _records(
        previous_quarantine
    )
    return scan


def _too_big(size: int, max_bytes: int) -> str:
    return f"file is {size} bytes, over the {max_bytes}-byte limit; split it or raise EMBEDOPS_MAX_DOCUMENT_BYTES"


def _refusal(doc_id: str, reason: str, stage: str = "source") -> dict:
    return {"doc_id": doc_id, "stage": stage, "reason": reason}


def _refused(quarantine: pa.Table | None) -> dict[str, dict]:
    """{doc_id: {stage, reason, seen}} of a source quarantine table (none: {})."""
    return {
        row["doc_id"]: {
            "stage": row["stage"],
            "reason": row["reason"],
            "seen": Seen(row.get("size"), row.get("modified_at"), row.get("read_at")),
        }
        for row in (quarantine.to_pylist() if quarantine is not None else [])
    }


def _records(table: pa.Table) -> list[tuple]:
    """The rows of a source quarantine table as comparable tuples (absent columns as None)."""
    names = SOURCE_QUARANTINE_SCHEMA.names
    values = [table[n].to_pylist() if n in table.column_names else [None] * table.num_rows for n in names]
    return sorted(zip(*values, strict=True), key=lambda row: row[0])


def _copy(previous: Rows, doc_ids: set[str], out: Sink) -> None:
    """Copy the rows of ``doc_ids`` from ``previous`` into ``out``, batch by batch."""
    for part in batches(previous):
        rows = where_in(part, "doc_id", doc_ids)
        if not rows.num_rows:
            continue
        for name in DOCUMENTS_SCHEMA.names:  # tables written before a column existed lack it
            if name not in rows.column_names:
                rows = rows.append_column(name, pa.nulls(rows.num_rows, DOCUMENTS_SCHEMA.field(name).type))
        out.write(rows.select(DOCUMENTS_SCHEMA.names).cast(DOCUMENTS_SCHEMA))


def document_path(root: SourceRoot, doc_id: str) -> str:
    """Where document ``doc_id`` (a path relative to ``root``) is: a file path, or an object's URL under a
    prefix. A name that could leave ``root`` is refused."""
    parts = doc_id.split("/")
    if "\0" in doc_id or any(part in ("", ".", "..") for part in parts):
        raise ConfigError(
            f"document id {doc_id!r} is not a path inside the source folder {root}; name a document by its "
            "path relative to that folder, with '/' between folders (for example 'notes/fog.txt')"
        )
    if cdc.is_table_location(root):
        return f"{root}#{doc_id}"  # a row of a table source: named, never opened as a path
    if is_remote(str(root)):
        return join(str(root), doc_id)
    return str(Path(root).joinpath(*parts))


@dataclass(frozen=True)
class SourceEntry:
    """A document of a tenant's sources (a file, or an object under a prefix), seen without opening it.

    ``path`` is the file's path (or the object's path in its store); ``size`` and ``modified_at`` are the
    regular file's (through a symlink that stays inside the root) or the object's; ``problem`` is why the
    entry cannot be indexed, or None.
    """

    doc_id: str
    path: str
    size: int | None = None
    modified_at: datetime | None = None
    problem: str | None = None
    checksum: str | None = None  # known without opening it (a table row, read with the listing)


def list_entries(root: SourceRoot) -> Iterator[SourceEntry]:
    """Every entry of ``root`` (a folder or an object-store prefix), hidden files and folders skipped;
    nothing is opened. Only regular files (objects) with a supported suffix come without a problem."""
    return _backend(root).entries()


def named_entries(root: SourceRoot, doc_ids: Iterable[str]) -> Iterator[SourceEntry]:
    """The entries of the named documents as a listing of ``root`` would give them, without listing it.

    A named document that is gone, hidden or under a hidden folder is not a document and yields nothing.
    """
    return _backend(root).named(sorted(set(doc_ids)))


def list_source(root: SourceRoot) -> dict[str, datetime | None]:
    """Documents the scan would read from ``root`` now, with their modification times (no file is read; a
    table's rows have none: their checksums tell)."""
    backend = _backend(root)
    if isinstance(backend, _Table):
        return {entry.doc_id: None for entry in backend.entries(create_slot=False) if entry.problem is None}
    return {
        entry.doc_id: entry.modified_at
        for entry in backend.entries()
        if entry.problem is None and entry.modified_at is not None
    }


def checksum_of(root: SourceRoot, doc_id: str) -> str | None:
    """The checksum of document ``doc_id``'s current bytes under ``root``; None when it cannot be read."""
    if cdc.is_table_location(root):
        source = cdc.TableSource.from_location(str(root))
        row_id = source.row_id(doc_id)
        rows = cdc.read_rows(source, [row_id]) if row_id is not None else []
        return sha256_bytes(rows[0].text.encode()) if rows and rows[0].text is not None else None
    try:
        data = get_bytes(document_path(root, doc_id))
    except OSError:
        return None
    return None if data is None else sha256_bytes(data)


def source_location(tenant: str, source: SourceRoot) -> str:
    """The tenant's source in the form the registry keeps: an absolute folder path, or an object-store
    URL (``s3://bucket/prefix``). A folder or prefix that does not exist is refused, naming the fix."""
    if cdc.is_table_location(source):
        cdc.validate(cdc.TableSource.from_location(str(source)))  # refuses what cannot be followed, with the fix
        return str(source)
    location = str(source).rstrip("/") if is_remote(str(source)) else str(Path(source).expanduser().resolve())
    if not _backend(location).exists():
        kind = "prefix" if is_remote(location) else "folder"
        raise ConfigError(
            f"the source {kind} {location} of tenant {tenant!r} does not exist; "
            + ("put its documents there" if kind == "prefix" else "create it")
            + f" or register another with `embedops ingest --tenant {tenant} --source DIR_OR_URL`"
        )
    return location


def mtime_of(status: os.stat_result) -> datetime:
    """A file's modification time as the documents table records it."""
    return datetime.fromtimestamp(status.st_mtime, tz=UTC)


def _supported(doc_id: str) -> str | None:
    """Why a document of this name is not read (its suffix), or None."""
    if doc_id.lower().endswith(SUPPORTED_SUFFIXES):
        return None
    suffix = PurePosixPath(doc_id).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return None
    return f"unsupported file type {suffix or '(none)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"


def _hidden(doc_id: str) -> bool:
    return any(part.startswith(".") for part in doc_id.split("/"))


class _Folder:
    """A source folder on a file system: symlinks, special files and unlistable folders have their rules."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def exists(self) -> bool:
        return self.root.is_dir()

    def entries(self) -> Iterator[SourceEntry]:
        """Devices, sockets and FIFOs, symlink loops, broken symlinks, symlinks and symlinked folders leaving
        the root, and symlinked folders inside it (never followed, so a folder loop cannot recurse) each
        come with the reason; then any folder that could not be listed."""
        for entry in self.entries_unless(None):
            assert isinstance(entry, SourceEntry)
            yield entry

    def entries_unless(self, vouches: Vouches | None) -> Iterator[SourceEntry | list[str]]:
        """`entries`, except that the regular files ``vouches`` accepts come as one list of their document ids.

        A listing of a million files spends its time per file, so the common case costs one lstat and three
        appends; the files are judged together at the end of the listing, and the rest come as entries in
        listing order after anything with a problem."""
        root = self.root
        if not root.is_dir():
            return
        real_root = Path(os.path.realpath(root))
        unlisted: list[OSError] = []
        lstat, is_regular, suffixes = os.lstat, stat.S_ISREG, SUPPORTED_SUFFIXES
        doc_ids: list[str] = []
        sizes: list[int] = []
        mtimes: list[float] = []
        for folder, dirs, files in os.walk(root, onerror=unlisted.append, followlinks=False):
            linked = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in linked)
            relative = os.path.relpath(folder, root)
            prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
            base = folder if folder.endswith(os.sep) else folder + os.sep
            for name in sorted([*files, *linked]):
                if name.startswith("."):
                    continue
                try:
                    status: os.stat_result | None = lstat(base + name)
                except OSError:
                    status = None  # judged by `_inspect`, which names the reason
                if status is None or not is_regular(status.st_mode) or (
                    not name.lower().endswith(suffixes) and _supported(name) is not None
                ):
                    yield self._inspect(real_root, Path(base + name))
                else:
                    doc_ids.append(prefix + name)
                    sizes.append(status.st_size)
                    mtimes.append(status.st_mtime)
        vouched = vouches(doc_ids, sizes, mtimes) if vouches is not None else np.zeros(len(doc_ids), bool)
        if vouched.any():
            yield [doc_ids[i] for i in np.flatnonzero(vouched)]
        for i in np.flatnonzero(~vouched):
            path = os.path.join(root, *doc_ids[i].split("/"))
            yield SourceEntry(doc_ids[i], path, sizes[i], datetime.fromtimestamp(mtimes[i], tz=UTC))
        for error in unlisted:
            path_of = Path(error.filename or root)
            yield self._entry(path_of, problem=f"folder cannot be listed: {error.strerror or error}")

    def named(self, doc_ids: list[str]) -> Iterator[SourceEntry]:
        """A named file under a symlinked folder (which a listing never enters) comes with the reason."""
        root = self.root
        real_root = Path(os.path.realpath(root))
        for doc_id in doc_ids:
            path = Path(document_path(root, doc_id))
            if _hidden(doc_id) or not os.path.lexists(path):
                continue
            folder = path.parent
            while folder != root:
                if folder.is_symlink():
                    yield self._entry(path, problem=f"is inside the symlinked folder {folder.relative_to(root)}, "
                                      "which is not followed; the files there are read at their own path")
                    break
                folder = folder.parent
            else:
                yield self._inspect(real_root, path)

    def read(self, entry: SourceEntry, max_bytes: int, read_at: datetime) -> Body:
        """The file's bytes, opened non-blocking and checked again once open, so that a file swapped for a
        FIFO after the listing cannot hang the scan."""
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as handle:
                status = os.fstat(handle.fileno())
                if not stat.S_ISREG(status.st_mode):
                    return "not a regular file; it was not read", None
                if status.st_size > max_bytes:  # judged again on every scan: the limit is a setting
                    return _too_big(status.st_size, max_bytes), None
                seen = Seen(status.st_size, mtime_of(status), read_at)
                return handle.read(max_bytes + 1), seen
        except OSError as exc:
            return f"cannot be read: {exc.strerror or exc}", None

    def _entry(self, path: Path, status: os.stat_result | None = None, problem: str | None = None) -> SourceEntry:
        doc_id = path.relative_to(self.root).as_posix()
        if status is None:
            return SourceEntry(doc_id, str(path), problem=problem)
        return SourceEntry(doc_id, str(path), status.st_size, mtime_of(status), problem)

    def _inspect(self, real_root: Path, path: Path) -> SourceEntry:
        """The entry for ``path`` from its status alone: what it is and whether it can be indexed."""
        try:
            status = path.lstat()
            if stat.S_ISLNK(status.st_mode):
                followed = _follow(path, real_root)
                if isinstance(followed, str):
                    return self._entry(path, problem=followed)
                status = followed
        except OSError as exc:
            return self._entry(path, problem=f"cannot be read: {exc.strerror or exc}")
        for is_special, kind in _SPECIAL_FILES:
            if is_special(status.st_mode):
                return self._entry(path, problem=f"is {kind}, not a regular file; it was not opened")
        unsupported = _supported(path.name)
        if unsupported is not None:
            return self._entry(path, problem=unsupported)
        if not stat.S_ISREG(status.st_mode):
            return self._entry(path, problem="not a regular file; it was not opened")
        return self._entry(path, status)


class _ObjectStore:
    """A source prefix in an object store (``s3://bucket/prefix``), through pyarrow's file system: an
    object's size and last-modified time come with the listing; there are no symlinks or special files."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.fs, self.prefix = filesystem(self.root)

    def exists(self) -> bool:
        return self._call(lambda: self.fs.get_file_info(self.prefix)).type == pafs.FileType.Directory

    def entries(self) -> Iterator[SourceEntry]:
        selector = pafs.FileSelector(self.prefix, recursive=True, allow_not_found=True)
        infos = self._call(lambda: self.fs.get_file_info(selector))
        found = {info.path.removeprefix(self.prefix + "/"): info for info in infos if info.type == pafs.FileType.File}
        for doc_id in sorted(found):
            if not _hidden(doc_id):
                yield self._entry(doc_id, found[doc_id])

    def named(self, doc_ids: list[str]) -> Iterator[SourceEntry]:
        for doc_id in doc_ids:
            document_path(self.root, doc_id)  # refuses a name that could leave the prefix
        paths = [f"{self.prefix}/{doc_id}" for doc_id in doc_ids]
        infos = self._call(lambda: self.fs.get_file_info(paths)) if paths else []
        for doc_id, info in zip(doc_ids, infos, strict=True):
            if not _hidden(doc_id) and info.type == pafs.FileType.File:
                yield self._entry(doc_id, info)

    def read(self, entry: SourceEntry, max_bytes: int, read_at: datetime) -> Body:
        """The object's bytes (one GET); an object gone since the listing is refused like a vanished file."""
        try:
            with self.fs.open_input_stream(entry.path) as stream:
                data = bytes(stream.read(max_bytes + 1))
        except FileNotFoundError as exc:
            return f"cannot be read: {exc}", None
        except OSError as exc:
            raise self._unreachable(exc) from exc
        return data, Seen(entry.size, entry.modified_at, read_at)

    def _entry(self, doc_id: str, info: pafs.FileInfo) -> SourceEntry:
        path, problem = f"{self.prefix}/{doc_id}", _supported(doc_id)
        return SourceEntry(doc_id, path, int(info.size), _utc(info.mtime), problem)

    def _call(self, list_it: Callable[[], T]) -> T:
        try:
            return list_it()
        except OSError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: OSError) -> Exception:
        return unreachable(self.root, exc, "a tenant's source prefix", "`embedops ingest --source`")


T = TypeVar("T")


class _Table:
    """A PostgreSQL table (core/cdc.py): a row is a document; its text and checksum come with the listing, so
    an unchanged row is recognised without a second read. The first full read creates the tenant's slot and
    reads in its snapshot; ``named`` reads the rows by primary key as they are now."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.source = cdc.TableSource.from_location(location)
        self._bodies: dict[str, bytes] = {}

    def exists(self) -> bool:
        cdc.validate(self.source)
        return True

    def entries(self, create_slot: bool = True) -> Iterator[SourceEntry]:
        rows = cdc.read_table(self.source)[1] if create_slot else cdc.read_current(self.source)
        return self._entries(rows)

    def named(self, doc_ids: list[str]) -> Iterator[SourceEntry]:
        row_ids = [r for r in map(self.source.row_id, doc_ids) if r is not None]
        return self._entries(cdc.read_rows(self.source, row_ids))

    def _entries(self, rows: list[cdc.Row]) -> Iterator[SourceEntry]:
        for row in rows:
            path = f"{self.location}#{row.doc_id}"
            if row.text is None:
                yield SourceEntry(row.doc_id, path, problem=row.problem)
                continue
            data = row.text.encode("utf-8")
            self._bodies[row.doc_id] = data
            yield SourceEntry(row.doc_id, path, len(data), None, None, sha256_bytes(data))

    def read(self, entry: SourceEntry, max_bytes: int, read_at: datetime) -> Body:
        """The row's text as read with the listing; its time is the change's commit time, else the read's."""
        data = self._bodies.pop(entry.doc_id)
        return data, Seen(len(data), entry.modified_at or read_at, read_at)


def _utc(moment: datetime) -> datetime:
    """An object's last-modified time as the documents table records it (microseconds, UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


Backend = _Folder | _ObjectStore | _Table


def _backend(root: SourceRoot) -> Backend:
    if cdc.is_table_location(root):
        return _Table(str(root))
    return _ObjectStore(str(root)) if is_remote(str(root)) else _Folder(Path(root))


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


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


def _read(tenant: str, backend: Backend, entry: SourceEntry, max_bytes: int) -> tuple[dict | str, Seen | None]:
    """The document's row, or why it cannot be indexed; with what the file looked like when read."""
    read_at = datetime.now(UTC)  # before the read: a write after it gets a later modification time
    data, seen = backend.read(entry, max_bytes, read_at)
    if isinstance(data, str):
        return data, seen
    if len(data) > max_bytes:
        grew = f"file grew over the {max_bytes}-byte limit while read; split it or raise EMBEDOPS_MAX_DOCUMENT_BYTES"
        return grew, None
    try:
        text = decode_source(data)
    except ValueError as exc:
        return str(exc), seen
    if not text.strip():
        return "empty or whitespace-only document", seen
    assert seen is not None
    return {
        "tenant": tenant,
        "doc_id": entry.doc_id,
        "suffix": PurePosixPath(entry.doc_id).suffix.lower(),
        "size": len(data),
        "modified_at": seen.modified_at,
        "checksum": sha256_bytes(data),
        "text": text,
        "read_at": read_at,
    }, seen
