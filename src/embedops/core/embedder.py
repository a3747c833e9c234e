"""Embedding models, loaded offline from the folder a space names, shared within a process.

The embedder counts the texts it sends to the model: ``calls`` is what the pipeline reports as
model calls, and what the tests hold to zero for an unchanged corpus.
"""

from __future__ import annotations

import gc
import json
import os
import re
import threading
from collections.abc import Iterable
from functools import cached_property, lru_cache
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

    def __init__(self, spec: ModelSpec, device: str = "cpu") -> None:
        self.spec = spec
        static_model = _static_model_class(spec) if spec.backend == "model2vec" else None
        folder = spec.model_dir()
        try:
            if static_model is not None:
                self._model: Any = static_model.from_pretrained(str(folder))
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
        """The loaded model's tokenizer, copied for counting on first use (a space's chunker reads the
        folder's tokenizer.json instead, see `load_tokenizer`, so loading to embed copies nothing)."""
        if self.spec.backend == "model2vec":
            return Tokenizer(self._model.tokenizer)  # a tokenizers.Tokenizer
        tokenizer = self._model.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)  # None for a slow tokenizer
        return Tokenizer(backend) if backend is not None else _SlowTokenizer(tokenizer)

    def count_tokens(self, text: str) -> int:
        return self.tokens.count_tokens(text)

    def unknown_share(self, text: str) -> float:
        return self.tokens.unknown_share(text)


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
        from tokenizers import Tokenizer as FastTokenizer

        path = folder / "tokenizer.json"
        return cls(FastTokenizer.from_file(str(path)), copy=False, by_words=by_words) if path.is_file() else None

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


def _static_model_class(spec: ModelSpec) -> Any:
    """model2vec's StaticModel: the optional backend, installed with the ``static`` extra."""
    try:
        from model2vec import StaticModel
    except ImportError:
        raise ModelLoadError(
            f"model {spec.name!r} uses the model2vec backend, which is not installed; "
            "install it with: pip install 'embedops[static]'"
        ) from None
    return StaticModel


@lru_cache(maxsize=8)
def _load_model(spec: ModelSpec, identity: str, device: str) -> _Model:
    # The counting tokenizers loaded for chunking go first (they load again if asked): the model brings its own
    # copy, and a run's chunking is over once it embeds. The static model's tokenizer holds 318 MiB.
    _load_tokenizer.cache_clear()
    model = _Model(spec, device)
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
