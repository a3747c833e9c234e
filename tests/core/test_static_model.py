"""The static backend reads a model2vec folder itself and embeds exactly as model2vec's own StaticModel does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from model2vec import StaticModel
from safetensors.numpy import save_file
from tests.core.test_token_counts import STATIC, TRICKY, WORDS
from tokenizers import Tokenizer as FastTokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from embedops.core.embedder import StaticVectors, Tokenizer, fresh_model
from embedops.core.spaces import ModelSpec
from embedops.errors import ModelLoadError

TEXTS = [
    "Tides rise and fall twice a day, pulled by the moon.",
    " ".join(WORDS),
    *TRICKY,
    "",
    "   ",
    "\u4e2d\u6587" * 40,  # characters the static model's vocabulary may not hold
    "a" * 6000,  # longer than max_length times the median token length: cut by characters first
    " ".join(WORDS) * 40,  # over 512 tokens: cut by tokens
]


def test_the_static_model_embeds_as_model2vec_does() -> None:
    ours = fresh_model(STATIC)
    theirs = StaticModel.from_pretrained(str(STATIC.model_dir()))

    assert isinstance(ours._model, StaticVectors)
    for batch_size in (1, 7, 1024):
        np.testing.assert_allclose(ours.encode(TEXTS, batch_size), theirs.encode(TEXTS, batch_size=batch_size),
                                   atol=1e-5)


def plain_model(folder: Path) -> Path:
    """A model2vec folder without vocabulary quantization: a word-level vocabulary, one float row per word."""
    words = ["[UNK]", "tide", "moon", "sea", "rises", "falls", ",", "."]
    tokenizer = FastTokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    rows = np.random.default_rng(7).normal(size=(len(words), 6)).astype(np.float32)
    save_file({"embeddings": rows}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"normalize": False}))
    return folder


def test_a_model_without_vocabulary_quantization_embeds_as_model2vec_does(tmp_path: Path) -> None:
    folder = plain_model(tmp_path / "plain")
    texts = ["tide rises , moon falls .", "sea", "unheard of words only", "", "tide tide tide sea"]

    ours = StaticVectors(folder, Tokenizer.read(folder / "tokenizer.json")).encode(texts)
    theirs = StaticModel.from_pretrained(str(folder)).encode(texts)

    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert not ours[2].any()  # nothing but unknown words: a zero vector, as model2vec gives


def test_a_model_file_that_does_not_fit_its_vocabulary_is_refused_naming_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(plain_model(tmp_path / "plain"), folder)
    save_file({"embeddings": np.zeros((3, 6), np.float32)}, str(folder / "model.safetensors"))
    spec = ModelSpec(name="broken", backend="model2vec", path=str(folder))

    with pytest.raises(ModelLoadError, match=rf"'broken' could not be loaded from {folder}.*3 token rows for a "
                                             r"vocabulary of 8"):
        fresh_model(spec)
