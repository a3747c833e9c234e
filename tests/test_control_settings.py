"""The control database as a user meets it: an unreachable EMBEDOPS_DATABASE_URL and an EMBEDOPS_HOME in the
old layout are each one line with the fix, exit code 2, no traceback, no password."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from embedops.cli import main
from embedops.core.settings import Settings
from embedops.definitions import build_defs
from embedops.errors import OldLayoutError
from tests.postgres import PgServer
from tests.processes import free_port


def _embedops(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    base = {"EMBEDOPS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"),
            "EMBEDOPS_SPACES": None, "EMBEDOPS_SOURCES": str(tmp_path / "sources"), "EMBEDOPS_DATABASE_URL": None}
    result = CliRunner().invoke(main, list(args), env={**base, **env}, catch_exceptions=False)
    return result.exit_code, result.output


def test_an_unreachable_control_database_is_one_line_naming_the_setting_and_the_host(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://embedops:s3cret-pw@127.0.0.1:{port}/control"
    code, output = _embedops(tmp_path, "spaces", EMBEDOPS_DATABASE_URL=url)
    assert code == 2
    assert output.splitlines() == [
        f"error: cannot reach the control database at 127.0.0.1:{port} (EMBEDOPS_DATABASE_URL): connection refused; "
        "start it or fix the setting"
    ]
    assert "s3cret-pw" not in output and "Traceback" not in output


OLD = ["registry.sqlite", "manifest.sqlite", "monitoring/pager.sqlite", "lancedb/aliases.json"]


@pytest.mark.postgres
def test_a_wrong_password_is_one_line_without_the_password(tmp_path: Path, postgres_session: PgServer) -> None:
    url = f"postgresql://{postgres_session.user}:not-the-pw@127.0.0.1:{postgres_session.port}/postgres"
    code, output = _embedops(tmp_path, "spaces", EMBEDOPS_DATABASE_URL=url)
    assert code == 2
    assert output.splitlines() == [
        f"error: cannot reach the control database at 127.0.0.1:{postgres_session.port} (EMBEDOPS_DATABASE_URL): "
        "password authentication failed; start it or fix the setting"
    ]
    assert "not-the-pw" not in output


@pytest.mark.parametrize("old", OLD)
def test_a_home_in_the_old_layout_is_refused_with_the_fix(tmp_path: Path, old: str) -> None:
    home = tmp_path / "home"
    (home / old).parent.mkdir(parents=True, exist_ok=True)
    (home / old).write_text("")
    code, output = _embedops(tmp_path, "spaces")
    assert code == 2 and len(output.splitlines()) == 1, output
    assert output.startswith(f"error: EMBEDOPS_HOME {home} holds state in the layout of an earlier embedops ({old})")
    assert "move that folder aside and re-ingest into a fresh EMBEDOPS_HOME" in output
    with pytest.raises(OldLayoutError, match="earlier embedops"):  # `dagster dev` loads build_defs: refused too
        build_defs(Settings(home=home, sources_root=tmp_path / "sources"))
    assert (home / old).read_text() == ""  # nothing converted, nothing removed


def test_a_fresh_home_keeps_control_state_in_one_database(tmp_path: Path) -> None:
    code, output = _embedops(tmp_path, "spaces")
    assert code == 0, output
    home = tmp_path / "home"
    assert (home / "control.sqlite").is_file()
    assert not any((home / old).exists() for old in ("registry.sqlite", "manifest.sqlite", "monitoring"))
