"""Structure-aware chunking with a hard token budget and a local edit blast radius.

A document is split at headings (markdown ``#`` lines and reStructuredText titles) into sections and
each section into paragraphs. Paragraphs are packed into chunks by rules that look only at nearby
paragraphs, so editing one sentence changes only the chunks around it:

* a paragraph of at least ``min_tokens`` is an *anchor*; the short paragraphs before it attach to it;
* a run of short paragraphs is also cut after a paragraph whose content hash says so (see
  ``_is_cut_point``) once it holds ``min_tokens``, and a group is flushed early when the next paragraph
  would break the budget; short paragraphs left at a section's end join the previous group if they fit;
* a paragraph over the budget is cut into sentence windows with content-defined cuts and an overlap;
  when the budget forces a cut first, it falls after the sentence with the smallest content hash.

Every chunk starts with its section's heading trail (``Title > Section``) on its own line, and
``count_tokens(chunk.text) <= max_tokens`` and ``len(chunk.text) <= max_tokens * MAX_CHARS_PER_TOKEN``
always hold. The character bound matters for text the tokenizer reads as few tokens: a WordPiece
tokenizer reads a word of over 100 characters as one unknown token, so a megabyte without a space
would otherwise be one "1-token" chunk. Inside the chunker a piece's size is the larger of its token
count and its characters over ``MAX_CHARS_PER_TOKEN``; for ordinary text that is its token count.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from embedops.core.preprocess import preprocess
from embedops.errors import ConfigError

if TYPE_CHECKING:
    from embedops.core.spaces import SpaceSpec

TokenCounter = Callable[[str], int]

PARAGRAPH_SEP = "\n\n"
HEADING_SEP = " > "
# Tokens allowed for the newline(s) that join two separately counted pieces. A WordPiece tokenizer
# needs 0; byte-level BPE may spend one on "\n\n". The final check in `_fit` catches any excess.
JOIN_ALLOWANCE = 1
# Ceiling on characters per token: ordinary text averages 3-6 characters per token, so only text the
# tokenizer barely reads (long unbroken runs) reaches it. A chunk holds at most max_tokens times this.
MAX_CHARS_PER_TOKEN = 16

_MARKDOWN_HEADING = re.compile(r"^ ?(#{1,6})[ \t]+(\S.*?)(?:[ \t]+#+)?[ \t]*$")
_ADORNMENT = re.compile(r"^([=\-~^*#])\1+[ \t]*$")
_FENCE = re.compile(r"^ ?(```|~~~)")
# A sentence ends at . ! or ? (plus closing quotes/brackets) and whitespace; we split there only if
# the next sentence starts with an upper-case letter, a digit or an opening quote. Newlines always split.
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*[ \t]+|[ \t]*\n\s*")
_SENTENCE_START_QUOTES = "\"'\u201c\u2018(["
# First characters of a line that may open a fence, a markdown heading or an adornment (of an
# reStructuredText title); a line starting otherwise, and not underlined, is body text.
_ADORNMENT_FIRST = frozenset("=-~^*#")
_MARKUP_FIRST = _ADORNMENT_FIRST | frozenset(" `")


@dataclass(frozen=True)
class Chunk:
    """One piece of a document as the model sees it; ``heading`` is the trail on its first line or ''."""

    seq: int
    text: str
    token_count: int
    heading: str


@dataclass(frozen=True)
class _Section:
    heading: str
    paragraphs: list[str]


@dataclass(frozen=True)
class _Piece:
    """A paragraph or a sentence with its size (see ``_Chunker.size``) measured once."""

    text: str
    tokens: int


def chunk_document(
    text: str, count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int, min_tokens: int
) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens as measured by ``count_tokens`` and at
    most ``max_tokens * MAX_CHARS_PER_TOKEN`` characters."""
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens or min_tokens < 0:
        raise ConfigError(
            f"chunker settings max_tokens={max_tokens}, overlap_tokens={overlap_tokens}, "
            f"min_tokens={min_tokens} are invalid; need max_tokens >= 1, 0 <= overlap_tokens < max_tokens "
            "and min_tokens >= 0"
        )
    chunker = _Chunker(count_tokens, max_tokens, overlap_tokens, min_tokens)
    sections = _split_sections(text)
    if not sections and text.strip():
        sections = [_Section("", [text.strip()])]  # headings only: keep them as plain text
    pieces = [piece for section in sections for piece in chunker.chunk_section(section)]
    return [
        Chunk(seq=seq, text=body, token_count=tokens, heading=heading)
        for seq, (heading, body, tokens) in enumerate(pieces)
    ]


