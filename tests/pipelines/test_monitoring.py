"""The nightly schedule and the pager sensor, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from embedops.core.embedder import SpaceEmbedder
from embedops.definitions import pager_resource
from embedops.pipelines.check_runs import run_checks
from embedops.pipelines.monitoring import (
    nightly_reconciliation_schedule,
    nightly_source_checks_schedule,
    nightly_source_verify_schedule,
    pager_sensor,
)
from embedops.resources.pager import PagerResource
from tests.assets.test_pipeline import DOCS
from tests.conftest import Project, make_project

ROUTING_KEY = "R0UT1NGKEY-test-0123456789"


@dataclass
class FakePagerDuty:
    """What the pager endpoint saw; ``fail`` makes the next N requests answer HTTP 500."""

    url: str = ""
    attempts: list[dict] = field(default_factory=list)
    accepted: list[dict] = field(default_factory=list)
    fail: int = 0

    def actions(self) -> list[str]:
        return [e["event_action"] for e in self.accepted]


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    seen = FakePagerDuty()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.attempts.append(body)
            if seen.fail > 0:
                seen.fail -= 1
                self.send_response(500)
                self.end_headers()
                return
            seen.accepted.append(body)
            reply = json.dumps({"status": "success", "dedup_key": body.get("dedup_key")}).encode()
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen.url = f"http://127.0.0.1:{server.server_port}/v2/enqueue"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def tick(project: Project, pager: PagerResource, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=project.instance, cursor=cursor, repository_def=project.defs.get_repository_def(),
        resources={"pager": pager, "monitoring": project.defs.resources["monitoring"]},
    )
    return pager_sensor(context)


def _reconcile(project: Project) -> bool:
    return run_checks(project.defs, project.instance, names=["reconciliation"])[0].passed


def test_one_trigger_and_one_resolve_for_a_failing_then_fixed_check(
    ingested: Project, pagerduty: FakePagerDuty
) -> None:
    pager = PagerResource(url=pagerduty.url, routing_key=ROUTING_KEY)
    first = tick(ingested, pager, None)
    assert pagerduty.attempts == [] and isinstance(first, dg.SensorResult)

    (ingested.source("acme") / "notes" / "fog.txt").unlink()  # orphan: reconciliation fails at ERROR
    assert not _reconcile(ingested)
    failing = tick(ingested, pager, first.cursor)
    assert pagerduty.actions() == ["trigger"]
    trigger = pagerduty.accepted[0]
    assert trigger["routing_key"] == ROUTING_KEY
    space = ingested.spaces.serving_space.name
    assert trigger["dedup_key"] == f"embedops/vector_index/reconciliation/{space}|acme"
    assert set(trigger["payload"]) == {"summary", "source", "severity", "custom_details"}
    assert trigger["payload"]["severity"] == "error"
    assert "notes/fog.txt" in trigger["payload"]["custom_details"]["failing_ids"]
    assert int(failing.cursor) > int(first.cursor)

    again = tick(ingested, pager, failing.cursor)  # nothing new: no page
    assert not _reconcile(ingested)  # still failing: still one page
    later = tick(ingested, pager, again.cursor)
    assert pagerduty.actions() == ["trigger"]

    ingested.ingest("acme")  # the fix: the deleted document leaves the index
    assert _reconcile(ingested)
    tick(ingested, pager, later.cursor)
    assert pagerduty.actions() == ["trigger", "resolve"]
    assert pagerduty.accepted[1]["dedup_key"] == trigger["dedup_key"]
    assert pagerduty.accepted[1]["routing_key"] == ROUTING_KEY
    # the routing key travels to the pager only: it is not kept in the control database
    stored = b"".join(p.read_bytes() for p in ingested.settings.home.glob("control.sqlite*"))
    assert b"embedops/vector_index" in stored  # the outbox is there, without the key
    assert ROUTING_KEY.encode() not in stored


def test_a_failed_delivery_is_retried_on_the_next_tick(ingested: Project, pagerduty: FakePagerDuty) -> None:
    pager = PagerResource(url=pagerduty.url, routing_key=ROUTING_KEY)
    (ingested.source("acme") / "intro.md").unlink()
    assert not _reconcile(ingested)
    pagerduty.fail = 1
    first = tick(ingested, pager, None)
    assert len(pagerduty.attempts) == 1 and pagerduty.accepted == []
    second = tick(ingested, pager, first.cursor)  # no new evaluation, but the queued event goes out
    assert pagerduty.actions() == ["trigger"] and len(pagerduty.attempts) == 2
    tick(ingested, pager, second.cursor)
    assert pagerduty.actions() == ["trigger"]


def test_an_unreachable_pager_keeps_the_event(ingested: Project, pagerduty: FakePagerDuty) -> None:
    (ingested.source("acme") / "intro.md").unlink()
    assert not _reconcile(ingested)
    dead = PagerResource(url="http://127.0.0.1:9/v2/enqueue", routing_key=ROUTING_KEY, timeout_s=2)
    cursor = tick(ingested, dead, None).cursor
    tick(ingested, PagerResource(url=pagerduty.url, routing_key=ROUTING_KEY), cursor)
    assert pagerduty.actions() == ["trigger"]


def test_without_a_pager_url_the_sensor_skips(ingested: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDOPS_PAGER_URL", raising=False)
    result = tick(ingested, pager_resource(), None)
    assert isinstance(result, dg.SkipReason) and "EMBEDOPS_PAGER_URL" in (result.skip_message or "")


def test_the_pager_url_and_routing_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDOPS_PAGER_URL", "http://127.0.0.1:1/v2/enqueue")
    monkeypatch.setenv("EMBEDOPS_PAGER_ROUTING_KEY", ROUTING_KEY)
    resource = pager_resource()
    assert resource.url == "http://127.0.0.1:1/v2/enqueue"
    assert resource.process_config_and_initialize().routing_key == ROUTING_KEY


@pytest.fixture
def on_disk(tmp_path: Path, minilm: SpaceEmbedder) -> Iterator[Project]:
    """A deployment whose Dagster instance lives on disk, as a schedule sees it in production."""
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        project = make_project(tmp_path)
        project.instance = instance
        yield project


def test_the_nightly_schedules_check_every_materialized_partition(on_disk: Project) -> None:
    ingested = on_disk
    ingested.write("acme", DOCS)
    ingested.ingest("acme")
    ingested.write("globex", {"bread.md": "# Bread\n\nSourdough rises with wild yeast and lactic bacteria."})
    ingested.ingest("globex")
    context = dg.build_schedule_context(
        instance=ingested.instance, repository_def=ingested.defs.get_repository_def(),
        scheduled_execution_time=datetime(2026, 6, 1, 2, 0, tzinfo=UTC),
    )
    space = ingested.spaces.serving_space.name
    index_requests = nightly_reconciliation_schedule.evaluate_tick(context).run_requests
    source_requests = nightly_source_checks_schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in index_requests] == [f"{space}|acme", f"{space}|globex"]
    assert [r.partition_key for r in source_requests] == ["acme", "globex"]
    assert index_requests[0].run_key == f"nightly:2026-06-01:{space}|acme"
    assert {r.tags["embedops/launched_by"] for r in index_requests} == {"schedule:nightly_reconciliation_schedule"}
    # each request runs as it is: the schedule's own partitioned job, every check of that partition
    checked = {}
    for schedule, request in ((nightly_reconciliation_schedule, index_requests[0]),
                              (nightly_source_checks_schedule, source_requests[0])):
        job = ingested.defs.resolve_job_def(schedule.job_name)
        result = job.execute_in_process(instance=ingested.instance, partition_key=request.partition_key,
                                        tags=request.tags)
        evaluations = result.get_asset_check_evaluations()
        assert {e.partition for e in evaluations} == {request.partition_key}
        assert all(e.passed for e in evaluations)
        checked[schedule.name] = {e.check_name for e in evaluations}
    assert checked == {
        "nightly_reconciliation_schedule": {
            "reconciliation", "sentinel_drift", "nn_stability", "distribution_shift", "freshness",
            "one_space_per_collection", "provenance_complete", "document_chunks_quality"},
        "nightly_source_checks_schedule": {"source_documents_quality", "replication_slot_lag", "table_source_columns"},
    }


def test_the_nightly_verify_schedule_reads_every_file_and_finds_an_edit_that_kept_size_and_time(
    on_disk: Project,
) -> None:
    project = on_disk
    project.write("acme", DOCS)
    project.age("acme")
    project.ingest("acme")
    lens = project.source("acme") / "lens.md"
    status = lens.stat()
    lens.write_text(DOCS["lens.md"].replace("twenty", "thirty"))  # same size; the time is set back below
    os.utime(lens, ns=(status.st_atime_ns, status.st_mtime_ns))
    context = dg.build_schedule_context(
        instance=project.instance, repository_def=project.defs.get_repository_def(),
        scheduled_execution_time=datetime(2026, 6, 1, 1, 30, tzinfo=UTC),
    )

    requests = nightly_source_verify_schedule.evaluate_tick(context).run_requests

    assert [r.partition_key for r in requests] == ["acme"]
    assert requests[0].tags["embedops/launched_by"] == "schedule:nightly_source_verify_schedule"
    job = project.defs.resolve_job_def(nightly_source_verify_schedule.job_name)
    result = job.execute_in_process(instance=project.instance, partition_key="acme", run_config=requests[0].run_config,
                                    tags=requests[0].tags)
    metadata = result.asset_materializations_for_node("source_documents")[0].metadata
    assert (metadata["bodies_read"].value, metadata["changed"].value, metadata["verify"].value) == (3, 1, True)
