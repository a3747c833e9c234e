"""Dagster on PostgreSQL: a real server, the production profile deploy/dagster.postgres.yaml, a real
pipeline run; then the rows are read back from PostgreSQL with psycopg2, not through Dagster."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.events import DagsterEventType
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from embedops.core.embedder import SpaceEmbedder
from embedops.pipelines.check_runs import run_checks
from embedops.pipelines.partitions import tenant_space_key
from tests.conftest import Project, make_project
from tests.processes import free_port

pytestmark = pytest.mark.postgres

PROFILE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.postgres.yaml"
INSTALL_HINT = (
    "no PostgreSQL server binaries (initdb, pg_ctl) found via pg_config --bindir, /usr/lib/postgresql/*/bin "
    "or PATH; install Debian's postgresql package (`apt-get install postgresql`; `./dev test` does it when run "
    "as root)"
)
DOCS: dict[str, str | bytes] = {
    "lamp.md": "# Lamps\n\nA lighthouse lamp burned whale oil, then kerosene, then electricity.",
    "bells.txt": "Fog bells\n\nIn fog, bells warned ships when the light could not be seen.",
}


def find_server_binaries() -> tuple[Path, Path] | None:
    """initdb and pg_ctl of one installation: pg_config's bindir, Debian's versioned dirs, then PATH."""
    dirs: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            dirs.append(Path(out.stdout.strip()))
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    dirs += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    for d in dirs:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d / "initdb", d / "pg_ctl"
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    return (Path(initdb), Path(pg_ctl)) if initdb and pg_ctl else None


def run_as_server_user() -> list[str]:
    """initdb refuses to run as root: as root, run the server as the `postgres` system user."""
    if os.geteuid() != 0:
        return []
    if subprocess.run(["id", "-u", "postgres"], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
                       check=True)
    return ["runuser", "-u", "postgres", "--"]


def run_or_fail(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout}{done.stderr}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class PgServer:
    port: int
    user: str
    password: str
    db_name: str

    def connect(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname=self.db_name)


@pytest.fixture
def postgres() -> Iterator[PgServer]:
    """A throw-away PostgreSQL server on 127.0.0.1 (no Unix socket), with one empty database."""
    binaries = find_server_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    initdb, pg_ctl = binaries
    as_user = run_as_server_user()
    root = Path(tempfile.mkdtemp(prefix="embedops-pg-"))  # not under pytest's tmp: that is 0700 root's
    data, log, pwfile = root / "data", root / "server.log", root / "pwfile"
    server = PgServer(port=free_port(), user="embedops", password=secrets.token_hex(12), db_name="dagster")
    pid = 0
    try:
        pwfile.write_text(server.password + "\n")
        if as_user:
            shutil.chown(root, "postgres")
            shutil.chown(pwfile, "postgres")
        run_or_fail([*as_user, str(initdb), "-D", str(data), "-U", server.user, f"--pwfile={pwfile}",
                     "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"])
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {server.port}\nunix_socket_directories = ''\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        started = subprocess.run([*as_user, str(pg_ctl), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"],
                                 capture_output=True, text=True, check=False)
        if (data / "postmaster.pid").is_file():
            pid = int((data / "postmaster.pid").read_text().split()[0])
        if started.returncode != 0:
            pytest.fail(f"pg_ctl start failed: {started.stdout}{started.stderr}\n{log.read_text()}")
        admin = psycopg2.connect(host="127.0.0.1", port=server.port, user=server.user, password=server.password,
                                 dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {server.db_name}")
        admin.close()
        yield server
    finally:
        subprocess.run([*as_user, str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"],
                       capture_output=True, check=False)
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
            for _ in range(50):
                if not alive(pid):
                    break
                time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


def query(server: PgServer, sql: str, *params: object) -> list[tuple]:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.close()
    return rows


def test_the_production_profile_keeps_runs_events_and_checks_in_postgres(
    postgres: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: SpaceEmbedder
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROFILE, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in {"HOST": "127.0.0.1", "PORT": str(postgres.port), "DB": postgres.db_name,
                        "USER": postgres.user, "PASSWORD": postgres.password}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.run_coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs > 1
        assert [limit["key"] for limit in queue.tag_concurrency_limits] == ["dagster/partition/tenant"]

        project: Project = dataclasses.replace(make_project(tmp_path), instance=instance)
        project.write("acme", DOCS)
        summary = project.ingest("acme")
        assert (summary.documents, summary.quarantined) == (2, []) and summary.index_rows == summary.chunks >= 2
        space = project.spaces.serving_space
        key = str(tenant_space_key("acme", space.name))
        # checks the pipeline runs itself land with the ingest; run one other (reconciliation if there is one)
        # the way `embedops check` does
        check_keys = project.defs.resolve_asset_graph().asset_check_keys
        evaluated = {k for k in check_keys if check_rows(postgres, k)}
        others = sorted(check_keys - evaluated, key=lambda k: (k.name != "reconciliation", k.to_user_string()))
        if others:
            reports = run_checks(project.defs, instance, tenant="acme", names=[others[0].name])
            assert reports, f"no evaluation of {others[0].to_user_string()}"
            evaluated.add(others[0])

    runs = dict(query(postgres, "SELECT run_id, status FROM runs"))
    assert {run_id: runs.get(run_id) for run_id in summary.run_ids} == dict.fromkeys(summary.run_ids, "SUCCESS")
    embed_run = summary.run_ids[1]
    assert query(postgres, "SELECT value FROM run_tags WHERE run_id = %s AND key = %s",
                 embed_run, "dagster/partition/tenant") == [("acme",)]

    materialized = set(query(postgres, "SELECT asset_key, partition FROM event_logs "
                                       "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"))
    assert materialized >= {
        (dg.AssetKey("source_documents").to_string(), "acme"),
        *((dg.AssetKey(name).to_string(), key) for name in ("document_chunks", "chunk_embeddings", "vector_index")),
    }
    assert query(postgres, "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
                 embed_run, DagsterEventType.RUN_SUCCESS.value) == [(1,)]

    for check_key in evaluated:  # evaluated (passed or failed, not only planned), on the partition ingested
        rows = check_rows(postgres, check_key)
        assert rows and set(rows) <= {(p, s) for p in (key, "acme") for s in ("SUCCEEDED", "FAILED")}, rows


def check_rows(server: PgServer, check_key: dg.AssetCheckKey) -> list[tuple]:
    return query(server, "SELECT partition, execution_status FROM asset_check_executions "
                         "WHERE asset_key = %s AND check_name = %s",
                 check_key.asset_key.to_string(), check_key.name)
