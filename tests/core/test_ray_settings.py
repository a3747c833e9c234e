"""The Ray settings (EMBEDOPS_RAY_*) and the embedder they choose; nothing here starts or imports Ray."""

from __future__ import annotations

import pytest

from embedops.core.embedder import SpaceEmbedder
from embedops.core.settings import (
    DEFAULT_RAY_ACTORS,
    DEFAULT_RAY_BATCH_SIZE,
    DEFAULT_RAY_CHUNK_MIN_DOCUMENTS,
    Settings,
)
from embedops.core.spaces import DEFAULT_SPACE
from embedops.errors import ConfigError
from embedops.resources import EmbedderResource


def test_ray_is_off_by_default_and_the_corpus_is_embedded_in_process() -> None:
    settings = Settings.from_env({"EMBEDOPS_HOME": "/tmp/x"})
    assert (settings.ray_address, settings.ray_actors, settings.ray_batch_size, settings.ray_chunk_min_documents) == (
        "", DEFAULT_RAY_ACTORS, DEFAULT_RAY_BATCH_SIZE, DEFAULT_RAY_CHUNK_MIN_DOCUMENTS)
    encoder = EmbedderResource.from_settings(settings).for_corpus(DEFAULT_SPACE)
    assert isinstance(encoder, SpaceEmbedder) and not encoder.loaded


def test_the_ray_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"EMBEDOPS_HOME": "/tmp/x", "EMBEDOPS_RAY_ADDRESS": "ray://head:10001",
                                  "EMBEDOPS_RAY_ACTORS": "8", "EMBEDOPS_RAY_BATCH_SIZE": "512",
                                  "EMBEDOPS_RAY_CHUNK_MIN_DOCUMENTS": "50000"})
    resource = EmbedderResource.from_settings(settings)
    assert (resource.ray_address, resource.ray_actors, resource.ray_batch_size, resource.ray_chunk_min_documents) == (
        "ray://head:10001", 8, 512, 50_000)


@pytest.mark.parametrize(("name", "value"), [("EMBEDOPS_RAY_ACTORS", "0"), ("EMBEDOPS_RAY_ACTORS", "1.5"),
                                             ("EMBEDOPS_RAY_BATCH_SIZE", "-3"), ("EMBEDOPS_RAY_BATCH_SIZE", "many"),
                                             ("EMBEDOPS_RAY_CHUNK_MIN_DOCUMENTS", "0"),
                                             ("EMBEDOPS_RAY_CHUNK_MIN_DOCUMENTS", "a few")])
def test_a_ray_setting_that_is_not_a_whole_positive_number_is_refused_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}='{value}' is not a number of"):
        Settings.from_env({"EMBEDOPS_HOME": "/tmp/x", name: value})
