"""Source bytes to the clean text that gets chunked and embedded.

The preprocessing version is part of an embedding space: changing what ``preprocess`` does for a
version changes the text the model sees, so a new behaviour needs a new version number.

* version 1: HTML to text, Unicode NFC, no control or zero-width characters (U+200B-U+200D, U+2060,
  U+FEFF), one space between words, at most one blank line.
* version 2: as version 1, and bidirectional controls are removed too (embeddings, overrides and
  isolates U+202A-U+202E and U+2066-U+2069, marks U+200E, U+200F and U+061C), while a zero-width joiner
  between two emoji is kept, so an emoji sequence such as 👩‍🚀 stays one emoji.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from html.parser import HTMLParser

from embedops.errors import ConfigError

PREPROCESSING_VERSIONS = (1, 2)

HTML_SUFFIXES = frozenset({".html", ".htm"})

_SKIPPED_TAGS = frozenset({"script", "style", "head"})
_HEADING_TAGS = {f"h{level}": level for level in range(1, 7)}
# Tags that end a paragraph; p/div/li/br/tr plus the other common block containers.
_BLOCK_TAGS = frozenset(
    "p div li br tr ul ol dl dt dd table thead tbody section article aside header footer nav main "
    "blockquote pre figure figcaption hr form body html".split()
)
_CELL_TAGS = frozenset({"td", "th"})

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_ZERO_WIDTH_V2 = re.compile(
    "[\u200b\u200c\u2060\ufeff\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]"  # ZWJ: see below; bidi controls
)
# Emoji and pictographs a zero-width joiner may join (Unicode's Extended_Pictographic, by block), and
# what may stand between one and the joiner: variation selectors and skin-tone modifiers.
_EMOJI = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a-\u23ff\u24c2\u25aa-\u25fe"
    "\u2600-\u27bf\u2934\u2935\u2b05-\u2bff\u3030\u303d\u3297\u3299\U0001f000-\U0001faff\U0001fc00-\U0001fffd"
)
_EMOJI_MODIFIER = "\ufe0e\ufe0f\U0001f3fb-\U0001f3ff"
_STRAY_JOINER = re.compile(
    rf"(?<![{_EMOJI}])(?<![{_EMOJI}][{_EMOJI_MODIFIER}])\u200d|\u200d(?![{_EMOJI}])"
)
# Every line break Python's str.splitlines knows, except the plain \n we normalise to.
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # Cc except \t and \n
# A run of whitespace other than \n that is not already one plain space (2 or more, or a tab, U+00A0...)
_INLINE_SPACE = re.compile(r"[^\S\n]{2,}|[^\S \n]")
# Any character but printable ASCII, \t and \n: text without one needs no line-break, control, zero-width
# or Unicode normalisation step (each would leave it as it is)
_NOT_PLAIN = re.compile(r"[^\t\n\x20-\x7e]")
_HTML_SPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


def preprocess(raw: str, suffix: str, version: int) -> str:
    """Return the normalised text of a source file: HTML to text, then Unicode and whitespace cleanup."""
    if version not in PREPROCESSING_VERSIONS:
        raise ConfigError(
            f"preprocessing version {version} is unknown; known versions are "
            f"{', '.join(map(str, PREPROCESSING_VERSIONS))}; "
            "set `preprocessing` in the space config to one of them"
        )
    text = html_to_text(raw) if suffix.lower() in HTML_SUFFIXES else raw
    return normalize_text(text, version)


def normalize_text(text: str, version: int = 1) -> str:
    """Unicode NFC, no zero-width or control characters, \\n line ends, single spaces, at most one blank line.

    Tabs and other horizontal whitespace (for example U+00A0) collapse to one space like plain spaces.
    From version 2, bidirectional controls go too and a zero-width joiner between two emoji stays.
    """
    if _NOT_PLAIN.search(text) is not None:
        text = _LINE_BREAKS.sub("\n", text)
        if version >= 2:
            text = _STRAY_JOINER.sub("", _ZERO_WIDTH_V2.sub("", text))
        else:
            text = _ZERO_WIDTH.sub("", text)
        text = _CONTROL_CHARS.sub("", text)
        text = unicodedata.normalize("NFC", text)
    # every run of whitespace but \n is one space now, so " \n" is each line's trailing whitespace
    text = _INLINE_SPACE.sub(" ", text).replace(" \n", "\n")
    return _BLANK_LINES.sub("\n\n", text).strip()


def html_to_text(html: str) -> str:
    """Visible text of an HTML page, with headings as ``#`` lines and blocks as paragraphs."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.text()


def decode_source(data: bytes) -> str:
    """Decode a source file as UTF-8 (a BOM is allowed); raise ValueError with a short reason otherwise."""
    if b"\x00" in data:
        raise ValueError("contains NUL bytes (binary file)")
    offset = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        position = offset + exc.start
        line = data.count(b"\n", 0, position) + 1
        bad = data[position : position + 1].hex()
        raise ValueError(
            f"is not valid UTF-8 text: byte 0x{bad} at offset {position} (line {line}): {exc.reason}; "
            "re-save it as UTF-8"
        ) from None


class _TextExtractor(HTMLParser):
    """Collects visible text; block tags become blank lines, headings become ``#`` lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skipping = dict.fromkeys(_SKIPPED_TAGS, 0)
        self._pre_depth = 0

    def text(self) -> str:
        return "".join(self._parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._skipping:
            self._skipping[tag] += 1
        elif tag == "body":
            self._skipping["head"] = 0  # a page that never closed its <head>
        if tag == "pre":
            self._pre_depth += 1
        if tag in _HEADING_TAGS:
            self._parts.append("\n\n" + "#" * _HEADING_TAGS[tag] + " ")
        elif tag in _BLOCK_TAGS:
            self._parts.append("\n\n")
        elif tag in _CELL_TAGS:
            self._append_inline(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._skipping:
            self._skipping[tag] = max(0, self._skipping[tag] - 1)
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        if tag in _HEADING_TAGS or tag in _BLOCK_TAGS:
            self._parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if any(self._skipping.values()):
            return
        if self._pre_depth:
            self._parts.append(data)
        else:
            self._append_inline(_HTML_SPACE.sub(" ", data))

    def _append_inline(self, text: str) -> None:
        """Append collapsed text, without a space at the start of a line or after another space."""
        previous = self._parts[-1][-1:] if self._parts else "\n"
        if previous in ("\n", " "):
            text = text.lstrip(" ")
        if text:
            self._parts.append(text)
