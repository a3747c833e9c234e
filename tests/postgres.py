"""A throw-away PostgreSQL server for tests: Debian's (or PATH's) initdb and pg_ctl, on 127.0.0.1 only,
stopped by its own process id. Registered in tests/conftest.py, so any test can ask for ``postgres``
(function scope), ``postgres_session`` (one server for the whole session) or ``control_database`` (a fresh
control database URL, on SQLite and then on the session's PostgreSQL server)."""

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
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

from tests.processes import free_port

INSTALL_HINT = (
    "no PostgreSQL server binaries (initdb, pg_ctl) found via pg_config --bindir, /usr/lib/postgresql/*/bin "
    "or PATH; install Debian's postgresql package (`apt-get install postgresql`; `./dev test` does it when run "
    "as root)"
)



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

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the server's database (with the password)."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.db_name}"

    def create_database(self, name: str) -> str:
        """A new empty database on the server; its URL."""
        admin = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                 dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        admin.close()
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{name}"


# what logical decoding needs (change data capture from a table: core/cdc.py)
# (commits flushed at once: a change reaches the slot's decoding as soon as it is committed)
LOGICAL_CONF = "wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\nsynchronous_commit = on\n"


@contextmanager
def pg_server(extra_conf: str = "") -> Iterator[PgServer]:
    """A throw-away PostgreSQL server on 127.0.0.1 (no Unix socket), with one empty database; ``extra_conf``
    is appended to its postgresql.conf (``LOGICAL_CONF`` for logical replication)."""
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
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n" + extra_conf)
        started = subprocess.run([*as_user, str(pg_ctl), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"],
                                 capture_output=True, text=True, check=False)
        if (data / "postmaster.pid").is_file():
            pid = int((data / "postmaster.pid").read_text().split()[0])
        if started.returncode != 0:
            pytest.fail(f"pg_ctl start failed: {started.stdout}{started.stderr}\n{log.read_text()}")
        server.create_database(server.db_name)
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


@pytest.fixture
def postgres() -> Iterator[PgServer]:
    """A throw-away PostgreSQL server of this test alone."""
    with pg_server() as server:
        yield server


@pytest.fixture
def logical_postgres() -> Iterator[PgServer]:
    """A throw-away PostgreSQL server of this test alone with ``wal_level=logical`` and room for replication
    slots and WAL senders (initdb's pg_hba.conf lets replication connections in from 127.0.0.1)."""
    binaries = find_server_binaries()
    if binaries is not None and not (binaries[0].parent.parent / "lib" / "wal2json.so").is_file():
        hint = (f"no wal2json.so next to {binaries[0]}; install Debian's postgresql-<major>-wal2json "
                "(`./dev test` does it when run as root)")
        if os.environ.get("CI"):
            pytest.fail(hint)
        pytest.skip(hint)
    with pg_server(LOGICAL_CONF) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[PgServer]:
    """One throw-away PostgreSQL server shared by the session's tests (give each test its own database)."""
    with pg_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def control_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty control database URL: an SQLite file, then a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.sqlite'}"
    server: PgServer = request.getfixturevalue("postgres_session")
    return server.create_database(f"control_{secrets.token_hex(6)}")
