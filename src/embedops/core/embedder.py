"""Embedding models, loaded offline from the folder a space names, shared within a process.

The embedder counts the texts it sends to the model: ``calls`` is what the pipeline reports as
model calls, and what the tests hold to zero for an unchanged corpus.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import threading
from collections.abc import Iterable
from functools import cached_property, lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embedops.core.memory import release_freed_memory
from embedops.core.spaces import ModelSpec, SpaceSpec
from embedops.core.token_counts import WordCounts, unknown_characters
from embedops.core.vectors import normalize
from embedops.errors import ModelLoadError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class Embedder(Protocol):
    identity: str
    dimension: int
    calls: int

    @property
    def max_seq_length(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...

    def unknown_share(self, text: str) -> float:
        """Share of the visible characters of ``text`` the tokenizer reads as its unknown token (0..1)."""
        ...


@runtime_checkable
class Prefetching(Protocol):
    """An embedder that embeds elsewhere (a Ray cluster): told every text a run will ask for before the first
    ``encode``, so that its workers start on all of them at once; ``progress`` is what it reports."""

    def prefetch(self, texts: Iterable[tuple[str, str]]) -> None:
        """Start on these (cache key, text) pairs; ``encode`` then returns their vectors as they arrive."""
        ...

    def progress(self) -> dict[str, float]: ...


class _Model:
    """A loaded model of either backend, with a thread-safe count of texts sent to it."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", tokens: Tokenizer | None = None) -> None:
        """``tokens``: for a static model in model2vec's own layout, its folder's tokenizer already loaded
        (the chunker's), which it then shares; without it the tokenizer is read from the folder."""
        self.spec = spec
        static = spec.backend == "model2vec"
        if static and importlib.util.find_spec("model2vec") is None:
            raise ModelLoadError(
                f"model {spec.name!r} uses the model2vec backend, which is not installed; "
                "install it with: pip install 'embedops[static]'"
            )
        folder = spec.model_dir()
        self._shared: Tokenizer | None = None
        try:
            if static and _in_static_layout(folder):
                self._shared = tokens or Tokenizer.read(folder / "tokenizer.json")
                self._model: Any = StaticVectors(folder, self._shared)
                self.dimension = self._model.dim
                self.max_seq_length = spec.max_seq_length
            elif static:
                from model2vec import StaticModel

                self._model = StaticModel.from_pretrained(str(folder))
                self.dimension = int(self._model.dim)
                self.max_seq_length = spec.max_seq_length
            else:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(folder), device=device, local_files_only=True)
                self.dimension = int(self._model.get_embedding_dimension())
                self.max_seq_length = int(self._model.max_seq_length)
        except Exception as exc:  # the loaders raise many types; one clear error names the folder
            raise _load_error(spec, folder, exc) from exc
        self.calls = 0
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        with self._lock:
            self.calls += len(texts)
        if self.spec.backend == "model2vec":
            out = self._model.encode(texts, batch_size=batch_size)
        else:
            out = self._model.encode(texts, batch_size=batch_size, convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32)

    @cached_property
    def tokens(self) -> Tokenizer | _SlowTokenizer:
        """The loaded model's tokenizer for counting: a static model's is the one it shares with the chunker;
        any other model's is copied on first use (a space's chunker reads the folder's tokenizer.json instead,
        see `load_tokenizer`, so loading to embed copies nothing)."""
        if self._shared is not None:
            return self._shared
        if self.spec.backend == "model2vec":
            return Tokenizer(self._model.tokenizer)  # a tokenizers.Tokenizer
        tokenizer = self._model.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)  # None for a slow tokenizer
        return Tokenizer(backend) if backend is not None else _SlowTokenizer(tokenizer)

    def count_tokens(self, text: str) -> int:
        return self.tokens.count_tokens(text)

    def unknown_share(self, text: str) -> float:
        return self.tokens.unknown_share(text)


