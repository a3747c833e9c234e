"""Moves of one alias take turns across processes (and hosts): a lease in the control database, not a
file lock on one host's disk. On SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MOVER = """
import json, sys, time
from embedops.core.cutover import alias_lock
from embedops.core.manifest import Manifest
manifest = Manifest(sys.argv[1])
try:
    with alias_lock(manifest, "docs", wait=float(sys.argv[3])):
        print(json.dumps({"in": time.time()}), flush=True)
        time.sleep(float(sys.argv[2]))
        print(json.dumps({"out": time.time()}), flush=True)
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
"""


def _mover(database: str, hold: float, wait: float, user: str, home: Path) -> subprocess.Popen[str]:
    """A process moving alias 'docs', as ``user`` with its own EMBEDOPS_HOME (another worker)."""
    env = {**os.environ, "EMBEDOPS_USER": user, "EMBEDOPS_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", MOVER, database, str(hold), str(wait)], env=env,
                            stdout=subprocess.PIPE, text=True)


def _lines(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = proc.communicate(timeout=120)
    found: dict[str, object] = {}
    for line in out.splitlines():
        found.update(json.loads(line))
    return found


def test_two_workers_moving_one_alias_take_turns_and_a_third_is_told_who_holds_it(
    control_database: str, tmp_path: Path
) -> None:
    first = _mover(control_database, 8.0, 0, "alice", tmp_path / "worker-a")
    assert first.stdout is not None
    held = json.loads(first.stdout.readline())  # alice is moving the alias
    second = _mover(control_database, 0.0, 60, "bob", tmp_path / "worker-b")
    third = _mover(control_database, 0.0, 0.5, "carol", tmp_path / "worker-c")

    refused, waited = _lines(third), _lines(second)
    alice = {**held, **_lines(first)}

    assert float(waited["in"]) >= float(alice["out"])  # bob moved only after alice let go
    assert refused["error"] == "PartitionBusyError"
    message = str(refused["message"])
    assert message.startswith("alias 'docs' is being moved by alice on "), message
    assert "wait for that move to finish" in message
