"""Bad input is quarantined with a reason; the run goes on for every other document."""

from __future__ import annotations

import os

import pytest

from embedops.core.registry import Registry
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


@pytest.mark.parametrize("name", ["../etc", "Acme", "a b", "x' OR '1'='1", "", "a/b", "-lead", "é"])
def test_unsafe_tenant_names_are_refused(project: Project, name: str) -> None:
    with pytest.raises(InvalidTenantError, match="not a valid tenant name"):
        Registry(project.settings.registry_path).add_tenant(name, project.settings.sources_root)
