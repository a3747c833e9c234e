"""Counting tokens by words gives exactly the tokenizer's counts, unknown shares and so the same chunks."""

from __future__ import annotations

import random
from importlib.resources import files
from pathlib import Path

import pytest
from tests.assets.test_hostile_inputs import GOOD
from tests.core.test_chunking import make_document, render

import embedops.core.token_counts as token_counts
from embedops.core.chunking import Chunk, chunk_document, chunk_in_space
from embedops.core.embedder import Tokenizer
from embedops.core.preprocess import preprocess
from embedops.core.spaces import DEFAULT_SPACE, ModelSpec, SpaceSpec
from embedops.core.token_counts import reads_words_apart

STATIC = ModelSpec(name="tokenlearn-static", backend="model2vec", package="static_model")
MODELS = {"minilm": DEFAULT_SPACE.model, "static": STATIC}

# Characters where Python's idea of a word and a tokenizer's may differ, and text that is just hard to read.
TRICKY = [
    "\u00a0", "\u3000", "\u2009", "\u202f", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\x0b", "\x0c", "\r", "\r\n",
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u2028", "\u2029",
    "\u0301", "\u0308", "\u20dd", "\u0903", "\u0600", "\u093f",  # marks, Prepend and SpacingMark characters
    "\u2581", "\u2581\u2581", "\u00a8", "\u02dc", "\ufb01", "\u2075", "\u2082", "\u00bd", "\u2163", "\u3099",
    "\u0378", "\ud7ff", "\ue000", "\U0001f469\u200d\U0001f680", "\U0001f44d\U0001f3fd", "\U0001f1eb\U0001f1f7",
    "\uff1cpad\uff1e", "<pad>", "<unk>", "[CLS]", "[UNK]", "[MASK]", "a<pad>b", "x[SEP]y", "\u03a3\u039f\u03a3",
    "caf\u00e9", "cafe\u0301", "\u00c5ngstr\u00f6m", "na\u00efve", "\u4e2d\u6587\u5b57", "\ud55c\uad6d\uc5b4",
    "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0645\u0631\u062d\u0628\u0627", "\u05e9\u05dc\u05d5\u05dd",
    "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435", "\u2014", "\u201cquoted\u201d",
    "\u2192", "\u20ac5", "\u00b5s", "\u2126", "\u212b", "\t", "\n\n", "  ", "\u30ac", "\u30ab\u3099", "\U0001d400",
]
WORDS = (
    "the tide rises twice a day, because of the moon's pull on (the) oceans: 42 times; "
    "embedding-space vector_index e.g. i.e. 3.14 1,000 don't C++ user@example.com https://example.com/a?b=c "
    "## ### > ` ``` * - 1. | --- === ~~~ {json} [link](url) <div> &amp; $HOME 50% #hash @mention"
).split()


