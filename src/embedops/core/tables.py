"""Materialized tables: each materialization of an asset partition is a Parquet file kept on disk.

``<root>/<asset>/<partition...>/<stamp>-<run>.parquet``, plus a LATEST file naming the current one,
replaced atomically. The previous materialization plus the embedding cache is what makes the next
one incremental; older files are the audit trail.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


class TableStore:
    def __init__(self, root: str | Path, keep: int = 5) -> None:
        self.root = Path(root)
        self.keep = keep

    def _dir(self, asset: str, *partition: str) -> Path:
        return self.root.joinpath(asset, *partition)

    def write(self, asset: str, partition: tuple[str, ...], table: pa.Table, run_id: str = "local") -> Path:
        """Write a new version and make it the latest; returns its path."""
        folder = self._dir(asset, *partition)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = folder / f"{stamp}-{run_id[:8]}.parquet"
        pq.write_table(table, path)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".latest.")
        with os.fdopen(fd, "w") as fh:
            fh.write(path.name)
        os.replace(tmp, folder / "LATEST")
        self._prune(folder)
        return path

    def latest_path(self, asset: str, partition: tuple[str, ...]) -> Path | None:
        pointer = self._dir(asset, *partition) / "LATEST"
        if not pointer.exists():
            return None
        return pointer.parent / pointer.read_text().strip()

    def read(self, asset: str, partition: tuple[str, ...]) -> pa.Table | None:
        """The latest materialization, or None when there is none yet."""
        path = self.latest_path(asset, partition)
        return None if path is None else pq.read_table(path)

    def _prune(self, folder: Path) -> None:
        versions = sorted(folder.glob("*.parquet"))
        for old in versions[: -self.keep]:
            old.unlink(missing_ok=True)
