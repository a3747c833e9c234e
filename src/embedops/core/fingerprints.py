"""Content hashes: the identities that make re-ingestion incremental."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_files(paths: Iterable[Path]) -> str:
    """sha256 of the files' bytes one after another, read in blocks."""
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """A cheap marker of a folder's files: their names, sizes and modification times (no content read)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        h.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


class FingerprintCache(Generic[K, V]):
    """One value per key for the life of the process, computed again only when the key's fingerprint
    changes (for a folder: ``folder_fingerprint``). Thread-safe; a value is computed under the lock."""

    def __init__(self) -> None:
        self._entries: dict[K, tuple[str, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, fingerprint: str, compute: Callable[[], V]) -> V:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != fingerprint:
                entry = (fingerprint, compute())
                self._entries[key] = entry
            return entry[1]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_hash(obj: Any, length: int = 12) -> str:
    """Short hash of a JSON-serialisable object in canonical form (sorted keys, no spaces)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()[:length]


def cache_key(model_identity: str, text: str) -> str:
    """sha256 of (model identity, exact text given to the model). Position and chunker do not enter."""
    h = hashlib.sha256()
    h.update(model_identity.encode("utf-8"))
    h.update(b"\x00")
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def chunk_id(doc_id: str, text_hash: str, occurrence: int) -> str:
    """Stable chunk id: the document, the chunk's text and which repeat of that text it is.

    Unchanged text keeps its id when other chunks of the document move.
    """
    return hashlib.sha256(f"{doc_id}\x00{text_hash}\x00{occurrence}".encode()).hexdigest()[:24]
