"""embed_chunks: the cache answers for known text, the model for the rest; a bad text fails alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from embedops.core.cache import EmbeddingCache
from embedops.core.embedder import SpaceEmbedder, Tokenizer, load_model
from embedops.core.ingest import CHUNKS_SCHEMA, EmbeddingResult, embed_chunks
from embedops.core.spaces import DEFAULT_SPACE
from embedops.core.stores.base import index_schema
from embedops.core.tables import Collector


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


def embed(
    table: pa.Table, encoder: FakeEncoder, cache: EmbeddingCache, **kwargs: int
) -> tuple[EmbeddingResult, pa.Table]:
    out = Collector(index_schema(DEFAULT_SPACE.dimension))
    return embed_chunks(table, DEFAULT_SPACE, encoder, cache, out, **kwargs), out.table()


def test_a_failing_text_quarantines_its_document_and_only_it(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    docs = {"a.md": [f"alpha {i}" for i in range(10)], "b.md": ["beta", "POISON here"], "c.md": ["gamma"]}
    result, rows = embed(chunks(docs), encoder, EmbeddingCache(str(tmp_path)), group_size=8)
    assert result.quarantined == [
        {"doc_id": "b.md", "stage": "embedding",
         "reason": "model failed: ValueError: cannot embed this text; no previous vectors; retried on the next run"}
    ]
    assert set(rows.column("doc_id").to_pylist()) == {"a.md", "c.md"} and result.rows == rows.num_rows == 11
    assert sorted(encoder.sent) == sorted([*docs["a.md"], "beta", "gamma"])  # every good text embedded once


def test_cached_and_repeated_texts_cost_no_model_call(tmp_path: Path) -> None:
    cache = EmbeddingCache(str(tmp_path))
    first, _ = embed(chunks({"a.md": ["one", "two", "one"]}), FakeEncoder(), cache)
    assert (first.model_calls, first.cache_hits, first.rows) == (2, 0, 3)
    encoder = FakeEncoder()
    again, _ = embed(chunks({"b.md": ["two", "three"]}), encoder, cache)
    assert (again.model_calls, again.cache_hits) == (1, 1) and encoder.sent == ["three"]


def test_batches_never_split_a_document(tmp_path: Path) -> None:
    """Streaming in batches of 3 rows gives the rows of one big batch; a bad text still drops its whole document."""
    docs = {"a.md": ["a0", "a1"], "b.md": ["b0", "b1", "b2", "b3", "POISON b4"], "c.md": ["c0"], "d.md": ["d0", "d1"]}
    whole, expected = embed(chunks(docs), FakeEncoder(), EmbeddingCache(str(tmp_path / "1")))
    streamed, rows = embed(chunks(docs), FakeEncoder(), EmbeddingCache(str(tmp_path / "2")), batch_rows=3)
    assert rows.drop_columns(["embedded_at"]).equals(expected.drop_columns(["embedded_at"]))
    assert "b.md" not in rows.column("doc_id").to_pylist() and streamed.quarantined == whole.quarantined
    assert (streamed.model_calls, streamed.rows) == (whole.model_calls, whole.rows) == (10, 5)


def test_the_tokenizer_alone_counts_as_the_loaded_model_does(
    minilm: SpaceEmbedder,
) -> None:
    """Chunking a changed document needs token counts, not weights: the model folder's tokenizer.json
    gives the same counts and unknown-text shares as the loaded model's tokenizer."""
    model = load_model(DEFAULT_SPACE.model)
    model.encode(["word " * 600], batch_size=1)  # the model's own encoding truncates; counting must not
    alone = Tokenizer.from_folder(DEFAULT_SPACE.model.model_dir())
    assert alone is not None
    texts = ["Lighthouses guide ships.", "word " * 600, "x" * 3000, "naïve café ÀÉÎ", "日本語のテキスト",
             "\u0080\u0081 ok", ""]
    assert [alone.count_tokens(t) for t in texts] == [model.count_tokens(t) for t in texts]
    assert [alone.unknown_share(t) for t in texts] == [model.unknown_share(t) for t in texts]
    assert alone.count_tokens("word " * 600) == 600 > DEFAULT_SPACE.model.max_seq_length