def fuzz_texts(count: int, seed: int) -> list[str]:
    """Texts mixing ordinary words, tricky characters and separators, glued together and apart."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 40)):
            choice = rng.random()
            if choice < 0.55:
                parts.append(rng.choice(WORDS))
            elif choice < 0.8:
                parts.append(rng.choice(TRICKY))
            else:
                parts.append(chr(rng.choice([rng.randint(0x21, 0x2FF), rng.randint(0x2000, 0x2BFF),
                                             rng.randint(0x3000, 0x9FFF), rng.randint(0x300, 0x36F)])))
            parts.append(rng.choice(["", " ", " ", "\n", "\t", "\n\n", "  "]))
        texts.append("".join(parts))
    return texts


def demo_documents() -> dict[str, str]:
    root = Path(str(files("embedops.demo")))
    return {str(path.relative_to(root)): path.read_text(encoding="utf-8")
            for path in sorted(root.rglob("*")) if path.is_file() and path.suffix in {".md", ".rst", ".txt", ".html"}}


HEADINGS = [
    "Guide\n=====\n\nIntro.\n\nInstall\n-------\n\nRun it.\n\nUse\n---\n\nCall.",
    "=====\nGuide\n=====\n\nIntro text.\n\nInstall\n~~~~~~~~~\n\nRun it.",
    "# Title\n\n## Section \u00e9t\u00e9 \u2014 \u201cquotes\u201d\n\nBody text [CLS] here.\n\n"
    "### Deeper <pad>\n\nMore.",
    "```\n# not a heading\n```\n\n# Real heading #\n\nText.",
]
LONG_RUNS = ["x" * 30_000, "ab" * 10_000, "data/" * 2_000, "# Dump\n\n" + "x" * 5_000, GOOD + "\n\n" + "ab" * 3_000,
             "word " * 3_000, "Lorem-ipsum-" * 800, "\u4e2d" * 3_000, "\u00e9" * 500 + " " + "\u2581" * 300]
HOSTILE = [GOOD, "", "   \n\t\n  ", "abc\x00def\x00", "caf\xe9 cr\xe8me", "\u200b\u200c\u200d\ufeff",
           "# Ze\u200bro\n\nInvisible\u200b characters are removed before embedding.",
           "<html><body><h1>Harbour</h1><p>Boats &amp; ships dock here.</p><script>alert('x')</script></body></html>",
           "ok \u0378\u0379", "\ufffd\ufffd binary \x07\x1b[31m", "\u0600\nx", "a\n\u0301b", "x\r\ny\rz\n",
           "a\x1c\nb\x85\n\x1f", "[CLS]\n<pad>\n<unk>", "\n\n\n", "line\n\u00a0\nline \u200b\n\u2581\u2581x\n\u2581"]


def corpus() -> list[str]:
    demo = demo_documents()
    texts = [*demo.values(), *(preprocess(raw, Path(name).suffix, 2) for name, raw in demo.items())]
    texts += HEADINGS + LONG_RUNS + HOSTILE + fuzz_texts(400, seed=3)
    texts += [render(make_document(seed, sections=4, sentences_per_paragraph=(2, 30))) for seed in range(3)]
    texts += [t for text in texts[:] for t in text.split("\n\n")]  # paragraphs alone, as the chunker counts them
    return texts


@pytest.fixture(scope="session", params=list(MODELS))
def tokenizers(request: pytest.FixtureRequest) -> tuple[Tokenizer, Tokenizer]:
    """(counting by words, encoding every text whole) for one shipped model: its tokenizer.json only."""
    folder = MODELS[request.param].model_dir()
    by_words, whole = Tokenizer.from_folder(folder), Tokenizer.from_folder(folder, by_words=False)
    assert by_words is not None and whole is not None
    return by_words, whole


def test_both_shipped_tokenizers_count_by_words(tokenizers: tuple[Tokenizer, Tokenizer]) -> None:
    by_words, whole = tokenizers

    assert by_words.by_words and not whole.by_words


def test_counts_and_unknown_shares_are_the_tokenizers_own(tokenizers: tuple[Tokenizer, Tokenizer]) -> None:
    by_words, whole = tokenizers
    texts = corpus()

    assert [by_words.count_tokens(t) for t in texts] == [whole.count_tokens(t) for t in texts]
    assert [by_words.unknown_share(t) for t in texts] == [whole.unknown_share(t) for t in texts]
    assert any(whole.unknown_share(t) > 0.5 for t in texts)  # the corpus has unreadable text in it


def test_counts_stay_exact_when_the_memo_starts_over(
    tokenizers: tuple[Tokenizer, Tokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, whole = tokenizers
    monkeypatch.setattr(token_counts, "MAX_WORDS", 50)
    monkeypatch.setattr(token_counts, "MAX_CHARS", 400)
    small = Tokenizer(whole._backend, copy=False)  # a fresh memo under the small bounds
    texts = fuzz_texts(60, seed=11) + [render(make_document(5, sections=2, sentences_per_paragraph=(2, 6)))]

    assert [small.count_tokens(t) for t in texts * 2] == [whole.count_tokens(t) for t in texts * 2]
    assert [small.unknown_share(t) for t in texts] == [whole.unknown_share(t) for t in texts]


def test_words_are_counted_one_by_one_when_offsets_cannot_place_a_token(
    tokenizers: tuple[Tokenizer, Tokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, whole = tokenizers
    monkeypatch.setattr(token_counts.WordCounts, "_count_joined", lambda self, words: None)
    one_by_one = Tokenizer(whole._backend, copy=False)
    texts = fuzz_texts(60, seed=13)

    assert [one_by_one.count_tokens(t) for t in texts] == [whole.count_tokens(t) for t in texts]
    assert [one_by_one.unknown_share(t) for t in texts] == [whole.unknown_share(t) for t in texts]


def test_words_learned_for_a_batch_are_counted_once_and_exactly(
    tokenizers: tuple[Tokenizer, Tokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, whole = tokenizers
    texts = corpus()
    primed = Tokenizer(whole._backend, copy=False)  # a fresh memo
    primed.learn_words(texts)
    learned: list[list[str]] = []
    original = token_counts.WordCounts._learn

    def learn(self: token_counts.WordCounts, words: list[str]) -> None:
        learned.append(words)
        original(self, words)

    monkeypatch.setattr(token_counts.WordCounts, "_learn", learn)

    assert [primed.count_tokens(t) for t in texts] == [whole.count_tokens(t) for t in texts]
    assert [primed.unknown_share(t) for t in texts] == [whole.unknown_share(t) for t in texts]
    assert learned == []  # every word the counts needed was counted in the batch


def chunks_of(text: str, count: object, settings: tuple[int, int, int]) -> list[Chunk]:
    return chunk_document(text, count, *settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("settings", [(200, 32, 24), (24, 4, 6)], ids=["space-default", "small-budget"])
def test_the_chunker_cuts_the_same_chunks(tokenizers: tuple[Tokenizer, Tokenizer], settings: tuple[int, int, int]):
    by_words, whole = tokenizers
    documents = [*demo_documents().values(), *HEADINGS, *LONG_RUNS, *HOSTILE, *fuzz_texts(40, seed=5),
                 *(render(make_document(seed, sections=5, sentences_per_paragraph=(2, 40))) for seed in range(3))]

    for text in documents:
        assert chunks_of(text, by_words.count_tokens, settings) == chunks_of(text, whole.count_tokens, settings)


def test_the_demo_corpus_is_chunked_alike_in_its_spaces_recipe(tokenizers: tuple[Tokenizer, Tokenizer]) -> None:
    by_words, whole = tokenizers
    space = SpaceSpec(name="s", dimension=8, model=STATIC)

    for name, raw in demo_documents().items():
        suffix = Path(name).suffix
        assert chunk_in_space(raw, suffix, space, by_words.count_tokens) == chunk_in_space(
            raw, suffix, space, whole.count_tokens
        )


WORDPIECE = {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"normalizer": {"type": "BertNormalizer"}, "pre_tokenizer": {"type": "BertPreTokenizer"},
          "model": WORDPIECE, "post_processor": {"type": "TemplateProcessing"}}, True),
        ({"normalizer": {"type": "Precompiled"}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Metaspace", "prepend_scheme": "always", "split": True}]},
          "model": {"type": "Unigram", "unk_id": 0}}, True),
        ({"normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
          "model": {"type": "BPE"}}, False),  # a word's leading space is part of its token
        ({"normalizer": None, "pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "first", "split": True},
          "model": {"type": "Unigram"}}, False),  # only the text's first word is marked
        ({"normalizer": {"type": "Replace"}, "pre_tokenizer": {"type": "WhitespaceSplit"}, "model": WORDPIECE},
         False),  # a pattern may span words
        ({"normalizer": None, "pre_tokenizer": None, "model": WORDPIECE}, False),  # the whole text is one piece
        ({"normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"}, "model": {"type": "BPE", "dropout": 0.1}},
         False),  # random segmentation
    ],
    ids=["wordpiece", "unigram-metaspace", "byte-level", "metaspace-first", "replace", "no-pre-tokenizer", "dropout"],
)
def test_only_pipelines_that_read_words_apart_count_by_words(spec: dict, expected: bool) -> None:
    assert reads_words_apart(spec) is expected


def test_a_byte_level_tokenizer_counts_whole_texts() -> None:
    from tokenizers import Tokenizer as FastTokenizer
    from tokenizers import models, pre_tokenizers

    backend = FastTokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)

    assert not Tokenizer(backend).by_words
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    assert Tokenizer(backend).by_words
