"""`./dev ui`: the Dagster UI on the demo's state, started from the repository without a warning.

Run from the repository root (whose dagster.yaml is the project's template), as README says. The
install step is skipped: the test's venv is this one, stamped as installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request
from pathlib import Path

from embedops.commands.base import INSTANCE_YAML
from tests.processes import Background, free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
LOCATIONS = '{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }'


def _venv(tmp_path: Path) -> Path:
    """A venv folder that `./dev` sees as installed, whose commands are this environment's."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "dagster", "dagster-webserver", "dagster-daemon"):
        (venv / "bin" / name).symlink_to(Path(sys.executable).parent / name)
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + (REPO / "constraints.txt").read_bytes())
    (venv / ".embedops-installed").write_text(f"{digest.hexdigest()[:16]} .\n")
    return venv


def _location_loaded(port: int) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": LOCATIONS}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
    except OSError:
        return False
    return [(e["name"], (e["locationOrLoadError"] or {}).get("__typename")) for e in entries] == [
        ("embedops", "RepositoryLocation")
    ]


def test_dev_ui_starts_the_ui_on_the_demo_state_without_warnings(tmp_path: Path) -> None:
    home = tmp_path / "embedops"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)  # what `./dev demo` leaves
    port = free_port()
    env = {**os.environ, "EMBEDOPS_VENV": str(_venv(tmp_path)), "EMBEDOPS_HOME": str(home),
           "EMBEDOPS_UI_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    env.pop("DAGSTER_HOME", None)
    ui = Background([str(REPO / "dev"), "ui"], tmp_path / "ui.log", env, cwd=REPO)
    try:
        wait_for(lambda: _location_loaded(port), 180, "the UI with the embedops code location loaded", ui)
    finally:
        ui.stop()
    output = ui.log.read_text()
    assert f"http://127.0.0.1:{port}" in output
    for noise in ("will not be used", "Warning", "dg dev", "superseded"):
        assert noise not in output, output
