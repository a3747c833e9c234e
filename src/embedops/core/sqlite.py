"""Opening the SQLite files embedops keeps in EMBEDOPS_HOME, all the same way."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal


def open_db(path: Path, schema: str, autocommit: bool = False) -> sqlite3.Connection:
    """Connect (creating the folder), switch to WAL so processes can share the file, apply ``schema``.

    ``autocommit`` leaves transactions to explicit BEGIN/COMMIT statements.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    isolation: Literal["DEFERRED"] | None = None if autocommit else "DEFERRED"
    conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=isolation)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(schema)
    return conn
