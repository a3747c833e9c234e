"""Recognising a run's process: alive, gone, or on another host (then not judged)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from embedops.core.liveness import is_alive, this_process


def test_a_live_process_is_alive_and_a_finished_one_is_gone() -> None:
    assert is_alive(this_process()) is True
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ticks = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        identity = replace(this_process(), pid=child.pid, started=ticks)
        assert is_alive(identity) is True
    finally:
        child.kill()
        child.wait()
    assert is_alive(identity) is False


def test_a_reused_pid_is_not_the_same_process_and_another_host_is_not_judged() -> None:
    me = this_process()
    assert is_alive(replace(me, started="1")) is False  # same PID, another start time: the old process is gone
    assert is_alive(replace(me, host=me.host + "-elsewhere")) is None
