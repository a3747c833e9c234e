"""Servers and daemons that tests start: on 127.0.0.1, on a free port, stopped by their own process id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


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
