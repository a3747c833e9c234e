"""Token counts by words: a tokenizer that reads each whitespace-separated word on its own is asked once per word.

Chunking counts the tokens of every paragraph, heading and chunk it composes, and the unknown text of every
chunk; each count through the tokenizer costs a full encoding (0.3-0.5 ms for a paragraph). For a tokenizer
whose normalizer works character by character and whose pre-tokenizer splits on whitespace before the model
sees anything (BERT's WordPiece; SentencePiece-style Unigram behind ``WhitespaceSplit`` + ``Metaspace``), the
tokens of a text are the tokens of its words, one after another: the model segments each pre-token alone. So a
text's count is the sum of its words' counts, kept in a bounded memo; words not seen yet are encoded together.
The same holds for the characters under unknown tokens, so the unknown share is exact too.

A text is measured line by line (when the tokenizer splits at ``\n``), and each line's measure is kept: a
chunk is composed of lines already measured as paragraphs, so counting it is a few lookups. A line where
Python and the tokenizer could disagree on what a word is, is encoded whole: one with a character outside a
safe set (control and format characters, combining marks that join a preceding space into one grapheme,
whitespace other than the separators the tokenizer was checked to split on) or an added token's text
(``[CLS]``). A text with ``\r`` is one line (``\r\n`` is one character to the normalizer). A tokenizer whose
tokenizer.json names any other normalizer, pre-tokenizer, model or post-processor encodes every text whole.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np

# Words (and lines) and their characters kept at most (about 40 MB each); a memo starts over when full.
MAX_WORDS = 1 << 18
MAX_CHARS = 1 << 23

# Blocks whose letters, digits, punctuation and symbols are safe inside a word: none is whitespace to Python
# or to the tokenizer, none joins a neighbouring space into one grapheme (no marks, no format characters, no
# Prepend characters), so a word's normalized text is the same alone and in its text.
_WORD_BLOCKS = (
    (0x21, 0x7E),  # ASCII printable
    (0xA1, 0x2FF),  # Latin-1, Latin Extended-A/B, IPA, spacing modifiers
    (0x370, 0x52F),  # Greek, Cyrillic
    (0x2010, 0x2027),  # dashes, quotes, bullets
    (0x2030, 0x205E),  # per mille, primes, other punctuation
    (0x20A0, 0x20C0),  # currency
    (0x2100, 0x2BFF),  # letterlike, arrows, mathematical, technical, shapes, dingbats
    (0x3001, 0x30FF),  # CJK punctuation, kana
    (0x4E00, 0x9FFF),  # CJK ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
)
_SEPARATORS = " \n\t"
_NORMALIZERS = frozenset({"BertNormalizer", "Precompiled", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents"})
_WORD_SPLITTERS = frozenset({"BertPreTokenizer", "WhitespaceSplit", "Whitespace"})
_INNER_SPLITTERS = frozenset({"Punctuation", "Digits"})
_MODELS = frozenset({"WordPiece", "Unigram", "WordLevel", "BPE"})
_POST_PROCESSORS = frozenset({"TemplateProcessing", "BertProcessing"})
_SPACES = re.compile(r"\s+")
_PROBE = "Tides rise, fall & turn (twice) a day: 42 times; x"


@cache
def _word_class() -> str:
    """The safe word characters as a regular-expression class body."""
    ranges: list[tuple[int, int]] = []
    for low, high in _WORD_BLOCKS:
        for point in range(low, high + 1):
            if unicodedata.category(chr(point))[0] not in "LNPS" or chr(point).isspace():
                continue
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1] = (ranges[-1][0], point)
            else:
                ranges.append((point, point))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def unknown_characters(encoding: Any, unknown: tuple[int, str | None]) -> int:
    """Characters of an encoding's text covered by unknown tokens (see `embedder._unknown_token`)."""
    unknown_id, vocabulary_piece = unknown
    if unknown_id not in encoding.ids:
        return 0
    found = covered = 0
    for token, piece, (start, end) in zip(encoding.ids, encoding.tokens, encoding.offsets, strict=True):
        if token == unknown_id and piece != vocabulary_piece and end > covered:
            found += end - max(start, covered)
            covered = end
    return found


