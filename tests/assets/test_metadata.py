"""What the UI shows for a run and a check: numbers, tables and paths a person reads at a glance."""

from __future__ import annotations

import dagster as dg

from embedops.pipelines.check_runs import run_checks
from tests.conftest import Project


def _latest(project: Project, asset: str, check: str | None = None) -> dict[str, dg.MetadataValue]:
    if check is None:
        event = project.instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert event is not None and event.asset_materialization is not None
        return dict(event.asset_materialization.metadata)
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    record = project.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    data = record.event.dagster_event.asset_check_evaluation_data  # type: ignore[union-attr]
    return dict(data.metadata)


def test_the_index_says_what_its_sync_did(ingested: Project) -> None:
    space = ingested.spaces.serving_space
    index = {k: v.value for k, v in _latest(ingested, "vector_index").items()}
    embeddings = {k: v.value for k, v in _latest(ingested, "chunk_embeddings").items()}
    assert index["documents_added"] == 3 and index["model_calls"] == embeddings["model_calls"] > 0
    assert (index["alias"], index["alias_target"], index["space"]) == ("docs", space.name, space.name)
    sources = _latest(ingested, "source_documents")
    assert isinstance(sources["source_dir"], dg.PathMetadataValue)
    assert "quarantined_documents" not in sources  # nothing quarantined: no empty list


def test_check_results_list_ids_as_tables_and_chart_numbers_every_time(ingested: Project) -> None:
    (ingested.source("acme") / "notes" / "fog.txt").unlink()
    run_checks(ingested.defs, ingested.instance, names=["reconciliation", "nn_stability", "distribution_shift"])
    failing = _latest(ingested, "vector_index", "reconciliation")
    assert isinstance(failing["failing_ids"], dg.TableMetadataValue)
    assert [r.data["id"] for r in failing["failing_ids"].records] == ["notes/fog.txt"]
    assert isinstance(failing["orphans"], dg.TableMetadataValue) and failing["orphans_total"].value == 1
    assert "missing" not in failing and failing["missing_total"].value == 0  # no empty lists
    # the first evaluations chart a number too
    assert isinstance(_latest(ingested, "vector_index", "nn_stability")["mean_overlap"].value, float)
    shift = _latest(ingested, "vector_index", "distribution_shift")
    assert isinstance(shift["centroid_distance"].value, float)
    assert isinstance(shift["drift_trend"], dg.MarkdownMetadataValue)
