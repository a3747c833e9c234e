"""Shared fixtures: a fresh EMBEDOPS_HOME and Dagster instance per test, one loaded model per session."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embedops.core.embedder import SpaceEmbedder  # noqa: E402
from embedops.core.settings import Settings  # noqa: E402
from embedops.core.spaces import DEFAULT_SPACE, SpacesConfig  # noqa: E402
from embedops.definitions import build_defs  # noqa: E402
from embedops.pipelines.runs import IngestSummary, run_ingest  # noqa: E402
from tests.postgres import control_database, postgres, postgres_session  # noqa: E402, F401 - for any test
from tests.s3 import s3  # noqa: E402, F401  (the FAKE S3 fixture: moto's server)
from tests.state import session_state, state_env  # noqa: E402

if TYPE_CHECKING:
    from tests.fakes.weaviate_fake import FakeWeaviateServer

SHARED_DATA = Path(os.environ.get("EMBEDOPS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def _no_current_instance_leaks() -> Iterator[None]:
    """Each test leaves Dagster's current definitions-state storage as it found it (none).

    `with instance:` makes the instance's storage current until its exit; one whose exit did not run would leave
    a later test's Definitions resolving through an instance already collected ("Attempted to resolve undefined
    DagsterInstance weakref"), depending on when the garbage collector ran. Dagster has no public setter.
    """
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


def age_files(folder: Path, seconds: float = 3600) -> None:
    """Date every file under ``folder`` ``seconds`` back. A file read just after it was written is read again
    on the next run (a write right after the read could keep the modification time the read saw); a file
    written long before it is read is not, while its size and modification time stay the same."""
    when = time.time() - seconds
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (when, when))


@pytest.fixture(scope="session")
def minilm() -> SpaceEmbedder:
    """The default space's model (all-MiniLM-L6-v2), loaded once for the whole session."""
    embedder = SpaceEmbedder(DEFAULT_SPACE)
    embedder.encode(["load the model now"])  # it loads on first use: here, outside any test
    return embedder


@dataclass
class Project:
    """A throw-away deployment: its own EMBEDOPS_HOME, sources root, Definitions and Dagster instance."""

    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance

    @property
    def workspace(self):  # type: ignore[no-untyped-def]
        return self.defs.resources["workspace"]

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.defs.resources["vector_store"].open()

    @property
    def spaces(self) -> SpacesConfig:
        return self.workspace.spaces()

    def source(self, tenant: str) -> Path:
        path = self.settings.sources_root / tenant
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, tenant: str, files: dict[str, str | bytes]) -> None:
        for name, content in files.items():
            path = self.source(tenant) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")

    def age(self, tenant: str) -> None:
        """Date the tenant's files an hour back (see ``age_files``)."""
        age_files(self.source(tenant))

    def ingest(self, tenant: str, space: str | None = None) -> IngestSummary:
        spaces = [self.spaces.get(space)] if space else [self.spaces.serving_space]
        return run_ingest(self.defs, self.instance, tenant, spaces, source=self.source(tenant))[0]

    def ingest_all(self, tenant: str) -> list[IngestSummary]:
        return run_ingest(self.defs, self.instance, tenant, list(self.spaces.spaces), source=self.source(tenant))


@pytest.fixture(scope="session", autouse=True)
def _state_profile() -> Iterator[None]:
    """The servers of the session's state profile (tests/state.py; none on the embedded defaults)."""
    with session_state():
        yield


def make_project(root: Path, spaces_file: Path | None = None) -> Project:
    urls = state_env()
    settings = Settings(home=root / "home", sources_root=root / "sources", spaces_file=spaces_file,
                        max_document_bytes=64 * 1024, database_url=urls.get("EMBEDOPS_DATABASE_URL", ""),
                        data_url=urls.get("EMBEDOPS_DATA_URL", ""))
    return Project(settings=settings, defs=build_defs(settings), instance=dg.DagsterInstance.ephemeral())


@pytest.fixture
def project(tmp_path: Path, minilm: SpaceEmbedder) -> Iterator[Project]:
    """An empty deployment on the embedded defaults (LanceDB, SQLite cache, default space)."""
    yield make_project(tmp_path)


@pytest.fixture
def ingested(project: Project) -> Project:
    """The empty deployment with tenant acme's three documents (tests/assets/test_pipeline.py) ingested."""
    from tests.assets.test_pipeline import DOCS

    project.write("acme", DOCS)
    project.ingest("acme")
    return project


@pytest.fixture
def settled(project: Project) -> Project:
    """Tenant acme's three documents, written an hour ago and ingested once (a re-run reads no file)."""
    from tests.assets.test_pipeline import DOCS

    project.write("acme", DOCS)
    project.age("acme")
    project.ingest("acme")
    return project


@pytest.fixture
def run(tmp_path: Path, minilm: SpaceEmbedder):  # type: ignore[no-untyped-def]
    """Run `embedops ARGS...` in-process against a fresh EMBEDOPS_HOME and DAGSTER_HOME under tmp_path."""
    from click.testing import CliRunner, Result

    from embedops.cli import main

    env = {"EMBEDOPS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "EMBEDOPS_SPACES": None, "EMBEDOPS_SOURCES": str(tmp_path / "sources"), "EMBEDOPS_MONITORING": None,
           **state_env()}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A folder holding the three small documents of tests/assets/test_pipeline.py."""
    from tests.assets.test_pipeline import DOCS

    folder = tmp_path / "docs"
    for name, text in DOCS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def weaviate_server() -> Iterator[FakeWeaviateServer]:
    """A FAKE Weaviate server (tests/fakes/weaviate_fake.py: none can run here), stopped after the test."""
    from tests.fakes.weaviate_fake import FakeWeaviateServer

    with FakeWeaviateServer() as server:
        yield server


def on_weaviate(project: Project, server: FakeWeaviateServer) -> Project:
    """``project`` with its Definitions' ``vector_store`` resource on ``server`` instead of LanceDB."""
    from embedops.resources import VectorStoreResource

    store = VectorStoreResource(kind="weaviate", weaviate_url=server.url, weaviate_grpc_port=server.grpc_port)
    defs = project.defs
    project.defs = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources={**(defs.resources or {}), "vector_store": store},
    )
    return project