def reads_words_apart(spec: dict) -> bool:
    """Whether a tokenizer.json's pipeline tokenizes each whitespace-separated word on its own."""
    normalizer = spec.get("normalizer")
    normalizers = _flatten(normalizer, "normalizers") if normalizer else []
    pre_tokenizers = _flatten(spec.get("pre_tokenizer"), "pretokenizers")
    model = spec.get("model") or {}
    post = spec.get("post_processor")
    return (
        all(n.get("type") in _NORMALIZERS for n in normalizers)
        and bool(pre_tokenizers)
        and all(_word_pre_tokenizer(p) or p.get("type") in _INNER_SPLITTERS for p in pre_tokenizers)
        and any(_word_pre_tokenizer(p) for p in pre_tokenizers)
        and model.get("type") in _MODELS
        and not model.get("dropout")
        and (post is None or post.get("type") in _POST_PROCESSORS)
    )


def _flatten(part: dict | None, key: str) -> list[dict]:
    if not part:
        return []
    if part.get("type") == "Sequence":
        return [leaf for inner in part.get(key, []) for leaf in _flatten(inner, key)]
    return [part]


def _word_pre_tokenizer(part: dict) -> bool:
    """A pre-tokenizer that splits at whitespace and treats every word alike (Metaspace: a marker on each)."""
    if part.get("type") == "Metaspace":
        scheme = part.get("prepend_scheme", "always" if part.get("add_prefix_space", True) else "never")
        return bool(part.get("split", True)) and scheme in ("always", "never")
    return part.get("type") in _WORD_SPLITTERS


Measure = tuple[int, int, int]  # tokens, characters under unknown tokens, non-space characters


