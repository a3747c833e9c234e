"""Each check passes on a healthy index and fails on its induced fault, through real Dagster runs."""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import lancedb
import numpy as np
import pyarrow as pa
import pytest

from embedops.core.monitoring.drift import fixed_sample
from embedops.core.stores.lance import LanceStore
from embedops.pipelines.check_runs import CheckReport, run_checks
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project, make_project

ALL_CHECKS = {"reconciliation", "one_space_per_collection", "provenance_complete", "sentinel_drift", "nn_stability",
              "distribution_shift", "freshness", "source_documents_quality", "document_chunks_quality",
              "replication_slot_lag", "table_source_columns"}


def checks(project: Project, *names: str) -> dict[str, CheckReport]:
    reports = run_checks(project.defs, project.instance, names=list(names) or None)
    assert len({r.check for r in reports}) == len(reports), "one partition per check expected"
    return {r.check: r for r in reports}


def _sid(project: Project) -> str:
    return project.spaces.serving_space.space_id


def _rows(project: Project) -> pa.Table:
    return project.store.export("acme", _sid(project), with_vectors=True)


def _rewrite(project: Project, table: pa.Table) -> None:
    """Overwrite rows in the store as they are, bypassing the pipeline (the fault under test)."""
    space = project.spaces.serving_space
    project.store.upsert("acme", space.space_id, space.name, table)


def _replace(table: pa.Table, row: int, **values: object) -> pa.Table:
    data = table.to_pylist()
    data[row].update(values)
    return pa.Table.from_pylist(data, schema=table.schema)


def test_every_check_passes_on_a_healthy_index_and_is_recorded_per_partition(ingested: Project) -> None:
    results = checks(ingested)
    assert set(results) == ALL_CHECKS
    assert all(r.passed for r in results.values()), [r.description for r in results.values() if not r.passed]
    assert results["sentinel_drift"].metadata["mean_distance"] < 0.005
    assert results["reconciliation"].metadata["index_rows"] == results["reconciliation"].metadata["chunk_ledger"]
    keys = list(ingested.defs.resolve_asset_graph().asset_check_keys)
    infos = ingested.instance.event_log_storage.get_asset_check_partition_info(keys)
    space = ingested.spaces.serving_space.name
    assert {(i.check_key.name, i.partition_key) for i in infos} >= {
        ("reconciliation", f"{space}|acme"), ("provenance_complete", f"{space}|acme"),
        ("source_documents_quality", "acme"),
    }


def test_ingest_runs_check_the_index_invariants(ingested: Project) -> None:
    keys = [dg.AssetCheckKey(dg.AssetKey("vector_index"), n) for n in ("one_space_per_collection", "reconciliation")]
    latest = ingested.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    assert keys[0] in latest and keys[1] not in latest  # comparing checks stay out of ingest runs


def test_a_source_file_deleted_without_reingest_is_an_orphan(ingested: Project) -> None:
    (ingested.source("acme") / "notes" / "fog.txt").unlink()
    report = checks(ingested, "reconciliation")["reconciliation"]
    assert not report.passed and report.severity == "ERROR"
    assert report.metadata["orphans"] == ["notes/fog.txt"] and report.metadata["orphans_total"] == 1
    assert report.ids[0] == "notes/fog.txt"
    assert (report.tenant, report.space) == ("acme", ingested.spaces.serving_space.name)
    ingested.ingest("acme")
    assert checks(ingested, "reconciliation")["reconciliation"].passed


def test_a_row_of_another_space_written_into_the_store(ingested: Project) -> None:
    table = _replace(_rows(ingested).slice(0, 1), 0, chunk_id="intruder", space_id="ffffffffffff", space_name="other")
    lance = lancedb.connect(ingested.settings.lance_uri)
    lance.open_table(LanceStore.table_name("acme", _sid(ingested))).add(table)  # past the store's guard
    results = checks(ingested, "one_space_per_collection", "reconciliation")
    mixed = results["one_space_per_collection"]
    assert not mixed.passed and mixed.severity == "ERROR" and mixed.ids == ["intruder"]
    assert "ffffffffffff" in mixed.metadata["space_ids_found"]
    assert results["reconciliation"].metadata["orphan_chunks"] == ["intruder"]


