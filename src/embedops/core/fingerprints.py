"""Content hashes: the identities that make re-ingestion incremental."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