def chunk_in_space(raw: str, suffix: str, space: SpaceSpec, count_tokens: TokenCounter) -> list[Chunk]:
    """A source document's chunks in a space's recipe: its preprocessing version, then its chunker settings.

    Ingest and the sentinel check both chunk through here, so the sentinel re-derives what ingest makes.
    """
    text = preprocess(raw, suffix, space.preprocessing)
    settings = space.chunker
    return chunk_document(text, count_tokens, settings.max_tokens, settings.overlap_tokens, settings.min_tokens)


# --- structure: sections and paragraphs ---------------------------------------------------------


def _split_sections(text: str) -> list[_Section]:
    """Sections of ``text`` in order, each with its heading trail and its paragraphs."""
    sections: list[_Section] = []
    trail: list[tuple[int, str]] = []
    body: list[str] = []
    for item in _scan_lines(text.split("\n")):
        if isinstance(item, str):
            body.append(item)
            continue
        sections.append(_Section(HEADING_SEP.join(t for _, t in trail), _paragraphs(body)))
        level, title = item
        trail = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, title)]
        body = []
    sections.append(_Section(HEADING_SEP.join(t for _, t in trail), _paragraphs(body)))
    return [section for section in sections if section.paragraphs]


def _scan_lines(lines: list[str]) -> Iterator[str | tuple[int, str]]:
    """Yield body lines as strings and headings as ``(level, title)``; code fences hide headings.

    reStructuredText levels follow the order in which adornment styles first appear.
    """
    rst_styles: list[tuple[str, bool]] = []
    fence: str | None = None
    i, last = 0, len(lines) - 1
    while i <= last:
        line = lines[i]
        if line[:1] not in _MARKUP_FIRST and (i == last or lines[i + 1][:1] not in _ADORNMENT_FIRST):
            yield line  # starts no fence, heading or adornment, and no adornment under it: body text
            i += 1
            continue
        fence_match = _FENCE.match(line)
        if fence_match:
            fence = None if fence == fence_match.group(1) else fence or fence_match.group(1)
        at_block_start = i == 0 or not lines[i - 1].strip()
        title = _rst_title(lines, i) if at_block_start and not fence else None
        if title is not None:
            text, style, consumed = title
            if style not in rst_styles:
                rst_styles.append(style)
            yield rst_styles.index(style) + 1, text
            i += consumed
            continue
        heading = None if fence else _MARKDOWN_HEADING.match(line)
        yield (len(heading.group(1)), heading.group(2)) if heading else line
        i += 1