def test_a_row_with_a_missing_provenance_field(ingested: Project) -> None:
    rows = _rows(ingested)
    victim = rows["chunk_id"][0].as_py()
    _rewrite(ingested, _replace(rows, 0, source_checksum="").slice(0, 1))
    report = checks(ingested, "provenance_complete")["provenance_complete"]
    assert not report.passed and report.ids == [victim]
    assert report.metadata["missing_by_field"] == {"source_checksum": [victim]}


def test_a_perturbed_stored_vector_drifts_the_sentinel(ingested: Project) -> None:
    rows = _rows(ingested)
    victim = rows["chunk_id"][1].as_py()
    vector = np.asarray(rows["vector"][1].as_py(), dtype=np.float32)
    noise = np.random.default_rng(7).normal(size=vector.shape).astype(np.float32)
    _rewrite(ingested, _replace(rows, 1, vector=(vector + noise / np.linalg.norm(noise)).tolist()).slice(1, 1))
    report = checks(ingested, "sentinel_drift")["sentinel_drift"]
    assert not report.passed and report.severity == "ERROR"
    assert report.ids[0] == victim and report.metadata["worst"][0]["chunk_id"] == victim
    assert report.metadata["mean_distance"] >= 0.05
    assert "sentinel mean cosine distance" in report.metadata["drift_trend"]


def test_distribution_shift_and_neighbour_stability(ingested: Project) -> None:
    assert all(r.passed for r in checks(ingested, "distribution_shift", "nn_stability").values())
    rows = _rows(ingested)
    scaled = [(np.asarray(v) * 1.2).tolist() for v in rows["vector"].to_pylist()]
    _rewrite(ingested, rows.set_column(rows.schema.get_field_index("vector"), "vector",
                                      pa.array(scaled, type=rows.schema.field("vector").type)))
    ingested.store.delete("acme", _sid(ingested), rows["chunk_id"].to_pylist()[1:])
    results = checks(ingested, "distribution_shift", "nn_stability")
    shift, nn = results["distribution_shift"], results["nn_stability"]
    assert not shift.passed and shift.severity == "ERROR"
    assert shift.metadata["norm_change"] == pytest.approx(0.2, abs=1e-3)
    assert not nn.passed and nn.severity == "ERROR" and nn.metadata["mean_overlap"] < 0.7
    assert "norm change" in shift.metadata["drift_trend"]


