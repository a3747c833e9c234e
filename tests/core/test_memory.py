"""A pipeline process gives the large buffers it frees back to the operating system (see embedops.core.memory)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the heap thresholds are glibc's")

# After an 8 MB buffer is freed, is a 1 MB block a mapping of its own (glibc marks its chunk IS_MMAPPED), which
# free() returns to the system, or carved from the heap, which keeps it?
PROBE = """
import ctypes, sys
{setup}
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.free(libc.malloc(8 << 20))
block = libc.malloc(1 << 20)
size_field = ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value
print("mapped" if size_field & 2 else "heap")
"""


def block_after_a_large_free(setup: str, **env: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_glibc_alone_serves_blocks_under_the_last_large_free_from_the_heap() -> None:
    assert block_after_a_large_free("") == "heap"


def test_a_dagster_process_loading_the_definitions_maps_large_blocks_on_their_own() -> None:
    assert block_after_a_large_free("import embedops.definitions") == "mapped"


def test_the_embedops_command_bounds_the_heap_before_a_command_runs() -> None:
    setup = "from embedops.cli import main\ntry:\n    main(['spaces', '--help'])\nexcept SystemExit:\n    pass"
    assert block_after_a_large_free(setup) == "mapped"


def test_thresholds_an_operator_set_are_left_alone() -> None:
    setup = "from embedops.core.memory import bound_heap\nassert bound_heap() is False"
    assert block_after_a_large_free(setup, MALLOC_MMAP_THRESHOLD_=str(32 << 20)) == "heap"


CHUNK_THEN_EMBED = """
import gc, weakref
from embedops.core.embedder import SpaceEmbedder
from embedops.core.spaces import DEFAULT_SPACE, ModelSpec, SpaceSpec
static = SpaceSpec(name="s", dimension=64, model=ModelSpec(name="m", backend="model2vec", package="static_model"))
embedder = SpaceEmbedder(static if "{model}" == "static" else DEFAULT_SPACE)
text = "Tides rise and fall twice a day, pulled by the moon."
before = embedder.count_tokens(text)  # chunking loads the counting tokenizer
counting = weakref.ref(embedder._tokenizer)
embedder.encode([text])  # embedding loads the model
gc.collect()
held = "none" if counting() is None else "model's" if embedder._loaded.tokens is counting() else "extra"
print(held, embedder.count_tokens(text) == before)
"""


@pytest.mark.parametrize(("model", "held"), [("static", "model's"), ("minilm", "none")])
def test_a_process_that_chunks_and_embeds_holds_one_tokenizer(model: str, held: str) -> None:
    """A run that chunks and then embeds in one process holds one copy of a model's tokenizer, not two (the static
    model's takes 318 MiB): the static model embeds with the very tokenizer chunking loaded; a model that brings
    its own lets go of chunking's. Counting afterwards counts the same."""
    done = subprocess.run([sys.executable, "-c", CHUNK_THEN_EMBED.format(model=model)], capture_output=True,
                          text=True, timeout=300, check=True)

    assert done.stdout.split() == [held, "True"]


EMBED_THEN_RELEASE = """
import weakref
import numpy as np
from embedops.core.embedder import SpaceEmbedder, release_models
from embedops.core.spaces import ModelSpec, SpaceSpec
space = SpaceSpec(name="s", dimension=64, model=ModelSpec(name="m", backend="model2vec", package="static_model"))
embedder = SpaceEmbedder(space)
text = "Tides rise and fall twice a day, pulled by the moon."
first = embedder.encode([text])
loaded = weakref.ref(embedder._loaded)
del embedder  # the step that embedded is over
release_models()  # what a whole index sync does before it builds
print(loaded() is None, bool(np.allclose(SpaceEmbedder(space).encode([text]), first)))
"""


def test_released_models_leave_the_process_and_load_again_when_asked() -> None:
    """A whole index sync builds without the model the embedding step left loaded (the static model holds over
    300 MiB); a later embedding loads it again and embeds the same."""
    done = subprocess.run([sys.executable, "-c", EMBED_THEN_RELEASE], capture_output=True, text=True, timeout=300,
                          check=True)

    assert done.stdout.split() == ["True", "True"]
