"""Bad input is quarantined with a reason; the run goes on for every other document."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from embedops.core.chunking import MAX_CHARS_PER_TOKEN
from embedops.core.embedder import SpaceEmbedder
from embedops.core.migration import tenant_status
from embedops.core.monitoring.reconcile import reconcile_tenant
from embedops.core.registry import Registry
from embedops.core.spaces import DEFAULT_SPACE, ModelSpec, SpaceSpec
from embedops.errors import InvalidTenantError
from tests.conftest import Project

GOOD = "# Tides\n\nTides rise and fall twice a day because of the moon's pull on the oceans."


def test_hostile_files_are_quarantined_and_the_rest_is_indexed(project: Project, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nThis file lives outside the tenant root.")
    project.write(
        "acme",
        {
            "good.md": GOOD,
            "empty.md": "",
            "blank.txt": "   \n\t\n  ",
            "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "binary.txt": b"abc\x00def\x00",
            "latin1.txt": "caf\xe9 cr\xe8me".encode("latin-1"),
            "zero-width-only.md": "\u200b\u200c\u200d\ufeff",
            "zero-width.md": "# Ze\u200bro\n\nInvisible\u200b characters are removed before embedding.",
            "huge.md": "word " * 20_000,
            "page.html": "<html><body><h1>Harbour</h1><p>Boats &amp; ships dock here.</p>"
            "<script>alert('x')</script></body></html>",
        },
    )
    os.symlink(outside, project.source("acme") / "escape.md")
    os.symlink(project.source("acme") / "good.md", project.source("acme") / "inside-link.md")

    summary = project.ingest("acme")

    reasons = {q["path"]: q["reason"] for q in summary.quarantined}
    assert set(reasons) == {
        "empty.md", "blank.txt", "image.png", "binary.txt", "latin1.txt", "zero-width-only.md", "huge.md", "escape.md"
    }
    assert "empty" in reasons["empty.md"] and "empty" in reasons["blank.txt"]
    assert "unsupported file type" in reasons["image.png"]
    assert "NUL" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "no text" in reasons["zero-width-only.md"]
    assert "limit" in reasons["huge.md"] and "EMBEDOPS_MAX_DOCUMENT_BYTES" in reasons["huge.md"]
    assert "outside the tenant root" in reasons["escape.md"]

    rows = project.store.export("acme", project.spaces.serving_space.space_id).to_pylist()
    texts = {r["doc_id"]: r["text"] for r in rows}
    assert set(texts) == {"good.md", "zero-width.md", "page.html", "inside-link.md"}
    assert "\u200b" not in texts["zero-width.md"] and "Invisible characters" in texts["zero-width.md"]
    assert "Boats & ships" in texts["page.html"] and "alert" not in texts["page.html"]
    assert not any("outside the tenant root" in t for t in texts.values())


class FifoHangGuard:
    """Opens the FIFO's write end if the test is still running after ``seconds``, so that a reader
    blocked on it gets end-of-file and the test fails instead of hanging (a hang guard, not a timing)."""

    def __init__(self, fifo: Path, seconds: float = 300) -> None:
        self.fifo, self.fired = fifo, False
        self._timer = threading.Timer(seconds, self._release)
        self._timer.daemon = True

    def _release(self) -> None:
        self.fired = True
        try:
            os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # nobody is reading it

    def __enter__(self) -> FifoHangGuard:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def test_special_files_and_symlink_tricks_are_quarantined_without_hanging(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project.source("acme")
    project.write("acme", {"good.md": GOOD, "sub/inner.md": "# Inner\n\nA document one folder down stays indexed."})
    outside = tmp_path / "elsewhere"
    (outside / "docs").mkdir(parents=True)
    (outside / "docs" / "leak.md").write_text("# Leak\n\nThis folder lives outside the tenant root.")
    os.symlink("loop.md", root / "loop.md")  # a link to itself
    os.symlink("ping.md", root / "pong.md")  # two links pointing at each other
    os.symlink("pong.md", root / "ping.md")
    os.symlink("there", root / "here")  # two folder links pointing at each other
    os.symlink("here", root / "there")
    os.symlink("..", root / "sub" / "up")  # a folder link back to its parent
    os.symlink(outside / "docs", root / "linked")  # a folder link leaving the tenant
    os.mkfifo(root / "x.md")
    monkeypatch.chdir(root)  # a unix socket path must be short: bind it relative to the folder
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock.md")
        with FifoHangGuard(root / "x.md") as guard:
            summary = project.ingest("acme")

    assert not guard.fired, "the scan blocked reading the FIFO x.md"
    reasons = {q["path"]: q["reason"] for q in summary.quarantined}
    assert set(reasons) == {"loop.md", "ping.md", "pong.md", "here", "there", "sub/up", "linked", "x.md", "sock.md"}
    for name in ("loop.md", "ping.md", "pong.md", "here", "there"):
        assert "symlink loop" in reasons[name]
    assert "loops back" in reasons["sub/up"]
    assert "outside the tenant root" in reasons["linked"] and str(outside / "docs") in reasons["linked"]
    assert "FIFO" in reasons["x.md"] and "not opened" in reasons["x.md"]
    assert "socket" in reasons["sock.md"]
    space = project.spaces.serving_space
    rows = project.store.export("acme", space.space_id).to_pylist()
    assert {r["doc_id"] for r in rows} == {"good.md", "sub/inner.md"}

    # the checks and `embedops spaces` list the same folder without crashing, and agree with the scan
    outcome = reconcile_tenant(project.workspace.tables(), project.store, root, "acme", space)
    assert outcome.passed, outcome.description
    assert outcome.metadata["source_documents"] == 2
    assert tenant_status(project.workspace.tables(), project.store, "acme", space, root).problems == []


def test_text_the_model_cannot_read_is_quarantined_and_long_runs_are_bounded(project: Project) -> None:
    project.write(
        "acme",
        {
            "good.md": GOOD,
            "dump.md": "# Dump\n\n" + "x" * 30_000,  # one "word" WordPiece reads as a single [UNK]
            "mixed.md": GOOD + "\n\n" + "ab" * 10_000,  # readable text, then an unreadable run
            "paths.md": "# Paths\n\n" + "data/" * 2_000,  # a long run without spaces the model does read
        },
    )

    summary = project.ingest("acme")

    reasons = {q["path"]: q["reason"] for q in summary.quarantined}
    assert set(reasons) == {"dump.md", "mixed.md"}
    assert all("unknown tokens" in reason for reason in reasons.values())
    assert reasons["dump.md"].startswith("chunk 1 of ") and "'xxxxxxxx" in reasons["dump.md"]
    rows = project.store.export("acme", project.spaces.serving_space.space_id).to_pylist()
    assert {r["doc_id"] for r in rows} == {"good.md", "paths.md"}
    assert max(len(r["text"]) for r in rows) <= 200 * MAX_CHARS_PER_TOKEN


STATIC_SPACE = SpaceSpec(name="static", dimension=64,
                         model=ModelSpec(name="tokenlearn-static", backend="model2vec", package="static_model"))


@pytest.mark.parametrize("space", [DEFAULT_SPACE, STATIC_SPACE], ids=["sentence-transformers", "model2vec"])
def test_unknown_share_is_what_the_tokenizer_cannot_read(space: SpaceSpec, minilm: SpaceEmbedder) -> None:
    model = minilm if space == DEFAULT_SPACE else SpaceEmbedder(space)

    assert model.unknown_share(GOOD) == 0.0
    assert model.unknown_share("") == 0.0
    assert model.unknown_share("ok \u0378\u0379") == pytest.approx(0.5)  # two unassigned code points of four


@pytest.mark.parametrize("name", ["../etc", "Acme", "a b", "x' OR '1'='1", "", "a/b", "-lead", "é"])
def test_unsafe_tenant_names_are_refused(project: Project, name: str) -> None:
    with pytest.raises(InvalidTenantError, match="not a valid tenant name"):
        Registry(project.settings.control_url).add_tenant(name, project.settings.sources_root)