def test_the_drift_checks_read_the_index_a_batch_at_a_time(ingested: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    (ingested.settings.home / "monitoring.yaml").write_text("sentinel: {sample: 2}\n")
    ids = _rows(ingested)["chunk_id"].to_pylist()
    assert len(ids) > 2

    def whole(*args: object, **kwargs: object) -> pa.Table:
        raise AssertionError("a check read the whole index with export()")

    batch_rows: list[int] = []
    export_batches = LanceStore.export_batches

    def small_batches(self: LanceStore, tenant: str, space_id: str, with_vectors: bool = False,
                      size: int = 2048) -> Iterator[pa.Table]:
        for batch in export_batches(self, tenant, space_id, with_vectors=with_vectors, size=1):
            batch_rows.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(LanceStore, "export", whole)
    monkeypatch.setattr(LanceStore, "export_batches", small_batches)
    results = checks(ingested, "sentinel_drift", "distribution_shift", "nn_stability")
    assert all(r.passed for r in results.values()), [r.description for r in results.values()]
    sentinel, shift = results["sentinel_drift"], results["distribution_shift"]
    assert sentinel.metadata["sampled"] == 2
    assert {w["chunk_id"] for w in sentinel.metadata["worst"]} == set(fixed_sample(ids, 2))
    assert shift.metadata["mean_norm"] == pytest.approx(1.0, abs=1e-3)  # every unit vector, read in batches
    assert shift.metadata["centroid_distance"] == pytest.approx(0.0, abs=1e-5)
    assert batch_rows == [1] * len(batch_rows) and len(batch_rows) >= 3 * len(ids)  # each check went through every row


def test_a_document_older_than_its_policy_allows(ingested: Project) -> None:
    (ingested.settings.home / "monitoring.yaml").write_text(
        "freshness:\n  policies:\n    - {pattern: 'notes/**', policy: daily}\n"
    )
    assert checks(ingested, "freshness")["freshness"].passed
    rows = _rows(ingested)
    old = datetime.now(UTC) - timedelta(days=3)
    data = [{**r, "embedded_at": old} for r in rows.to_pylist() if r["doc_id"] == "notes/fog.txt"]
    _rewrite(ingested, pa.Table.from_pylist(data, schema=rows.schema))
    report = checks(ingested, "freshness")["freshness"]
    assert not report.passed and report.severity == "ERROR" and report.ids == ["notes/fog.txt"]
    assert report.metadata["stale"][0]["policy"] == "daily"
    assert "| lag | documents |" in report.metadata["lag_histogram"]


def test_an_edited_source_waiting_past_its_grace_is_stale(ingested: Project) -> None:
    (ingested.settings.home / "monitoring.yaml").write_text("freshness: {on_change_grace_hours: 0}\n")
    ingested.write("acme", {"lens.md": DOCS["lens.md"] + "\n\nA new paragraph nobody embedded."})
    report = checks(ingested, "freshness")["freshness"]
    assert not report.passed and report.ids == ["lens.md"] and report.metadata["pending_changes"] == 1


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Refuse any connection that leaves the machine, and remember who tried."""
    attempts: list = []
    real = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"network disabled in this test: {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


def test_great_expectations_on_documents_and_chunks(ingested: Project, no_network: list) -> None:
    results = checks(ingested, "source_documents_quality", "document_chunks_quality")
    assert all(r.passed for r in results.values())
    assert results["source_documents_quality"].metadata["gx_statistics"]["unsuccessful_expectations"] == 0
    space = ingested.spaces.serving_space.name
    tables = ingested.workspace.tables()
    docs = tables.read("source_documents", ("acme",)).to_pylist()
    docs[1]["doc_id"] = docs[0]["doc_id"]
    docs[2]["text"] = "   "
    tables.write("source_documents", ("acme",), pa.Table.from_pylist(docs, schema=tables.read(
        "source_documents", ("acme",)).schema))
    chunks = tables.read("document_chunks", ("acme", space))
    tables.write("document_chunks", ("acme", space), _replace(chunks, 0, token_count=100_000))
    results = checks(ingested, "source_documents_quality", "document_chunks_quality")
    source, chunk = results["source_documents_quality"], results["document_chunks_quality"]
    assert not source.passed and set(source.ids) == {docs[0]["doc_id"], docs[2]["doc_id"]}
    failed = {r["expectation"] for r in source.metadata["gx_results"] if not r["success"]}
    assert failed == {"expect_column_values_to_be_unique", "expect_column_values_to_match_regex"}
    assert not chunk.passed and chunk.ids == [chunks["chunk_id"][0].as_py()]
    assert chunk.metadata["max_sequence_length"] == 256
    assert no_network == []


STATIC_SPACES = """
spaces:
  - name: static-64
    dimension: 64
    model: {name: static-model, backend: model2vec, package: swapped_static_model}
serving: static-64
"""


def test_a_model_swapped_under_the_same_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model ships in a package whose version does not change; its weights file is replaced."""
    import static_model
    from safetensors.numpy import load_file, save_file

    package = tmp_path / "pkgs" / "swapped_static_model"
    shutil.copytree(Path(static_model.__file__).parent / "model", package / "model")
    (package / "__init__.py").write_text(
        "from pathlib import Path\n\ndef get_model_path():\n    return str(Path(__file__).parent / 'model')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.delitem(sys.modules, "swapped_static_model", raising=False)
    (tmp_path / "spaces.yaml").write_text(STATIC_SPACES)
    project = make_project(tmp_path, spaces_file=tmp_path / "spaces.yaml")
    project.write("acme", DOCS)
    project.ingest("acme")
    identity = project.spaces.serving_space.model.identity
    healthy = checks(project, "sentinel_drift")["sentinel_drift"]
    assert healthy.passed and healthy.metadata["mean_distance"] < 0.005

    weights = load_file(str(package / "model" / "model.safetensors"))
    rng = np.random.default_rng(3)
    weights["embeddings"] = rng.integers(-100, 100, size=weights["embeddings"].shape).astype(np.int8)
    save_file(weights, str(package / "model" / "model.safetensors"))
    assert project.spaces.serving_space.model.identity == identity  # same name, same version

    swapped = checks(project, "sentinel_drift")["sentinel_drift"]
    assert not swapped.passed and swapped.severity == "ERROR" and swapped.metadata["mean_distance"] >= 0.05
    assert len(swapped.ids) == swapped.metadata["sampled"]
