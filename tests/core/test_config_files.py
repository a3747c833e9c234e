"""The three YAML files (spaces, its migration section, monitoring) through the one typed loader:
a mistake is refused naming the file, the key and the fix; a path model's weights are hashed once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import embedops.core.spaces as spaces_module
from embedops.core.monitoring.config import load_monitoring
from embedops.core.spaces import ModelSpec, load_config
from embedops.errors import ConfigError

SPACES = "spaces:\n  - name: a\n  - name: b\n    chunker: {max_tokens: 128}\n"


def _spaces(path: Path) -> Any:
    return load_config(path, environ={})


@pytest.mark.parametrize(
    ("load", "text", "key", "fix"),
    [
        # the space config: unknown key, wrong type
        (_spaces, SPACES.replace("max_tokens", "max_tokns"), "spaces[1].chunker.max_tokns is not a known key",
         "did you mean max_tokens?"),
        (_spaces, SPACES + "    dimension: large\n", "spaces[1].dimension is 'large' (str)",
         "it must be a valid integer; for example dimension: 384"),
        (_spaces, SPACES + "    normalize: maybe\n", "spaces[1].normalize is 'maybe' (str)",
         "for example normalize: true"),
        # its migration section
        (_spaces, SPACES + "migration: {tolerence: 0.02}\n", "migration.tolerence is not a known key",
         "did you mean tolerance?"),
        (_spaces, SPACES + "migration: {tolerance: low}\n", "migration.tolerance is 'low' (str)",
         "for example tolerance: 0.01"),
        # the monitoring config
        (load_monitoring, "sentinel: {sample: 10, warn: 0.1}\n", "sentinel.warn is not a known key",
         "did you mean warn_at?"),
        (load_monitoring, "nn_stability: {k: ten}\n", "nn_stability.k is 'ten' (str)", "for example k: 10"),
        (load_monitoring, "list_limit: '20'\n", "list_limit is '20' (str)", "for example list_limit: 50"),
    ],
)
def test_a_mistake_is_refused_naming_the_file_the_key_and_the_fix(
    tmp_path: Path, load: Callable[[Path], Any], text: str, key: str, fix: str
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load(path)
    message = str(raised.value)
    assert str(path) in message and key in message and fix in message, message


def test_a_removed_key_says_it_was_removed(tmp_path: Path) -> None:
    path = tmp_path / "spaces.yaml"
    path.write_text("spaces:\n  - name: a\n    hotness_weight: 2.0\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: spaces[0].hotness_weight was removed: ")) as raised:
        load_config(path)
    assert "tenant_weights" in str(raised.value) and str(raised.value).endswith("; delete it")


def test_every_mistake_in_a_file_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.yaml"
    path.write_text("sentinel: {sample: many}\ndistribution: {centroid_warm: 0.2}\n")
    with pytest.raises(ConfigError) as raised:
        load_monitoring(path)
    lines = str(raised.value).splitlines()
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == ["sentinel.sample", "distribution.centroid_warm"]


def test_a_path_model_is_hashed_once_until_its_weights_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights v1")
    (folder / "config.json").write_text("{}")
    hashed: list[Path] = []
    real = spaces_module._weights_hash
    monkeypatch.setattr(spaces_module, "_weights_hash", lambda f: hashed.append(f) or real(f))
    spaces_file = tmp_path / "spaces.yaml"
    spaces_file.write_text(f"spaces:\n  - name: local\n    model: {{name: local-model, path: {folder}}}\n")

    # each load is a new spec, as each run or command parses the file anew
    ids = {load_config(spaces_file, environ={}).get("local").space_id for _ in range(3)}
    identities = {ModelSpec(name="local-model", path=str(folder)).identity for _ in range(3)}
    assert len(ids) == 1 and len(identities) == 1
    assert hashed == [folder.resolve()]

    (folder / "model.safetensors").write_bytes(b"weights v2, retrained")
    changed = ModelSpec(name="local-model", path=str(folder)).identity
    assert changed not in identities and len(hashed) == 2
    assert load_config(spaces_file, environ={}).get("local").space_id not in ids and len(hashed) == 2
