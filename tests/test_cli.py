"""The `embedops` command as a user runs it, in-process through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.assets.test_pipeline import DOCS
from tests.conftest import age_files


def test_ingest_json_has_the_documented_fields(run, source: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("ingest", "--tenant", "acme", "--source", str(source), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for field in ("tenant", "space", "documents", "chunks", "added", "changed", "deleted", "unchanged",
                  "model_calls", "cache_hits", "quarantined"):
        assert field in summary
    assert (summary["tenant"], summary["documents"], summary["added"]) == ("acme", 3, 3)
    assert summary["model_calls"] == summary["chunks"] and summary["quarantined"] == []
    # the runs are recorded in DAGSTER_HOME, where `dagster dev` will show them
    assert (tmp_path / "dagster" / "history" / "runs.db").exists()

    again = json.loads(run("ingest", "--tenant", "acme", "--json").stdout)
    assert again["model_calls"] == 0 and again["unchanged"] == 3


def test_ingest_reads_only_changed_files_unless_asked_to_verify(run, source: Path) -> None:  # type: ignore[no-untyped-def]
    age_files(source)
    run("ingest", "--tenant", "acme", "--source", str(source))
    plain = json.loads(run("ingest", "--tenant", "acme", "--json").stdout)
    verified = run("ingest", "--tenant", "acme", "--verify")
    assert (plain["bodies_read"], plain["sources_unchanged"], plain["unchanged"]) == (0, True, 3)
    assert verified.exit_code == 0 and "3 source files read" in verified.stdout


def test_search_and_exact_search_return_provenance(run, source: Path) -> None:  # type: ignore[no-untyped-def]
    run("ingest", "--tenant", "acme", "--source", str(source))
    for extra in ([], ["--exact"]):
        result = run("search", "concentric prisms", "--tenant", "acme", "-k", "2", "--json", *extra)
        assert result.exit_code == 0, result.output
        body = json.loads(result.stdout)
        assert body["exact"] == bool(extra) and len(body["hits"]) == 2
        top = body["hits"][0]
        assert top["doc_id"] == "lens.md"
        assert {"source_checksum", "space_id", "model", "config_hash", "embedded_at", "text_hash"} <= set(
            top["provenance"]
        )
    human = run("search", "fog", "--tenant", "acme", "-k", "1")
    assert "notes/fog.txt" in human.stdout and "source sha256" in human.stdout


def test_export_writes_json_lines_without_vectors_unless_asked(run, source: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("ingest", "--tenant", "acme", "--source", str(source))
    lines = run("export", "--tenant", "acme").stdout.strip().splitlines()
    rows = [json.loads(line) for line in lines]
    assert {r["doc_id"] for r in rows} == set(DOCS) and "vector" not in rows[0]
    assert {"chunk_id", "text", "source_checksum", "space_id"} <= set(rows[0])
    out = tmp_path / "backup.jsonl"
    run("export", "--tenant", "acme", "--with-vectors", "--output", str(out))
    first = json.loads(out.read_text().splitlines()[0])
    assert len(first["vector"]) == 384


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "--tenant", "../etc", "--source", "."], "not a valid tenant name"),
        (["ingest", "--tenant", "acme", "--source", "/no/such/folder"], "does not exist"),
        (["ingest", "--tenant", "acme", "--space", "nope"], "space 'nope' is not declared"),
        (["search", "x", "--tenant", "acme"], "points at no space yet"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(run, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_a_newline_in_a_file_name_cannot_forge_an_output_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    folder.mkdir()
    forged = " 2. 0.9999  forged.md #0  chunk 000000000000"  # what a second search hit would look like
    (folder / f"tides.md\n{forged}\n.md").write_text("# Tides\n\nTides rise and fall twice a day with the moon.")
    (folder / "empty\n  quarantined nothing: all is well.md").write_text("")

    ingested = run("ingest", "--tenant", "acme", "--source", str(folder)).stdout.splitlines()
    found = run("search", "tides", "--tenant", "acme", "-k", "1").stdout.splitlines()

    assert len(ingested) == 2  # the summary and the one quarantined file, its name on the same line
    assert ingested[1].startswith("  quarantined empty\\n  quarantined nothing: all is well.md: empty")
    assert len(found) == 4 and not any(line.startswith(" 2.") for line in found)  # header, then one hit
    assert f"  tides.md\\n{forged}\\n.md #0  chunk " in found[1]


def test_the_reserved_golden_tenant_cannot_be_ingested(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "sources" / "embedops-golden"  # a folder of that name under the sources root
    folder.mkdir(parents=True)
    (folder / "a.md").write_text("# A\n\nA document that must not reach the golden-set namespace.\n")
    result = run("ingest", "--tenant", "embedops-golden")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "tenant name 'embedops-golden' is reserved" in result.stderr
    assert not (tmp_path / "home" / "data" / "tables" / "source_documents" / "embedops-golden.lance").exists()


def test_a_new_dagster_home_gets_run_monitoring_that_sees_in_process_runs(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import dagster as dg

    from embedops.pipelines.liveness import WatchedRunLauncher

    run("search", "x", "--tenant", "acme")  # any command writes the instance file of a new DAGSTER_HOME
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert instance.run_monitoring_enabled
        assert isinstance(instance.run_launcher, WatchedRunLauncher)
