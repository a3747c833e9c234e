"""LangChain's indexing API and LlamaIndex's IngestionPipeline, set up as their docs recommend.

Both get the same SentenceTransformer (or static) model as embedops, wrapped in their embeddings
interface with a counter of texts sent to it, and read the same source folder on every sync.

- LangChain: ``langchain_core.indexing.index`` with an ``InMemoryRecordManager`` (langchain-core ships
  no SQL record manager), ``InMemoryVectorStore``, ``source_id_key="source"``, cleanup ``incremental``
  (``full`` on request), ``key_encoder="sha256"``.
- LlamaIndex: ``IngestionPipeline`` with ``SimpleDocumentStore``, ``DocstoreStrategy.UPSERTS_AND_DELETE``,
  ``SimpleVectorStore`` and its default in-memory ``IngestionCache``; documents keep their file path as id.

Chunking: ``splitter="embedops"`` gives both the embedops chunker (a LangChain split function, a
LlamaIndex ``TextSplitter``), so every tool embeds the same chunk texts; ``splitter="native"`` uses their
recommended splitters (``RecursiveCharacterTextSplitter``, ``SentenceSplitter``) at the same token
budget (200 tokens, 32 overlap, counted with the model's tokenizer).
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.data import read_folder
from bench.tools import Step, space_for

MAX_TOKENS, OVERLAP = 200, 32
SPLITTERS = ("embedops", "native")


def available() -> dict[str, bool]:
    """Which peers are installed (the ``bench`` extra)."""
    return {
        "langchain": bool(importlib.util.find_spec("langchain_core"))
        and bool(importlib.util.find_spec("langchain_text_splitters")),
        "llamaindex": bool(importlib.util.find_spec("llama_index")) and _has("llama_index.core"),
    }


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _embedder(model: str):  # type: ignore[no-untyped-def]
    from embedops.core.embedder import SpaceEmbedder

    with tempfile.TemporaryDirectory() as tmp:
        _, space = space_for(model, Path(tmp))
    return SpaceEmbedder(space, batch_size=32)


def embedops_split(embedder: Any) -> Callable[[str, str], list[str]]:
    """embedops' own preprocessing and chunker as a plain split function (suffix, text) -> chunk texts."""
    from embedops.core.chunking import chunk_document
    from embedops.core.preprocess import preprocess

    chunker = embedder.space.chunker

    def split(suffix: str, text: str) -> list[str]:
        clean = preprocess(text, suffix, embedder.space.preprocessing)
        pieces = chunk_document(clean, embedder.count_tokens, chunker.max_tokens, chunker.overlap_tokens,
                                chunker.min_tokens)
        return [p.text for p in pieces]

    return split


def _suffix(doc_id: str) -> str:
    return Path(doc_id).suffix.lower()


