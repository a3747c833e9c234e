"""Listing and reading a tenant's source folder: special files are never opened, symlink tricks are named."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from embedops.core.sources import DOCUMENTS_SCHEMA, SourceScan, list_entries, list_source, scan_tenant
from embedops.core.tables import Collector

GOOD = "# Tides\n\nTides rise and fall twice a day."


def test_a_fifo_is_quarantined_without_being_opened(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(GOOD)
    os.mkfifo(tmp_path / "x.md")
    out = Collector(DOCUMENTS_SCHEMA)
    scans: list[SourceScan] = []
    worker = threading.Thread(target=lambda: scans.append(scan_tenant("acme", tmp_path, 1 << 20, out)), daemon=True)
    worker.start()
    worker.join(timeout=120)  # a hang guard only: a scan blocked on the FIFO is released below and fails
    blocked = worker.is_alive()
    if blocked:
        os.close(os.open(tmp_path / "x.md", os.O_WRONLY | os.O_NONBLOCK))
        worker.join()
    assert not blocked, "the scan blocked reading the FIFO x.md"
    assert out.table().column("doc_id").to_pylist() == ["good.md"]
    assert [(q["doc_id"], "FIFO" in q["reason"]) for q in scans[0].quarantined] == [("x.md", True)]


def test_symlink_loops_are_listed_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "good.md").write_text(GOOD)
    os.symlink("self.md", tmp_path / "self.md")
    os.symlink("..", tmp_path / "sub" / "up")
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")

    problems = {e.doc_id: e.problem for e in list_entries(tmp_path)}

    assert list(list_source(tmp_path)) == ["sub/good.md"]
    assert problems["sub/good.md"] is None
    assert all("symlink loop" in str(problems[name]) for name in ("self.md", "a", "b"))
    assert "loops back" in str(problems["sub/up"])
