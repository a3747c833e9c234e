"""Listing and reading a tenant's source folder: special files are never opened, symlink tricks are named."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import age_files

from embedops.core import sources
from embedops.core.sources import (
    DOCUMENTS_SCHEMA,
    ChangeSet,
    SourceScan,
    document_path,
    list_entries,
    list_source,
    scan_tenant,
)
from embedops.core.tables import Collector
from embedops.errors import ConfigError

GOOD = "# Tides\n\nTides rise and fall twice a day."


def test_a_fifo_is_quarantined_without_being_opened(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(GOOD)
    os.mkfifo(tmp_path / "x.md")
    out = Collector(DOCUMENTS_SCHEMA)
    scans: list[SourceScan] = []
    scan = lambda: scans.append(scan_tenant("acme", tmp_path, 1 << 20, lambda: out))  # noqa: E731
    worker = threading.Thread(target=scan, daemon=True)
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


FILES = {"a.md": "# A\n\nAlpha text.", "b.md": "# B\n\nBravo text.", "notes/c.txt": "Charlie text."}


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def no_table() -> Collector:
    raise AssertionError("a new table was opened although no document changed")


def rescan(folder: Path, last: tuple[pa.Table, SourceScan], **options) -> tuple[pa.Table, SourceScan]:  # type: ignore[no-untyped-def]
    """Scan ``folder`` against the table and quarantine of ``last``; the table stays ``last``'s when unchanged."""
    out = Collector(DOCUMENTS_SCHEMA)
    scan = scan_tenant("acme", folder, 1 << 20, lambda: out, previous=last[0],
                       previous_quarantine=last[1].quarantine_table(), **options)
    return (out.table() if scan.written else last[0]), scan


def first_scan(folder: Path) -> tuple[pa.Table, SourceScan]:
    out = Collector(DOCUMENTS_SCHEMA)
    scan = scan_tenant("acme", folder, 1 << 20, lambda: out)
    return out.table(), scan


def test_an_unchanged_folder_is_carried_over_without_opening_a_file(tmp_path: Path) -> None:
    write(tmp_path, {**FILES, "empty.md": " \n"})
    age_files(tmp_path)
    table, scan = first_scan(tmp_path)
    assert (scan.bodies_read, scan.documents, scan.written) == (4, 3, True)

    again = scan_tenant("acme", tmp_path, 1 << 20, no_table, previous=table,
                        previous_quarantine=scan.quarantine_table())

    assert (again.bodies_read, again.documents, again.written, again.quarantine_changed) == (0, 3, False, False)
    assert again.quarantined == scan.quarantined and "empty" in again.quarantined[0]["reason"]
    assert (again.added, again.changed, again.deleted) == ([], [], [])


