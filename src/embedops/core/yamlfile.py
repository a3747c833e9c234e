"""Reading the YAML settings files (space config, monitoring config) with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from embedops.errors import ConfigError


def read_yaml(path: str | Path, what: str, env_var: str) -> Any:
    """The parsed YAML at ``path``; ``what`` names the file in errors, ``env_var`` the setting that chose it."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{what} {file} does not exist; create it or unset {env_var}")
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {file} is not valid YAML: {exc}") from exc