class LangChainTool:
    """LangChain ``index()``: a record manager of chunk hashes, cleanup by source id."""

    def __init__(
        self, folder: Path, model: str, splitter: str = "embedops", cleanup: str = "incremental", batch_size: int = 100
    ) -> None:
        from langchain_core.embeddings import Embeddings
        from langchain_core.indexing import InMemoryRecordManager
        from langchain_core.vectorstores import InMemoryVectorStore

        embedder = self.embedder = _embedder(model)

        class CountingEmbeddings(Embeddings):
            """The shared model; ``embedder.calls`` counts the texts sent to it."""

            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return embedder.encode(list(texts)).tolist()

            def embed_query(self, text: str) -> list[float]:
                return embedder.encode([text])[0].tolist()

        self.name = "langchain"
        self.folder, self.splitter, self.cleanup, self.batch_size = folder, splitter, cleanup, batch_size
        self.vector_store = InMemoryVectorStore(embedding=CountingEmbeddings())
        self.record_manager = InMemoryRecordManager(namespace="bench")
        self.record_manager.create_schema()
        if splitter == "embedops":
            self._split = embedops_split(embedder)
        else:
            from langchain_text_splitters import RecursiveCharacterTextSplitter

            self._native = RecursiveCharacterTextSplitter(
                chunk_size=MAX_TOKENS, chunk_overlap=OVERLAP, length_function=embedder.count_tokens
            )

    def _documents(self) -> list[Any]:
        from langchain_core.documents import Document

        docs = [Document(page_content=text, metadata={"source": doc_id}) for doc_id, text in read_folder(self.folder)]
        if self.splitter == "native":
            return self._native.split_documents(docs)
        return [
            Document(page_content=chunk, metadata={"source": d.metadata["source"]})
            for d in docs
            for chunk in self._split(_suffix(d.metadata["source"]), d.page_content)
        ]

    def sync(self, cleanup: str | None = None) -> Step:
        from langchain_core.indexing import index

        before = self.embedder.calls
        started = time.perf_counter()
        result = index(self._documents(), self.record_manager, self.vector_store, cleanup=cleanup or self.cleanup,
                       source_id_key="source", key_encoder="sha256", batch_size=self.batch_size)
        seconds = time.perf_counter() - started
        return Step(calls=self.embedder.calls - before, seconds=seconds, detail=dict(result))

    def chunks(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for item in self.vector_store.store.values():
            out.setdefault(item["metadata"]["source"], []).append(item["text"])
        return out

    def search(self, query: str, k: int) -> list[str]:
        return [d.metadata["source"] for d in self.vector_store.similarity_search(query, k=k)]


class LlamaIndexTool:
    """LlamaIndex ``IngestionPipeline`` with a docstore and the upserts-and-delete strategy."""

    name = "llamaindex"

    def __init__(self, folder: Path, model: str, splitter: str = "embedops") -> None:
        from llama_index.core.embeddings import BaseEmbedding
        from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
        from llama_index.core.node_parser import SentenceSplitter, TextSplitter
        from llama_index.core.storage.docstore import SimpleDocumentStore
        from llama_index.core.vector_stores import SimpleVectorStore
        from pydantic import PrivateAttr

        embedder = self.embedder = _embedder(model)

        class CountingEmbedding(BaseEmbedding):
            """The shared model; ``embedder.calls`` counts the texts sent to it."""

            def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
                return embedder.encode(list(texts)).tolist()

            def _get_text_embedding(self, text: str) -> list[float]:
                return self._get_text_embeddings([text])[0]

            def _get_query_embedding(self, query: str) -> list[float]:
                return self._get_text_embeddings([query])[0]

            async def _aget_query_embedding(self, query: str) -> list[float]:
                return self._get_query_embedding(query)

        class EmbedopsSplitter(TextSplitter):
            """embedops' preprocessing and chunker as a LlamaIndex text splitter."""

            _split: Any = PrivateAttr()

            def __init__(self, split: Callable[[str, str], list[str]], **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self._split = split

            def split_text(self, text: str) -> list[str]:
                return self._split(".md", text)

        if splitter == "embedops":
            split_fn = embedops_split(embedder)
            parser: Any = EmbedopsSplitter(split_fn)
        else:
            parser = SentenceSplitter(chunk_size=MAX_TOKENS, chunk_overlap=OVERLAP,
                                      tokenizer=lambda text: range(embedder.count_tokens(text)))
        self.embed_model = CountingEmbedding(embed_batch_size=32)
        self.folder = folder
        self.vector_store = SimpleVectorStore()
        self.pipeline = IngestionPipeline(
            transformations=[parser, self.embed_model],
            vector_store=self.vector_store,
            docstore=SimpleDocumentStore(),
            docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
        )
        self._texts: dict[str, str] = {}

    def sync(self) -> Step:
        from llama_index.core import Document

        before = self.embedder.calls
        started = time.perf_counter()
        docs = [Document(text=text, id_=doc_id) for doc_id, text in read_folder(self.folder)]
        nodes = self.pipeline.run(documents=docs)
        seconds = time.perf_counter() - started
        self._texts.update((n.node_id, n.get_content()) for n in nodes)
        return Step(calls=self.embedder.calls - before, seconds=seconds, detail={"nodes_written": len(nodes)})

    def chunks(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for node_id, ref in self.vector_store.data.text_id_to_ref_doc_id.items():
            if node_id in self.vector_store.data.embedding_dict:
                out.setdefault(ref, []).append(self._texts[node_id])
        return out

    def search(self, query: str, k: int) -> list[str]:
        from llama_index.core.vector_stores import VectorStoreQuery

        vector = self.embed_model.get_query_embedding(query)
        found = self.vector_store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=k))
        refs = self.vector_store.data.text_id_to_ref_doc_id
        return [refs[i] for i in found.ids or []]


def lancedb_probe(model: str = "static") -> dict[str, str]:
    """Does each peer's LanceDB integration survive an edit and a deletion? 'ok' or the error it raised."""
    from langchain_core.documents import Document as LCDocument

    out: dict[str, str] = {}
    embedder = _embedder(model)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            from langchain_core.embeddings import Embeddings
            from langchain_core.indexing import InMemoryRecordManager, index
            from langchain_lancedb import LanceDB

            class E(Embeddings):
                def embed_documents(self, texts: list[str]) -> list[list[float]]:
                    return embedder.encode(list(texts)).tolist()

                def embed_query(self, text: str) -> list[float]:
                    return embedder.encode([text])[0].tolist()

            store = LanceDB(embedding_function=E(), uri=f"{tmp}/lc")
            manager = InMemoryRecordManager(namespace="probe")
            manager.create_schema()
            docs = [LCDocument(page_content=f"text number {i}.", metadata={"source": f"d/{i}.md"}) for i in range(3)]
            index(docs, manager, store, cleanup="incremental", source_id_key="source", key_encoder="sha256")
            docs[1] = LCDocument(page_content="an edited text.", metadata={"source": "d/1.md"})
            index(docs[:2], manager, store, cleanup="full", source_id_key="source", key_encoder="sha256")
            rows = store._get_or_create_table()[0].count_rows()
            out["langchain-lancedb"] = "ok" if rows == 2 else f"wrong row count after edit and delete: {rows}"
        except Exception as exc:  # a probe: report what the integration raised
            out["langchain-lancedb"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        try:
            from llama_index.core import Document
            from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
            from llama_index.core.storage.docstore import SimpleDocumentStore
            from llama_index.vector_stores.lancedb import LanceDBVectorStore

            tool = LlamaIndexTool(Path(tmp), model)
            pipeline = IngestionPipeline(
                transformations=tool.pipeline.transformations,
                vector_store=LanceDBVectorStore(uri=f"{tmp}/li", table_name="probe"),
                docstore=SimpleDocumentStore(),
                docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE,
            )
            docs = [Document(text=f"text number {i}.", id_=f"d/{i}.md") for i in range(3)]
            pipeline.run(documents=docs)
            docs[1] = Document(text="an edited text.", id_="d/1.md")
            pipeline.run(documents=docs[:2])
            out["llama-index-vector-stores-lancedb"] = "ok"
        except Exception as exc:  # a probe: report what the integration raised
            out["llama-index-vector-stores-lancedb"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return out