def test_a_file_read_just_after_it_was_written_is_read_again_until_a_read_comes_late_enough(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # file systems keep coarse modification times: a write just after a read may keep the time that read saw
    # (2 s: wide enough that a loaded machine still scans the files within it of writing them)
    monkeypatch.setattr(sources, "RACY_SECONDS", 2.0)
    write(tmp_path, FILES)
    last = first_scan(tmp_path)
    soon = rescan(tmp_path, last)
    assert (soon[1].bodies_read, soon[1].touched, soon[1].changed) == (3, 3, [])
    time.sleep(2.1)
    late = rescan(tmp_path, soon)
    assert (late[1].bodies_read, late[1].touched, late[1].written) == (3, 3, True)
    assert rescan(tmp_path, late)[1].bodies_read == 0


def test_an_edit_keeping_size_and_time_is_missed_by_status_and_found_by_verify(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    age_files(tmp_path)
    last = first_scan(tmp_path)
    status = (tmp_path / "a.md").stat()
    (tmp_path / "a.md").write_text(FILES["a.md"].replace("Alpha", "Omega"))  # same size
    os.utime(tmp_path / "a.md", ns=(status.st_atime_ns, status.st_mtime_ns))

    plain_table, plain = rescan(tmp_path, last)
    verified_table, verified = rescan(tmp_path, last, verify=True)

    assert (plain.bodies_read, plain.written) == (0, False)
    assert "Alpha" in plain_table.filter(pa.compute.equal(plain_table["doc_id"], "a.md"))["text"][0].as_py()
    assert (verified.bodies_read, verified.changed, verified.written) == (3, ["a.md"], True)
    assert "Omega" in verified_table.filter(pa.compute.equal(verified_table["doc_id"], "a.md"))["text"][0].as_py()
    assert verified_table.num_rows == 3


def test_a_file_whose_time_moved_by_one_microsecond_is_read_again(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    age_files(tmp_path)
    last = first_scan(tmp_path)
    status = (tmp_path / "a.md").stat()
    os.utime(tmp_path / "a.md", ns=(status.st_atime_ns, status.st_mtime_ns + 1000))  # same size and text

    _, scan = rescan(tmp_path, last)

    assert (scan.bodies_read, scan.touched, scan.changed) == (1, 1, [])


@pytest.mark.parametrize("seconds", [
    0.0, 1.5, 1_700_000_000.0, 1_700_000_000.0000005, 1_700_000_000.0000015, 1_700_000_000.9999995,
    1_799_999_999.999999, 1_234_567_890.123456, -1.0000005, -0.25, 2_000_000_000.4999995,
])
def test_a_stat_time_in_microseconds_is_the_recorded_times_own(seconds: float) -> None:
    # the listing compares a file's stat time with the recorded one without building a datetime
    recorded = datetime.fromtimestamp(seconds, tz=UTC)
    assert sources.stat_micros(np.array([seconds]))[0] == sources._micros(recorded)


def test_stat_times_in_microseconds_agree_over_many_random_times() -> None:
    import random

    draw = random.Random(7)
    times = [draw.uniform(0, 2_100_000_000) for _ in range(20_000)]
    times += [draw.randrange(0, 2_100_000_000) + draw.randrange(0, 1_000_000) / 1e6 + 5e-7 for _ in range(20_000)]
    expected = [sources._micros(datetime.fromtimestamp(seconds, tz=UTC)) for seconds in times]
    assert sources.stat_micros(np.array(times)).tolist() == expected


def test_changes_and_deletions_are_found_by_status(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    age_files(tmp_path)
    last = first_scan(tmp_path)
    (tmp_path / "a.md").write_text("# A\n\nAlpha text, longer now.")
    (tmp_path / "b.md").unlink()
    write(tmp_path, {"d.md": "Delta text."})

    table, scan = rescan(tmp_path, last)

    assert (scan.added, scan.changed, scan.deleted, scan.bodies_read) == (["d.md"], ["a.md"], ["b.md"], 2)
    assert sorted(table["doc_id"].to_pylist()) == ["a.md", "d.md", "notes/c.txt"]


def test_a_change_set_reads_only_the_named_files_and_lists_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FILES)
    age_files(tmp_path)
    last = first_scan(tmp_path)
    (tmp_path / "a.md").write_text("# A\n\nAlpha, edited.")
    (tmp_path / "notes" / "c.txt").unlink()
    write(tmp_path, {"new.md": "Not named by the feed."})

    def listing(root: Path) -> None:
        raise AssertionError("the source folder was listed")

    monkeypatch.setattr(sources, "list_entries", listing)
    table, scan = rescan(tmp_path, last, changes=ChangeSet(changed=("a.md",), deleted=("notes/c.txt",)))

    assert (scan.bodies_read, scan.changed, scan.deleted, scan.added) == (1, ["a.md"], ["notes/c.txt"], [])
    assert sorted(table["doc_id"].to_pylist()) == ["a.md", "b.md"]


def test_a_changed_file_that_is_gone_leaves_and_a_bad_one_is_quarantined(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    age_files(tmp_path)
    last = first_scan(tmp_path)
    (tmp_path / "a.md").unlink()
    (tmp_path / "b.md").write_bytes(b"")

    table, scan = rescan(tmp_path, last, changes=ChangeSet(changed=("a.md", "b.md")))

    assert scan.deleted == ["a.md", "b.md"] and table["doc_id"].to_pylist() == ["notes/c.txt"]
    assert [(q["doc_id"], q["reason"]) for q in scan.quarantined] == [("b.md", "empty or whitespace-only document")]


@pytest.mark.parametrize("doc_id", ["../outside.md", "/etc/passwd", "a//b.md", "", "notes/../../x.md", "./a.md"])
def test_a_document_id_that_could_leave_the_folder_is_refused(tmp_path: Path, doc_id: str) -> None:
    with pytest.raises(ConfigError, match="not a path inside the source folder"):
        document_path(tmp_path, doc_id)


def test_a_file_refused_as_too_big_is_judged_again_by_the_current_limit_without_being_opened(tmp_path: Path) -> None:
    write(tmp_path, {**FILES, "big.md": "# Big\n\n" + "word " * 100})
    age_files(tmp_path)
    small = Collector(DOCUMENTS_SCHEMA)
    first = scan_tenant("acme", tmp_path, 100, lambda: small)
    assert [q["doc_id"] for q in first.quarantined] == ["big.md"] and first.bodies_read == 3

    again = scan_tenant("acme", tmp_path, 100, no_table, previous=small.table(),
                        previous_quarantine=first.quarantine_table())
    raised = Collector(DOCUMENTS_SCHEMA)
    allowed = scan_tenant("acme", tmp_path, 1 << 20, lambda: raised, previous=small.table(),
                          previous_quarantine=first.quarantine_table())

    assert (again.bodies_read, [q["doc_id"] for q in again.quarantined]) == (0, ["big.md"])
    assert (allowed.added, allowed.quarantined, allowed.bodies_read) == (["big.md"], [], 1)


def test_a_change_set_needs_a_full_read_first(tmp_path: Path) -> None:
    write(tmp_path, FILES)
    with pytest.raises(ConfigError, match="never read in full"):
        scan_tenant("acme", tmp_path, 1 << 20, no_table, changes=ChangeSet(changed=("a.md",)))


def test_a_prefix_on_the_fake_s3_is_listed_and_read_by_the_same_rules(s3: str) -> None:
    import boto3
    from tests.s3 import BUCKET

    client = boto3.client("s3", region_name="us-east-1")  # the FAKE S3 (moto) of the s3 fixture
    bodies = {"a.md": GOOD, "notes/b.txt": "Fog\n\nHorns warn ships.", "empty.md": " ", ".hidden/c.md": GOOD,
              "x.png": "png"}
    for name, body in bodies.items():
        client.put_object(Bucket=BUCKET, Key=f"docs/acme/{name}", Body=body.encode())
    client.put_object(Bucket=BUCKET, Key="docs/acme-other/z.md", Body=GOOD.encode())  # another tenant's prefix
    root = f"s3://{BUCKET}/docs/acme/"
    time.sleep(sources.RACY_SECONDS + 0.5)

    assert {e.doc_id: e.problem is None for e in list_entries(root)} == {
        "a.md": True, "empty.md": True, "notes/b.txt": True, "x.png": False,
    }
    first = Collector(DOCUMENTS_SCHEMA)
    scan = scan_tenant("acme", root, 1 << 20, lambda: first)
    assert sorted(first.table()["doc_id"].to_pylist()) == ["a.md", "notes/b.txt"] and scan.bodies_read == 3
    reasons = {q["doc_id"]: q["reason"] for q in scan.quarantined}
    assert reasons["empty.md"] == "empty or whitespace-only document" and "unsupported" in reasons["x.png"]

    again = scan_tenant("acme", root, 1 << 20, no_table, previous=first.table(),
                        previous_quarantine=scan.quarantine_table())
    assert (again.bodies_read, again.written) == (0, False)  # size and last-modified time vouch for every object

    client.put_object(Bucket=BUCKET, Key="docs/acme/a.md", Body=b"# Tides\n\nTides turn.")
    changed = Collector(DOCUMENTS_SCHEMA)
    named = scan_tenant("acme", root, 1 << 20, lambda: changed, previous=first.table(),
                        changes=ChangeSet(changed=("a.md",), deleted=("notes/b.txt",)))
    assert (named.bodies_read, named.changed, named.deleted) == (1, ["a.md"], ["notes/b.txt"])
    assert "Tides turn." in changed.table()["text"].to_pylist()[0]
