"""Servers and daemons that tests start: on 127.0.0.1, on a free port, stopped by their own process id."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Background:
    """A command running in its own process group, its output in a log file; ``stop`` ends it by PID."""

    def __init__(self, command: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> None:
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout`` seconds."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self._out.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def wait_for(condition: Callable[[], bool], timeout: float, what: str, process: Background | None = None) -> None:
    """Poll ``condition`` until it holds; on timeout fail with ``what`` and the process's last output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({process.proc.returncode}):\n{process.tail()}")
        time.sleep(0.5)
    output = f":\n{process.tail()}" if process else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{output}")


def webserver_up(port: int) -> bool:
    """True once a Dagster webserver answers on 127.0.0.1:``port``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def graphql(port: int, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The answer of the Dagster webserver on 127.0.0.1:``port`` to a GraphQL request, as the UI sends it."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.loads(response.read()))
