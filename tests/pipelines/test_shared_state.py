"""Two workers, no shared disk: state lives in a real PostgreSQL and on the data URL, nowhere else.

Each worker is `embedops ingest` in its own process with its own EMBEDOPS_HOME and DAGSTER_HOME scratch
folders. They share only a PostgreSQL server started by the test (the control database, and Dagster's
storage through deploy/dagster.postgres.yaml) and EMBEDOPS_DATA_URL: a plain folder, or a bucket on
moto's S3 server (a FAKE: no S3 server can run here). The tenants' source folders stand for the source
system both workers read. What they build together must equal what one worker builds alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from embedops.core.settings import Settings
from embedops.definitions import build_defs
from tests.migration.conftest import ACME, GLOBEX, STATIC
from tests.postgres import PgServer

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
EMBEDOPS = str(Path(sys.executable).parent / "embedops")
INDEX_COLUMNS = ["chunk_id", "doc_id", "seq", "text", "source_checksum", "space_id", "model", "config_hash", "vector"]


@pytest.fixture(params=["folder", "s3"])
def data_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared data plane: a folder, or a bucket on the fake S3 server."""
    if request.param == "folder":
        return str(tmp_path / "shared-data")
    return str(request.getfixturevalue("s3"))


@pytest.fixture
def deployment(tmp_path: Path, postgres: PgServer, data_url: str) -> dict[str, str]:
    """What every worker of the deployment is given: settings, URLs and credentials, no folder of state."""
    spaces = tmp_path / "spaces.yaml"
    spaces.write_text(yaml.safe_dump({"alias": "docs", "serving": "static", "spaces": [STATIC]}))
    sources = tmp_path / "sources"
    for tenant, docs in {"acme": ACME, "globex": GLOBEX}.items():
        (sources / tenant).mkdir(parents=True)
        for name, text in docs.items():
            (sources / tenant / name).write_text(text)
    return {
        "EMBEDOPS_DATABASE_URL": postgres.create_database("control"),
        "EMBEDOPS_DATA_URL": data_url,
        "EMBEDOPS_SPACES": str(spaces),
        "EMBEDOPS_SOURCES": str(sources),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": postgres.db_name,
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": postgres.password,
    }


def worker(tmp_path: Path, name: str, shared: dict[str, str]) -> dict[str, str]:
    """A worker's environment: the shared settings plus scratch folders of its own."""
    scratch = tmp_path / f"worker-{name}"
    dagster_home = scratch / "dagster"
    dagster_home.mkdir(parents=True)
    (scratch / "home").mkdir()
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", dagster_home / "dagster.yaml")
    return {**os.environ, **shared, "EMBEDOPS_HOME": str(scratch / "home"), "DAGSTER_HOME": str(dagster_home),
            "HF_HUB_OFFLINE": "1"}


def ingest(env: dict[str, str], tenant: str) -> subprocess.Popen[str]:
    return subprocess.Popen([EMBEDOPS, "ingest", "--tenant", tenant], env=env, cwd=env["EMBEDOPS_HOME"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def index_rows(settings: Settings, tenant: str) -> pa.Table:
    """Every index row of the tenant in the static space, with its vector, sorted by chunk id."""
    defs = build_defs(settings)
    space = defs.resources["workspace"].spaces().get("static")  # type: ignore[attr-defined]
    store = defs.resources["vector_store"].open()  # type: ignore[attr-defined]
    return store.export(tenant, space.space_id, with_vectors=True).select(INDEX_COLUMNS).sort_by("chunk_id")


def chunk_rows(settings: Settings, tenant: str) -> pa.Table:
    tables = build_defs(settings).resources["workspace"].tables()  # type: ignore[attr-defined]
    found = tables.read("document_chunks", (tenant, "static"))
    assert found is not None, f"no document_chunks for {tenant}"
    return found.select(["chunk_id", "doc_id", "seq", "text", "text_hash", "source_checksum"]).sort_by("chunk_id")


def assert_same(ours: pa.Table, reference: pa.Table) -> None:
    plain = [c for c in ours.column_names if c != "vector"]
    assert ours.select(plain).to_pylist() == reference.select(plain).to_pylist()
    if "vector" in ours.column_names:
        np.testing.assert_allclose(np.array(ours["vector"].to_pylist()), np.array(reference["vector"].to_pylist()),
                                   rtol=1e-5, atol=1e-6)


def test_two_workers_sharing_only_postgres_and_the_data_url_build_what_one_worker_builds(
    tmp_path: Path, deployment: dict[str, str]
) -> None:
    first, second = worker(tmp_path, "a", deployment), worker(tmp_path, "b", deployment)
    # Dagster creates its PostgreSQL schema on first use; in a deployment that happens once, before workers start
    subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"], env=first,
                   check=True)

    # different tenants at the same time, one on each worker
    for proc in [ingest(first, "acme"), ingest(second, "globex")]:
        finish(proc)

    # the second worker picks up the tenant the first built: an edit, a deletion and a new document
    acme = Path(deployment["EMBEDOPS_SOURCES"]) / "acme"
    (acme / "billing.md").write_text("# Billing\n\nAcme bills monthly in advance; card payments retry daily.")
    (acme / "keys.md").unlink()
    (acme / "sso.md").write_text("# Single sign-on\n\nAcme supports SAML single sign-on for every workspace.")
    out = finish(ingest(second, "acme"))
    assert "added 1, changed 1, deleted 1, unchanged 0" in out, out

    # the workers' scratch folders hold no state: wipe them, and a new worker finds globex as the other left it
    for env in (first, second):
        shutil.rmtree(env["EMBEDOPS_HOME"])
    fresh = worker(tmp_path, "c", deployment)
    out = finish(ingest(fresh, "globex"))
    assert "unchanged 3" in out and "0 model calls" in out, out
    shared = Settings.from_env(fresh)

    # one worker alone, on the embedded defaults, from the same sources
    alone = worker(tmp_path, "alone", {"EMBEDOPS_SPACES": deployment["EMBEDOPS_SPACES"],
                                       "EMBEDOPS_SOURCES": deployment["EMBEDOPS_SOURCES"]})
    (Path(alone["DAGSTER_HOME"]) / "dagster.yaml").unlink()  # Dagster on SQLite in its own scratch folder
    for tenant in ("acme", "globex"):
        finish(ingest(alone, tenant))
    reference = Settings.from_env(alone)
    assert reference.database_url == "" and reference.data_url == ""

    for tenant in ("acme", "globex"):
        assert_same(chunk_rows(shared, tenant), chunk_rows(reference, tenant))
        ours = index_rows(shared, tenant)
        assert ours.num_rows > 0
        assert_same(ours, index_rows(reference, tenant))
    assert "keys.md" not in set(index_rows(shared, "acme")["doc_id"].to_pylist())
