"""Where embedops keeps its state, read from the environment once.

Everything embedded (LanceDB, the embedding cache, materialized tables, the registry) lives under
one folder, EMBEDOPS_HOME; two homes never share state. Dagster's own storage is DAGSTER_HOME.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from embedops.errors import ConfigError

DEFAULT_MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
# A run fails, and syncs nothing, when the model fails on more than this share of the texts it was given.
DEFAULT_MAX_MODEL_FAILURE_SHARE = 0.1


@dataclass(frozen=True)
class Settings:
    home: Path
    sources_root: Path
    spaces_file: Path | None = None
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    max_model_failure_share: float = DEFAULT_MAX_MODEL_FAILURE_SHARE

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("EMBEDOPS_HOME") or Path.home() / ".embedops").expanduser().resolve()
        spaces = env.get("EMBEDOPS_SPACES")
        if not spaces and (home / "spaces.yaml").is_file():
            spaces = str(home / "spaces.yaml")
        return cls(
            home=home,
            sources_root=Path(env.get("EMBEDOPS_SOURCES") or home / "sources").expanduser().resolve(),
            spaces_file=Path(spaces).expanduser().resolve() if spaces else None,
            max_document_bytes=int(env.get("EMBEDOPS_MAX_DOCUMENT_BYTES") or DEFAULT_MAX_DOCUMENT_BYTES),
            max_model_failure_share=_share(env.get("EMBEDOPS_MAX_MODEL_FAILURE_SHARE")),
        )

    @property
    def lance_dir(self) -> Path:
        return self.home / "lancedb"

    @property
    def tables_dir(self) -> Path:
        return self.home / "tables"

    @property
    def cache_path(self) -> Path:
        return self.home / "cache" / "embeddings.sqlite"

    @property
    def registry_path(self) -> Path:
        return self.home / "registry.sqlite"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster").expanduser().resolve()


def _share(value: str | None) -> float:
    if not value:
        return DEFAULT_MAX_MODEL_FAILURE_SHARE
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise ConfigError(
            f"EMBEDOPS_MAX_MODEL_FAILURE_SHARE={value!r} is not a share of texts; set a number from 0 to 1 "
            f"(default {DEFAULT_MAX_MODEL_FAILURE_SHARE})"
        )
    return share