class WordCounts:
    """Per-word (and per-line) token and unknown-character counts of one `tokenizers.Tokenizer`; see
    `for_tokenizer`, which gives None when its pipeline does not read words apart."""

    def __init__(self, backend: Any, unknown: tuple[int, str | None] | None, separators: str, added: list[str]):
        self._backend = backend
        self._unknown = unknown
        self._unsafe = re.compile(f"[^{re.escape(separators)}{_word_class()}]")
        self._added = tuple(added)
        self._by_lines = "\n" in separators and not any(any(c.isspace() for c in token) for token in added)
        self._tokens: dict[str, int] = {}
        self._unknown_chars: dict[str, int] = {}  # only words with unknown characters
        self._lines: dict[str, Measure] = {}
        self._word_chars = self._line_chars = 0  # characters of the words and lines kept
        self._lock = threading.Lock()

    @classmethod
    def for_tokenizer(
        cls, backend: Any, spec: dict, unknown: tuple[int, str | None] | None
    ) -> WordCounts | None:
        """Counts for ``backend`` (``spec`` is its tokenizer.json), or None when they would not be exact."""
        if not reads_words_apart(spec):
            return None
        separators = "".join(s for s in _SEPARATORS if _splits_at(backend, s))
        added = [token["content"] for token in spec.get("added_tokens") or [] if token.get("content")]
        return cls(backend, unknown, separators, added) if separators else None

    def measure(self, text: str) -> Measure:
        """(tokens, characters under unknown tokens, non-space characters) of ``text``, as one encoding of
        it would give."""
        lines = text.split("\n") if self._by_lines and "\r" not in text else [text]
        with self._lock:
            kept = self._lines
            try:
                measures = [kept[line] for line in lines]
            except KeyError:
                measures = [kept[line] if line in kept else self._measure_line(line) for line in lines]
        if len(measures) == 1:
            return measures[0]
        tokens = unknown = visible = 0
        for line_tokens, line_unknown, line_visible in measures:
            tokens += line_tokens
            unknown += line_unknown
            visible += line_visible
        return tokens, unknown, visible

    def learn(self, texts: Iterable[str]) -> None:
        """Count in one encoding the words of ``texts`` not kept yet. A chunker about to measure a batch of
        documents calls it first: their paragraphs and chunks then cost look-ups, not an encoding per
        document for the few words each adds. Words that could not be read apart are left out."""
        words: set[str] = set()
        for text in texts:
            words.update(text.split())
        with self._lock:
            new = [
                word
                for word in words.difference(self._tokens)
                if self._unsafe.search(word) is None and not any(token in word for token in self._added)
            ]
            if new:
                self._learn(new)

    def _measure_line(self, line: str) -> Measure:
        """Measure a line by its words, or by encoding it whole, and keep it (the caller holds the lock)."""
        words = self._words(line)
        if words is None:
            encoding = self._backend.encode(line, add_special_tokens=False)
            unknown = unknown_characters(encoding, self._unknown) if self._unknown else 0
            measure = (len(encoding.ids), unknown, len(line) - sum(map(len, _SPACES.findall(line))))
        else:
            try:
                tokens = sum(map(self._tokens.__getitem__, words))
            except KeyError:
                self._learn(words)
                tokens = sum(map(self._tokens.__getitem__, words))
            found = self._unknown_chars
            unknown = sum(found[word] for word in words if word in found) if found else 0
            measure = (tokens, unknown, sum(map(len, words)))
        if len(self._lines) >= MAX_WORDS or self._line_chars + len(line) > MAX_CHARS:
            self._lines.clear()
            self._line_chars = 0
        self._lines[line] = measure
        self._line_chars += len(line)
        return measure

    def _words(self, line: str) -> list[str] | None:
        """The words of ``line``, or None when it must be encoded whole."""
        if self._unsafe.search(line) is not None:
            return None
        for token in self._added:
            if token in line:
                return None
        return line.split()

    def _learn(self, words: list[str]) -> None:
        """Count the words not kept yet (the caller holds the lock).

        They are encoded as one text, one space apart, and each token is given to the word its character
        offsets fall in: one encoding costs far less than one per word. Should a token's offsets leave its
        word, the words are encoded one by one instead.
        """
        new = list(set(words).difference(self._tokens))
        chars = sum(map(len, new))
        if len(self._tokens) + len(new) > MAX_WORDS or self._word_chars + chars > MAX_CHARS:
            self._tokens.clear()
            self._unknown_chars.clear()
            new = list(set(words))
            chars = self._word_chars = sum(map(len, new))
        else:
            self._word_chars += chars
        counts = self._count_joined(new)
        if counts is None:
            encodings = self._backend.encode_batch(new, add_special_tokens=False)
            counts = [
                (len(e.ids), unknown_characters(e, self._unknown) if self._unknown else 0) for e in encodings
            ]
        for word, (tokens, unknown) in zip(new, counts, strict=True):
            self._tokens[word] = tokens
            if unknown:
                self._unknown_chars[word] = unknown

    def _count_joined(self, words: list[str]) -> list[tuple[int, int]] | None:
        """(tokens, unknown characters) of each word, from one encoding of the words joined by spaces."""
        starts, ends, position = [], [], 0
        for word in words:
            starts.append(position)
            position += len(word)
            ends.append(position)
            position += 1
        encoding = self._backend.encode(" ".join(words), add_special_tokens=False)
        offsets = encoding.offsets
        if not offsets:
            return [(0, 0)] * len(words)
        spans = np.asarray(offsets, dtype=np.int64)
        owners = np.searchsorted(np.asarray(starts, dtype=np.int64), spans[:, 0], side="right") - 1
        if (owners < 0).any() or (spans[:, 1] > np.asarray(ends, dtype=np.int64)[owners]).any() or (
            spans[:, 1] < spans[:, 0]
        ).any():
            return None
        tokens = np.bincount(owners, minlength=len(words)).tolist()
        unknown = [0] * len(words)
        if self._unknown and self._unknown[0] in encoding.ids:
            unknown_id, vocabulary_piece = self._unknown
            covered = 0
            for owner, token, piece, (start, end) in zip(
                owners.tolist(), encoding.ids, encoding.tokens, offsets, strict=True
            ):
                if token == unknown_id and piece != vocabulary_piece and end > covered:
                    unknown[owner] += end - max(start, covered)
                    covered = end
        return list(zip(tokens, unknown, strict=True))


def _splits_at(backend: Any, separator: str) -> bool:
    """Whether the tokenizer reads text joined by ``separator`` as its words one after another."""
    words = _PROBE.split()
    whole = backend.encode(separator.join(words), add_special_tokens=False).ids
    alone = backend.encode_batch(words, add_special_tokens=False)
    return bool(whole) and whole == [token for encoding in alone for token in encoding.ids]
