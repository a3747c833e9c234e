"""Where embedops keeps its state, read from the environment once.

Two settings place all state, so that a worker on any host, given only them (and credentials in
its environment), can do any step for any partition:

- EMBEDOPS_DATABASE_URL, the control plane (tenant registry, space manifest and swap history,
  LanceDB aliases, monitoring state, pager outbox, search log, run leases): an SQLAlchemy URL,
  by default SQLite at ``<EMBEDOPS_HOME>/control.sqlite``; in production PostgreSQL.
- EMBEDOPS_DATA_URL, the data plane (materialized tables, the embedding cache's vectors, the
  LanceDB index): a folder, by default ``<EMBEDOPS_HOME>/data``; in production an object store
  prefix such as ``s3://bucket/prefix`` or a shared filesystem.

EMBEDOPS_HOME itself then holds only scratch and the defaults above. Dagster's own storage is
DAGSTER_HOME.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from embedops.core.dataplane import join
from embedops.errors import ConfigError, OldLayoutError

DEFAULT_MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
# A run fails, and syncs nothing, when the model fails on more than this share of the texts it was given.
DEFAULT_MAX_MODEL_FAILURE_SHARE = 0.1
# A materialized table's versions stay readable (time travel, audit) this many days; the latest always stays.
DEFAULT_TABLE_RETENTION_DAYS = 7.0
# How long a run waits for another run to let go of a partition it would write (EMBEDOPS_LEASE_WAIT_S).
DEFAULT_LEASE_WAIT_S = 30.0
# On a Ray cluster (EMBEDOPS_RAY_ADDRESS): model replicas in the actor pool, and texts per batch sent to one.
DEFAULT_RAY_ACTORS = 2
DEFAULT_RAY_BATCH_SIZE = 256
# Below this many documents to chunk, a run with a Ray cluster still chunks in its own process: sending a handful
# of documents costs more than it saves.
DEFAULT_RAY_CHUNK_MIN_DOCUMENTS = 2_000


@dataclass(frozen=True)
class Settings:
    home: Path
    sources_root: Path
    spaces_file: Path | None = None
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    max_model_failure_share: float = DEFAULT_MAX_MODEL_FAILURE_SHARE
    database_url: str = ""  # empty: SQLite under home (see ``control_url``)
    data_url: str = ""  # empty: the folder home/data (see ``data_root``)
    table_retention_days: float = DEFAULT_TABLE_RETENTION_DAYS
    lease_wait_s: float = DEFAULT_LEASE_WAIT_S
    ray_address: str = ""  # empty: embed in the run's own process; else a Ray cluster ("auto", "ray://host:10001")
    ray_actors: int = DEFAULT_RAY_ACTORS
    ray_batch_size: int = DEFAULT_RAY_BATCH_SIZE
    ray_chunk_min_documents: int = DEFAULT_RAY_CHUNK_MIN_DOCUMENTS

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
            max_model_failure_share=_number(
                env, "EMBEDOPS_MAX_MODEL_FAILURE_SHARE", DEFAULT_MAX_MODEL_FAILURE_SHARE, 1.0,
                "a share of texts", "a number from 0 to 1",
            ),
            database_url=env.get("EMBEDOPS_DATABASE_URL") or "",
            data_url=env.get("EMBEDOPS_DATA_URL") or "",
            table_retention_days=_number(
                env, "EMBEDOPS_TABLE_RETENTION_DAYS", DEFAULT_TABLE_RETENTION_DAYS, 36_500.0,
                "a number of days", "how many days a table version stays readable, 0 to 36500",
            ),
            lease_wait_s=_number(env, "EMBEDOPS_LEASE_WAIT_S", DEFAULT_LEASE_WAIT_S, 86_400.0, "a number of seconds",
                                 "how long a run waits for a busy partition, 0 to 86400"),
            ray_address=env.get("EMBEDOPS_RAY_ADDRESS") or "",
            ray_actors=int(_number(env, "EMBEDOPS_RAY_ACTORS", DEFAULT_RAY_ACTORS, 10_000.0, "a number of actors",
                                   "how many model replicas embed on the Ray cluster, 1 to 10000", whole=True)),
            ray_batch_size=int(_number(env, "EMBEDOPS_RAY_BATCH_SIZE", DEFAULT_RAY_BATCH_SIZE, 1_000_000.0,
                                       "a number of texts", "how many texts go to a model replica at once, 1 to "
                                       "1000000", whole=True)),
            ray_chunk_min_documents=int(_number(
                env, "EMBEDOPS_RAY_CHUNK_MIN_DOCUMENTS", DEFAULT_RAY_CHUNK_MIN_DOCUMENTS, 1e12, "a number of documents",
                "from how many documents to chunk a run chunks on the Ray cluster, 1 or more", whole=True)),
        )

    @property
    def control_url(self) -> str:
        """The control plane's SQLAlchemy URL (with its password: never log it, see ``errors.redacted``)."""
        return control_url(self.home, self.database_url)

    @property
    def data_root(self) -> str:
        """The data plane's root: an object-store URL (``s3://...``) or an absolute folder path."""
        if not self.data_url:
            return str(self.home / "data")
        if "://" in self.data_url and not self.data_url.startswith("file://"):
            return self.data_url.rstrip("/")
        return str(Path(self.data_url.removeprefix("file://")).expanduser().resolve())

    @property
    def lance_uri(self) -> str:
        """The LanceDB index's place in the data plane."""
        return join(self.data_root, "lancedb")

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster").expanduser().resolve()


def _number(
    env: dict[str, str], name: str, default: float, high: float, meaning: str, allowed: str, whole: bool = False
) -> float:
    """The number in environment variable ``name`` (``default`` when unset), refused outside 0..``high``
    (and, when ``whole``, below 1 or with a fraction)."""
    value = env.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= high or (whole and (number < 1 or number != int(number))):
        raise ConfigError(f"{name}={value!r} is not {meaning}; set {allowed} (default {default:g})")
    return number


def control_url(home: Path, database_url: str = "") -> str:
    """EMBEDOPS_DATABASE_URL, or by default SQLite at ``<home>/control.sqlite``."""
    return database_url or f"sqlite:///{home / 'control.sqlite'}"


# Where an earlier embedops kept its state in EMBEDOPS_HOME; this one keeps it in the control and data planes.
OLD_LAYOUT = (
    "registry.sqlite",
    "manifest.sqlite",
    "monitoring/state.sqlite",
    "monitoring/pager.sqlite",
    "cache/embeddings.sqlite",
    "tables",
    "lancedb/aliases.json",
)


def refuse_old_layout(settings: Settings) -> None:
    """Raise OldLayoutError when EMBEDOPS_HOME holds state in an earlier layout (nothing is converted)."""
    found = [name for name in OLD_LAYOUT if (settings.home / name).exists()]
    if found:
        raise OldLayoutError(
            f"EMBEDOPS_HOME {settings.home} holds state in the layout of an earlier embedops ({', '.join(found)}), "
            "which this one does not read or convert; move that folder aside and re-ingest into a fresh "
            "EMBEDOPS_HOME"
        )
