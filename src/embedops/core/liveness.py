"""Is the process that runs a pipeline run still there? What a killed run is recognised by.

A process is named by its host, its PID and its start time (Linux: clock ticks since boot, from
/proc), so a PID the kernel handed to a new process after the old one died is not mistaken for it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    started: str  # "" where the platform does not say (no /proc)

    def __str__(self) -> str:
        return f"process {self.pid} on host {self.host}"


def _start_ticks(pid: int) -> str | None:
    """The process's start time from /proc: None when it is gone (or a zombie), "" when unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command name) "
    state, ticks = fields[0], fields[19]
    return None if state in ("Z", "X") else ticks  # a zombie has finished; only its exit status is left


def this_process() -> ProcessIdentity:
    pid = os.getpid()
    return ProcessIdentity(socket.gethostname(), pid, _start_ticks(pid) or "")


def is_alive(process: ProcessIdentity) -> bool | None:
    """True while the process runs, False once it is gone, None when it is not on this host."""
    if process.host != socket.gethostname():
        return None
    if Path("/proc").is_dir():
        ticks = _start_ticks(process.pid)
        return ticks is not None and (not process.started or not ticks or ticks == process.started)
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