def _rst_title(lines: list[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """A reStructuredText title starting at line ``i``: (text, (char, overlined), lines used), or None."""
    over = _ADORNMENT.match(lines[i])
    start = i + 1 if over else i
    if start + 1 >= len(lines) or not lines[start].strip() or _ADORNMENT.match(lines[start]):
        return None
    title = lines[start].strip()
    under = _ADORNMENT.match(lines[start + 1])
    if not under or len(lines[start + 1].rstrip()) < len(title):
        return None
    if over and over.group(1) != under.group(1):
        return None
    return title, (under.group(1), bool(over)), start + 2 - i


def _paragraphs(lines: list[str]) -> list[str]:
    """Blank-line separated paragraphs of ``lines``, stripped, empty ones dropped."""
    return [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]


def _split_sentences(paragraph: str) -> list[str]:
    """Sentences and lines of ``paragraph``, each keeping the whitespace that followed it."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        following = paragraph[match.end() : match.end() + 1]
        newline = "\n" in match.group()
        starts_sentence = following.isupper() or following.isdigit() or following in _SENTENCE_START_QUOTES
        if following and (newline or starts_sentence):
            sentences.append(paragraph[start : match.end()])
            start = match.end()
    sentences.append(paragraph[start:])
    return [s for s in sentences if s.strip()]


def _content_hash(text: str) -> bytes:
    return hashlib.sha256(text.strip().encode("utf-8")).digest()


def _is_cut_point(text: str) -> bool:
    """Content-defined boundary: about one piece in four ends a window, decided by its own text alone."""
    return _content_hash(text)[0] % 4 == 0


def _joined_tokens(pieces: list[_Piece]) -> int:
    """Estimated tokens of pieces joined by blank lines: their counts plus the join allowance."""
    return sum(p.tokens for p in pieces) + JOIN_ALLOWANCE * (len(pieces) - 1)


# --- packing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chunker:
    count_tokens: TokenCounter
    max_tokens: int
    overlap_tokens: int
    min_tokens: int

    def size(self, text: str) -> int:
        """Tokens of ``text``, or its characters over MAX_CHARS_PER_TOKEN (rounded up) when that is more.

        Text over the character bound of a whole chunk is not tokenized: it is over every budget anyway.
        """
        chars = -(-len(text) // MAX_CHARS_PER_TOKEN)
        return chars if chars > self.max_tokens else max(self.count_tokens(text), chars)

    def chunk_section(self, section: _Section) -> list[tuple[str, str, int]]:
        """(heading, chunk text, tokens) for one section, every text within the budget."""
        heading = self._fit_heading(section.heading)
        budget = self.max_tokens - (heading.tokens + JOIN_ALLOWANCE if heading.text else 0)
        return [
            (heading.text, text, tokens)
            for body in self._pack_paragraphs(section.paragraphs, budget)
            for text, tokens in self._fit(heading.text, [piece.text for piece in body], PARAGRAPH_SEP)
        ]

    def _fit_heading(self, heading: str) -> _Piece:
        """The heading trail, else its last title, else a cut of that, using at most half the budget."""
        limit = (self.max_tokens - JOIN_ALLOWANCE) // 2
        if not heading:
            return _Piece("", 0)
        last = heading.split(HEADING_SEP)[-1]
        for candidate in (heading, last):
            tokens = self.size(candidate)
            if tokens <= limit:
                return _Piece(candidate, tokens)
        cut = self._hard_split(last, limit)[0] if limit > 0 else ""
        tokens = self.size(cut) if cut else 0
        return _Piece(cut, tokens) if tokens <= limit else _Piece("", 0)

    def _pack_paragraphs(self, paragraphs: list[str], budget: int) -> list[list[_Piece]]:
        """Group a section's paragraphs into chunk bodies (see the module docstring for the rules)."""
        bodies: list[list[_Piece]] = []
        group: list[_Piece] = []
        previous_is_group = False  # whether bodies[-1] is a paragraph group a trailing run may join
        for text in paragraphs:
            piece = self._measure(text, budget)
            if piece is None:
                bodies.extend([group] if group else [])
                bodies.extend([window] for window in self._sentence_windows(text, budget))
                group, previous_is_group = [], False
                continue
            if group and _joined_tokens([*group, piece]) > budget:
                bodies.append(group)
                group = []
            group.append(piece)
            anchor = piece.tokens >= self.min_tokens
            if anchor or (_joined_tokens(group) >= self.min_tokens and _is_cut_point(text)):
                bodies.append(group)
                group, previous_is_group = [], True
        if group and previous_is_group and _joined_tokens(bodies[-1] + group) <= budget:
            bodies[-1] = bodies[-1] + group
        elif group:
            bodies.append(group)
        return bodies

    def _measure(self, paragraph: str, budget: int) -> _Piece | None:
        """The paragraph with its size, or None when it is over the budget.

        Every whitespace-separated word is at least one token, so a paragraph with more words than the
        budget is over it without asking the tokenizer.
        """
        if len(paragraph.split()) > budget:
            return None
        piece = _Piece(paragraph, self.size(paragraph))
        return piece if piece.tokens <= budget else None

    def _sentence_windows(self, paragraph: str, budget: int) -> list[_Piece]:
        """Cut an over-budget paragraph into overlapping windows of whole sentences."""
        sentences = [piece for s in _split_sentences(paragraph) for piece in self._sentence_pieces(s, budget)]
        windows: list[_Piece] = []
        window_start = start = 0
        while start < len(sentences):
            first = self._overlap_start(sentences, window_start, start, budget) if windows else start
            end = self._window_end(sentences, first, start, budget)
            text = "".join(s.text for s in sentences[first:end]).strip()
            windows.append(_Piece(text, sum(s.tokens for s in sentences[first:end])))
            window_start, start = first, end
        return windows

    def _sentence_pieces(self, sentence: str, budget: int) -> list[_Piece]:
        """The sentence as one piece, or word/character pieces of it when it alone is over budget."""
        tokens = self.size(sentence)
        if tokens <= budget:
            return [_Piece(sentence, tokens)]
        trailing = sentence[len(sentence.rstrip()) :]
        parts = self._hard_split(sentence.strip(), budget)
        texts = [part + " " for part in parts[:-1]] + [parts[-1] + trailing]
        return [_Piece(text, self.size(text)) for text in texts]

    def _overlap_start(self, sentences: list[_Piece], window_start: int, start: int, budget: int) -> int:
        """Index of the first sentence the window at ``start`` repeats from the previous window.

        The repeat never covers the whole previous window, so no window is contained in the next.
        """
        room = min(self.overlap_tokens, budget - sentences[start].tokens)
        first, used = start, 0
        while first > window_start + 1 and used + sentences[first - 1].tokens <= room:
            first -= 1
            used += sentences[first].tokens
        return first

    def _window_end(self, sentences: list[_Piece], first: int, start: int, budget: int) -> int:
        """One past the window's last sentence.

        The window is cut after a content-defined cut point once its new sentences hold ``min_tokens``.
        When the budget runs out first, it is cut after the sentence with the smallest content hash
        among those allowed (rather than right at the budget), so that windows after an edit fall
        back onto the same boundaries instead of shifting to the end of the paragraph.
        """
        used = sum(s.tokens for s in sentences[first:start])
        new = 0
        allowed: list[tuple[bytes, int]] = []
        end = start
        while end < len(sentences):
            tokens = sentences[end].tokens
            if end > start and used + tokens > budget:
                return min(allowed)[1] if allowed else end
            used, new, end = used + tokens, new + tokens, end + 1
            if new >= self.min_tokens:
                if _is_cut_point(sentences[end - 1].text):
                    return end
                allowed.append((_content_hash(sentences[end - 1].text), end))
        return end

    # --- the budget invariant ---------------------------------------------------------------------

    def _fit(self, heading: str, pieces: list[str], sep: str) -> list[tuple[str, int]]:
        """Compose chunk texts from pieces, halving any composition the tokenizer (or the character bound)
        finds too long; the count returned is the text's true token count."""
        body = sep.join(pieces)
        text = f"{heading}\n{body}" if heading else body
        tokens = self.count_tokens(text)
        if tokens <= self.max_tokens and len(text) <= self.max_tokens * MAX_CHARS_PER_TOKEN:
            return [(text, tokens)]
        if len(pieces) > 1:
            middle = len(pieces) // 2
            return self._fit(heading, pieces[:middle], sep) + self._fit(heading, pieces[middle:], sep)
        words = body.split()
        if len(words) > 1:
            return self._fit(heading, words, " ")
        if len(body) > 1:
            return self._fit(heading, [body[: len(body) // 2], body[len(body) // 2 :]], "")
        return [(text, tokens)]  # a single character: only a tokenizer over 1 token per char gets here

    def _hard_split(self, text: str, budget: int) -> list[str]:
        """Split an unbreakable run by words, and words by characters, into pieces within ``budget``
        (sizes, so a long word the tokenizer reads as one token is split too)."""
        parts: list[str] = []
        current: list[str] = []
        used = 0
        for word in text.split():
            tokens = self.size(word)
            if tokens > budget:
                parts.extend([" ".join(current)] if current else [])
                parts.extend(self._split_characters(word, budget))
                current, used = [], 0
                continue
            if current and used + tokens > budget:
                parts.append(" ".join(current))
                current, used = [], 0
            current.append(word)
            used += tokens
        parts.extend([" ".join(current)] if current else [])
        return parts

    def _split_characters(self, word: str, budget: int) -> list[str]:
        """Longest prefixes of ``word`` that fit ``budget``, found by binary search."""
        parts: list[str] = []
        while word:
            low, high = 1, min(len(word), budget * MAX_CHARS_PER_TOKEN)
            while low < high:
                middle = (low + high + 1) // 2
                if self.size(word[:middle]) <= budget:
                    low = middle
                else:
                    high = middle - 1
            parts.append(word[:low])
            word = word[low:]
        return parts