class StaticVectors:
    """A static model in model2vec's layout (model.safetensors, tokenizer.json, config.json), embedding as
    model2vec's ``StaticModel.encode`` does: a text's vector is the mean of its tokens' rows.

    A text is cut to ``max_length`` times the vocabulary's median token length in characters, then to
    ``max_length`` tokens; the unknown token's id is left out; a vocabulary-quantized model looks its
    tokens' rows up through ``mapping`` and scales them by ``weights``; the mean is normalized when the
    config says so. It reads the files itself and shares the chunker's tokenizer: model2vec's loader parses
    tokenizer.json and then copies it (two copies of the 318 MiB the static model's vocabulary takes in
    memory, and about 3 s), and its encode loops over texts one by one in Python where this takes whole
    batches in numpy.
    """

    def __init__(self, folder: Path, tokens: Tokenizer) -> None:
        from safetensors import safe_open

        config = json.loads((folder / "config.json").read_text())
        with safe_open(str(folder / "model.safetensors"), framework="numpy") as tensors:
            names = set(tensors.keys())
            self._rows: np.ndarray = tensors.get_tensor("embeddings")
            self._weights = tensors.get_tensor("weights").astype(np.float32) if "weights" in names else None
            self._mapping = tensors.get_tensor("mapping") if "mapping" in names else None
        vocabulary = tokens.backend.get_vocab_size()
        table = len(self._rows) if self._mapping is None else len(self._mapping)
        if table != vocabulary or (self._weights is not None and len(self._weights) != vocabulary):
            raise ValueError(f"model.safetensors holds {table} token rows for a vocabulary of {vocabulary}")
        self._tokens = tokens
        self._normalize = bool(config.get("normalize", False))
        self._max_length: int | None = config.get("max_length", 512)
        self.dim = int(self._rows.shape[1])

    @cached_property
    def _median_token_length(self) -> int:
        return int(np.median([len(piece) for piece in self._tokens.backend.get_vocab()]))

    def encode(self, texts: list[str], batch_size: int = 1024) -> np.ndarray:
        parts = [self._encode(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def _encode(self, texts: list[str]) -> np.ndarray:
        limit = self._max_length
        if limit is not None and any(len(text) > limit for text in texts):  # a token is at least a character
            texts = [text[: limit * self._median_token_length] for text in texts]
        encodings = self._tokens.backend.encode_batch_fast(texts, add_special_tokens=False)
        ids = [encoding.ids[:limit] for encoding in encodings]
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        flat = np.fromiter(chain.from_iterable(ids), np.int64, int(lengths.sum()))
        owners = np.repeat(np.arange(len(ids)), lengths)
        unknown = self._tokens.unknown_id
        if unknown is not None:
            known = flat != unknown
            flat, owners = flat[known], owners[known]
        rows = self._rows[flat if self._mapping is None else self._mapping[flat]].astype(np.float32)
        if self._weights is not None:
            rows *= self._weights[flat, None]
        counts = np.bincount(owners, minlength=len(texts))
        out = np.zeros((len(texts), self.dim), np.float32)
        filled = np.flatnonzero(counts)
        if filled.size:
            starts = (np.cumsum(counts) - counts)[filled]
            out[filled] = np.add.reduceat(rows, starts, axis=0) / counts[filled, None]
        return normalize(out) if self._normalize else out


def _in_static_layout(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("model.safetensors", "tokenizer.json", "config.json"))


class Tokenizer:
    """A model's fast tokenizer on its own: what chunking needs (token counts, unknown text), no weights.

    It is a copy with truncation and padding off, so the model's own encoding (which truncates to its
    sequence length) never shortens a count. When its pipeline reads each word apart (see
    `embedops.core.token_counts`), a count is the sum of its lines' and words' counts, each kept after its
    first encoding. Otherwise every text is encoded whole and the last 256 encodings are kept (the chunker
    counts a chunk's text and then asks how much of it is unknown: one encoding, not two). ``by_words=False``
    encodes every text whole.
    """

    def __init__(self, backend: Any, copy: bool = True, by_words: bool = True) -> None:
        from tokenizers import Tokenizer as FastTokenizer

        serialized = backend.to_str()  # tokenizer.json: its model and pipeline
        self._backend = FastTokenizer.from_str(serialized) if copy else backend
        self._backend.no_truncation()
        self._backend.no_padding()
        spec = json.loads(serialized)
        self._unknown = _unknown_token(self._backend, spec)
        self._encode = lru_cache(maxsize=256)(self._encoding)
        self._words = WordCounts.for_tokenizer(self._backend, spec, self._unknown) if by_words else None

    @classmethod
    def from_folder(cls, folder: Path, by_words: bool = True) -> Tokenizer | None:
        """The tokenizer in a model folder's tokenizer.json, or None when the folder has none."""
        path = folder / "tokenizer.json"
        return cls.read(path, by_words) if path.is_file() else None

    @classmethod
    def read(cls, path: Path, by_words: bool = True) -> Tokenizer:
        """The tokenizer a tokenizer.json describes."""
        from tokenizers import Tokenizer as FastTokenizer

        return cls(FastTokenizer.from_file(str(path)), copy=False, by_words=by_words)

    @property
    def backend(self) -> Any:
        """The `tokenizers.Tokenizer` itself (no truncation, no padding); encoding through it is thread-safe."""
        return self._backend

    @property
    def unknown_id(self) -> int | None:
        """The id under which the tokenizer emits text it cannot read, or None when it has none."""
        return None if self._unknown is None else self._unknown[0]

    @property
    def by_words(self) -> bool:
        """Whether texts are counted by their lines and words (else every text is encoded whole)."""
        return self._words is not None

    def _encoding(self, text: str) -> Any:
        return self._backend.encode(text, add_special_tokens=False)

    def learn_words(self, texts: Iterable[str]) -> None:
        """Count at once the words of texts about to be measured (nothing when texts are encoded whole)."""
        if self._words is not None:
            self._words.learn(texts)

    def count_tokens(self, text: str) -> int:
        if self._words is not None:
            return self._words.measure(text)[0]
        return len(self._encode(text).ids)

    def unknown_share(self, text: str) -> float:
        """Share of the non-space characters of ``text`` covered by unknown tokens (0..1); 0.0 when the
        tokenizer has no unknown token."""
        if self._unknown is None:
            return 0.0
        if self._words is not None:
            _, unknown, visible = self._words.measure(text)
        else:
            unknown = unknown_characters(self._encode(text), self._unknown)
            visible = len(text) - sum(len(space) for space in _SPACES.findall(text)) if unknown else 0
        return min(1.0, unknown / visible) if unknown and visible else 0.0


class _SlowTokenizer:
    """A model whose tokenizer has no fast (Rust) form: counts through it; it gives no character offsets,
    so no text is known to be unknown."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def unknown_share(self, text: str) -> float:
        return 0.0

    def learn_words(self, texts: Iterable[str]) -> None:
        """Nothing to learn: every text is encoded whole."""


_SPACES = re.compile(r"\s+")


def _unknown_token(tokenizer: Any, spec: dict) -> tuple[int, str | None] | None:
    """How a `tokenizers.Tokenizer` marks unknown text: (id, the vocabulary piece that id also stands for,
    if any), or None when it has no unknown token.

    WordPiece and BPE name their unknown token ("[UNK]"): every token with its id is unknown. Unigram
    gives only an id and emits unknown text under it as the text itself; in a distilled vocabulary that id
    can also be a real piece (model2vec's static model: id 3 is "."), which is then not unknown.
    """
    model = spec.get("model") or {}
    if model.get("unk_token"):
        unknown_id = tokenizer.token_to_id(model["unk_token"])
        return None if unknown_id is None else (unknown_id, None)
    if model.get("unk_id") is not None:
        return int(model["unk_id"]), tokenizer.id_to_token(int(model["unk_id"]))
    return None


def load_tokenizer(spec: ModelSpec) -> Tokenizer | _SlowTokenizer:
    """A model's tokenizer, from its folder's tokenizer.json when it has one (milliseconds, and no
    weights), else from the loaded model. Shared within the process like the model."""
    return _load_tokenizer(spec, spec.identity)


@lru_cache(maxsize=8)
def _load_tokenizer(spec: ModelSpec, identity: str) -> Tokenizer | _SlowTokenizer:
    folder = spec.model_dir()
    try:
        tokens = Tokenizer.from_folder(folder)
    except Exception as exc:  # a broken tokenizer.json: the model would not load either
        raise _load_error(spec, folder, exc) from exc
    if tokens is None:
        return load_model(spec).tokens
    release_freed_memory()
    return tokens


def _load_error(spec: ModelSpec, folder: Path, exc: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"model {spec.name!r} could not be loaded from {folder}: {exc}; reinstall the package "
        "that ships it or fix the space's model 'path'"
    )


def load_model(spec: ModelSpec, device: str = "cpu") -> _Model:
    """Load a model once per process (and device); every space that names it shares the instance.

    Keyed on the model's identity too, so weights replaced in a model folder are loaded anew. ``device``
    (``cpu``, ``cuda``) places a sentence-transformers model; the static model runs on the CPU.
    """
    return _load_model(spec, spec.identity, device)


@lru_cache(maxsize=8)
def _load_model(spec: ModelSpec, identity: str, device: str) -> _Model:
    # A static model in model2vec's layout shares the chunker's tokenizer (318 MiB for the static model).
    # Any other model brings its own copy, so the counting tokenizers loaded for chunking go first (they load
    # again if asked): a run's chunking is over once it embeds.
    shared = None
    if spec.backend == "model2vec" and _in_static_layout(spec.model_dir()):
        shared = _load_tokenizer(spec, identity)
    else:
        _load_tokenizer.cache_clear()
    model = _Model(spec, device, shared if isinstance(shared, Tokenizer) else None)
    release_freed_memory()
    return model


def release_models() -> None:
    """Drop the process's loaded models and counting tokenizers (each loads again when next asked) and hand
    their memory back: for work that embeds nothing and needs the room, such as building a vector index."""
    _load_model.cache_clear()
    _load_tokenizer.cache_clear()
    gc.collect()
    release_freed_memory()


def fresh_model(spec: ModelSpec) -> _Model:
    """Load a model from its files now, bypassing the process's shared instance."""
    return _Model(spec)


class SpaceEmbedder:
    """Embeds texts the way a space says: its model, its normalization, its dimension.

    The model is loaded on the first call that embeds, so a run with nothing to embed loads none;
    ``loaded`` says whether it has been. Counting tokens (chunking) needs only the tokenizer.
    """

    def __init__(self, space: SpaceSpec, batch_size: int = 32, device: str = "cpu") -> None:
        self.space = space
        self.batch_size = batch_size
        self.device = device
        self.identity = space.model.identity
        self.dimension = space.dimension
        self.calls = 0
        self._loaded: _Model | None = None
        self._tokenizer: Tokenizer | _SlowTokenizer | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def _model(self) -> _Model:
        if self._loaded is None:
            self._tokenizer = None  # held for chunking; `_tokens` takes it (or a new copy) again if asked
            model = load_model(self.space.model, self.device)
            if model.dimension != self.space.dimension:
                raise ModelLoadError(
                    f"space {self.space.name!r} declares dimension {self.space.dimension} but model "
                    f"{self.space.model.name!r} produces {model.dimension}; fix 'dimension' in the space config"
                )
            self._loaded = model
        return self._loaded

    @property
    def max_seq_length(self) -> int:
        return self._model.max_seq_length

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.calls += len(texts)
        vectors = self._model.encode(texts, self.batch_size)
        return (normalize(vectors) if self.space.normalize else vectors).astype(np.float32)

    def count_tokens(self, text: str) -> int:
        return self._tokens.count_tokens(text)

    def unknown_share(self, text: str) -> float:
        return self._tokens.unknown_share(text)

    def learn_words(self, texts: Iterable[str]) -> None:
        """See `Tokenizer.learn_words`: a chunker calls it with a batch of documents before chunking them."""
        self._tokens.learn_words(texts)

    @property
    def _tokens(self) -> Tokenizer | _SlowTokenizer:
        """The tokenizer alone: chunking a changed document loads no weights."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.space.model)
        return self._tokenizer
