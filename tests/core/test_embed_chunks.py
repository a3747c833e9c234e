"""embed_chunks: the cache answers for known text, the model for the rest; a bad text fails alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from embedops.core.cache import EmbeddingCache
from embedops.core.ingest import CHUNKS_SCHEMA, embed_chunks
from embedops.core.spaces import DEFAULT_SPACE


class FakeEncoder:
    """A stand-in model (named as a fake): deterministic vectors, refuses any text containing POISON."""

    identity = "fake-model@1"
    dimension = DEFAULT_SPACE.dimension

    def __init__(self) -> None:
        self.sent: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        if any("POISON" in t for t in texts):
            raise ValueError("cannot embed this text")
        self.sent.extend(texts)
        return np.stack([np.full(self.dimension, len(t), dtype=np.float32) for t in texts])


def chunks(docs: dict[str, list[str]]) -> pa.Table:
    rows = [
        {"tenant": "acme", "doc_id": doc, "chunk_id": f"{doc}-{i}", "seq": i, "text": text, "text_hash": text,
         "token_count": 3, "source_checksum": "c", "source_modified_at": None, "space_id": DEFAULT_SPACE.space_id,
         "config_hash": "h"}
        for doc, texts in docs.items()
        for i, text in enumerate(texts)
    ]
    return pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA)


def test_a_failing_text_quarantines_its_document_and_only_it(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    docs = {"a.md": [f"alpha {i}" for i in range(10)], "b.md": ["beta", "POISON here"], "c.md": ["gamma"]}
    result = embed_chunks(chunks(docs), DEFAULT_SPACE, encoder, EmbeddingCache(tmp_path / "c.sqlite"), group_size=8)
    assert result.quarantined == [
        {"doc_id": "b.md", "stage": "embedding", "reason": "embedding failed: ValueError: cannot embed this text"}
    ]
    assert set(result.rows.column("doc_id").to_pylist()) == {"a.md", "c.md"}
    assert sorted(encoder.sent) == sorted([*docs["a.md"], "beta", "gamma"])  # every good text embedded once


def test_cached_and_repeated_texts_cost_no_model_call(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    first = embed_chunks(chunks({"a.md": ["one", "two", "one"]}), DEFAULT_SPACE, FakeEncoder(), cache)
    assert (first.model_calls, first.cache_hits, first.rows.num_rows) == (2, 0, 3)
    encoder = FakeEncoder()
    again = embed_chunks(chunks({"b.md": ["two", "three"]}), DEFAULT_SPACE, encoder, cache)
    assert (again.model_calls, again.cache_hits) == (1, 1) and encoder.sent == ["three"]
