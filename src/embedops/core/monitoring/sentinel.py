"""The model and text recipe "as they load today", for the sentinel drift check.

The pipeline shares one loaded model per process; a file swapped under the same name after that load
would go unseen. The sentinel loads the model again whenever the files in its folder change (size
or modification time), and re-derives the sentinel chunks' text from the materialized source with
today's preprocessing and chunking.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedops.core.chunking import chunk_in_space
from embedops.core.embedder import fresh_model
from embedops.core.fingerprints import FingerprintCache, folder_fingerprint
from embedops.core.spaces import ModelSpec, SpaceSpec
from embedops.core.vectors import normalize

# one model per process and spec, loaded again when the files in its folder change
_LOADED: FingerprintCache[ModelSpec, Any] = FingerprintCache()


class TodayEmbedder:
    """Embeds like a space does, with the model files as they are on disk now."""

    def __init__(self, space: SpaceSpec, batch_size: int = 32) -> None:
        self.space = space
        self.batch_size = batch_size
        fingerprint = folder_fingerprint(space.model.model_dir())
        self._model = _LOADED.get(space.model, fingerprint, lambda: fresh_model(space.model))
        self.dimension = int(self._model.dimension)

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, self.batch_size) if texts else np.zeros((0, self.dimension))
        return np.asarray(normalize(vectors) if self.space.normalize else vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return int(self._model.count_tokens(text))


def rederive(documents: pa.Table | None, doc_ids: set[str], space: SpaceSpec, embedder: TodayEmbedder) -> dict:
    """Chunk texts today's recipe makes from each document's materialized source: {doc_id: (checksum, texts)}."""
    out: dict[str, tuple[str, list[str]]] = {}
    if documents is None or not doc_ids:
        return out
    for doc in documents.filter(pc.is_in(documents["doc_id"], value_set=pa.array(sorted(doc_ids)))).to_pylist():
        pieces = chunk_in_space(doc["text"], doc["suffix"], space, embedder.count_tokens)
        out[doc["doc_id"]] = (doc["checksum"], [p.text for p in pieces])
    return out


def sentinel_texts(rows: list[dict], derived: dict[str, tuple[str, list[str]]]) -> tuple[list[str], list[str]]:
    """The text to embed today for each sentinel row, and the rows whose text today's recipe no longer makes.

    A row is compared on its own text unless its document (same source checksum) now yields other
    chunks; then the chunk at the same position stands in, so the distance shows the change.
    """
    texts, changed = [], []
    for row in rows:
        checksum, pieces = derived.get(row["doc_id"], (None, []))
        if checksum != row["source_checksum"] or not pieces or row["text"] in pieces:
            texts.append(row["text"])
            continue
        changed.append(row["chunk_id"])
        texts.append(pieces[min(int(row["seq"]), len(pieces) - 1)])
    return texts, changed
