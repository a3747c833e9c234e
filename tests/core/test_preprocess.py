"""Tests for preprocessing: HTML to text, Unicode and whitespace cleanup, decoding source bytes."""

from __future__ import annotations

import pytest

from embedops.core.preprocess import PREPROCESSING_VERSIONS, decode_source, preprocess
from embedops.errors import ConfigError

PAGE = """<!DOCTYPE html>
<html>
  <head><title>Not content</title><style>p { color: red; }</style></head>
  <body>
    <h1>Fish &amp; Chips</h1>
    <script>var hidden = "script text";</script>
    <p>
      The first   paragraph,
      wrapped in the source.
    </p>
    <h2>Prices</h2>
    <ul><li>Cod &pound;9</li><li>Haddock&nbsp;&euro;10</li></ul>
    <div>Line one<br>Line two</div>
    <table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>
  </body>
</html>
"""


def test_html_becomes_structured_text():
    text = preprocess(PAGE, ".html", 1)

    assert text == (
        "# Fish & Chips\n\n"
        "The first paragraph, wrapped in the source.\n\n"
        "## Prices\n\n"
        "Cod £9\n\nHaddock €10\n\n"
        "Line one\n\nLine two\n\n"
        "a b\n\nc d"
    )


@pytest.mark.parametrize("suffix", [".html", ".htm", ".HTML"])
def test_html_suffixes_drop_script_style_and_head(suffix):
    text = preprocess(PAGE, suffix, 1)

    assert "script text" not in text and "color" not in text and "Not content" not in text


def test_a_page_that_never_closes_its_head_keeps_its_body():
    assert preprocess("<html><head><title>T</title><body><p>Body text</p>", ".htm", 1) == "Body text"


def test_other_suffixes_are_not_parsed_as_html():
    assert preprocess("<p>Tags &amp; all</p>", ".md", 1) == "<p>Tags &amp; all</p>"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("cafe\u0301", "café"),  # NFC composes e + combining acute
        ("zero\u200bwidth\u200c\u200d\u2060\ufeff here", "zerowidth here"),
        ("bell\x07 and\x1b escape\x7f", "bell and escape"),
        ("a \t  b\t\tc", "a b c"),
        ("trailing   \nspaces\t\n", "trailing\nspaces"),
        ("dos\r\nline\rends", "dos\nline\nends"),
        ("one\n\n\n\n\ntwo\n \n\t\n\nthree", "one\n\ntwo\n\nthree"),
        ("  \n\n  padded text \n\n ", "padded text"),
        ("keep\ttabs\nand\nnewlines", "keep tabs\nand\nnewlines"),
        ("non\u00a0breaking", "non breaking"),
    ],
    ids=["nfc", "zero-width", "control", "inline-space", "trailing", "line-ends", "blank-lines", "strip",
         "tab-newline", "nbsp"],
)
def test_text_normalisation(raw, expected):
    assert preprocess(raw, ".txt", 1) == expected


@pytest.mark.parametrize("version", [0, 3, 99])
def test_unknown_version_is_a_config_error(version):
    with pytest.raises(ConfigError, match=rf"version {version} is unknown.*known versions are 1, 2"):
        preprocess("text", ".md", version)


ASTRONAUT = "\U0001f469\u200d\U0001f680"  # woman + ZWJ + rocket: one emoji


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"{ASTRONAUT} on board", f"{ASTRONAUT} on board"),
        # after a variation selector or a skin tone
        ("\u2764\ufe0f\u200d\U0001f525 \U0001f3c3\U0001f3fd\u200d\u2640\ufe0f",
         "\u2764\ufe0f\u200d\U0001f525 \U0001f3c3\U0001f3fd\u200d\u2640\ufe0f"),
        # not between two emoji
        ("zero\u200dwidth \U0001f469\u200d and \u200d\U0001f680", "zerowidth \U0001f469 and \U0001f680"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # right-to-left override
        ("\u202aa\u202b b\u202c c\u202d\u2066d\u2067e\u2068f\u2069", "a b cdef"),  # embeddings, isolates
        ("left\u200e right\u200f arabic\u061c", "left right arabic"),  # direction marks
        ("zero\u200bwidth\u200c\u2060\ufeff here", "zerowidth here"),
    ],
    ids=["zwj-sequence", "zwj-after-modifiers", "stray-zwj", "rlo", "embeddings-isolates", "marks", "zero-width"],
)
def test_version_2_drops_bidi_controls_and_keeps_emoji_sequences(raw, expected):
    assert preprocess(raw, ".txt", 2) == expected


def test_version_1_output_is_unchanged():
    """Spaces declared with preprocessing 1 keep exactly the text (and so the vectors) they were built from."""
    assert preprocess(f"{ASTRONAUT} invoice\u202egpj", ".txt", 1) == "\U0001f469\U0001f680 invoice\u202egpj"


def test_every_known_version_runs():
    assert all(preprocess(" text ", ".md", version) == "text" for version in PREPROCESSING_VERSIONS)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"plain text", "plain text"),
        ("caf\u00e9 \u2014 \u6587\u5b57".encode(), "caf\u00e9 \u2014 \u6587\u5b57"),
        (b"\xef\xbb\xbfwith a BOM", "with a BOM"),
        (b"", ""),
    ],
    ids=["ascii", "utf-8", "bom", "empty"],
)
def test_decode_source_accepts_utf8(data, expected):
    assert decode_source(data) == expected


NOT_UTF8, FIX = "is not valid UTF-8 text", "re-save it as UTF-8"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04\x00\x00binary", r"^contains NUL bytes \(binary file\)$"),
        ("one\ncaf\u00e9 au lait".encode("latin-1"), rf"^{NOT_UTF8}: byte 0xe9 at offset 7 \(line 2\): "),
        (b"\xef\xbb\xbftruncated \xe2\x82", rf"^{NOT_UTF8}: byte 0xe2 at offset 13 \(line 1\): .*; {FIX}$"),
    ],
    ids=["nul", "latin-1", "truncated-after-bom"],
)
def test_decode_source_rejects_other_bytes(data, message):
    with pytest.raises(ValueError, match=message):
        decode_source(data)
