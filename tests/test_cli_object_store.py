"""`embedops ingest` with a tenant's sources on an object store (the FAKE S3 of tests/s3.py: moto's server),
and with a data store that does not answer."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from embedops.core.sources import RACY_SECONDS
from tests.assets.test_pipeline import DOCS
from tests.s3 import BUCKET


def _bucket():  # type: ignore[no-untyped-def]
    return boto3.client("s3", region_name="us-east-1")  # AWS_ENDPOINT_URL from the s3 fixture


def _ingest(run, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = run("ingest", "--tenant", "acme", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _exported(run) -> set[str]:  # type: ignore[no-untyped-def]
    return {json.loads(line)["doc_id"] for line in run("export", "--tenant", "acme").stdout.splitlines()}


def test_sources_on_a_fake_s3_prefix_are_read_by_size_and_time_and_deletions_leave(run, s3: str) -> None:  # type: ignore[no-untyped-def]
    client = _bucket()
    for name, text in DOCS.items():
        client.put_object(Bucket=BUCKET, Key=f"docs/acme/{name}", Body=text.encode())
    client.put_object(Bucket=BUCKET, Key="docs/acme/.hidden.md", Body=b"# not a document")
    client.put_object(Bucket=BUCKET, Key="docs/acme/logo.png", Body=b"\x89PNG")
    time.sleep(RACY_SECONDS + 0.5)  # an object read within RACY_SECONDS of its last write is read again next time

    first = _ingest(run, "--source", f"s3://{BUCKET}/docs/acme/")
    assert (first["added"], first["bodies_read"], first["documents"]) == (3, 3, 3)
    assert [q["path"] for q in first["quarantined"]] == ["logo.png"]  # unsupported type; hidden objects skipped

    client.put_object(Bucket=BUCKET, Key="docs/acme/lens.md", Body=DOCS["lens.md"].replace("twenty", "thirty").encode())
    edited = _ingest(run)  # the registry keeps the URL: no --source needed
    assert (edited["bodies_read"], edited["changed"], edited["unchanged"]) == (1, 1, 2)
    assert edited["model_calls"] >= 1

    client.delete_object(Bucket=BUCKET, Key="docs/acme/notes/fog.txt")
    deleted = _ingest(run)
    assert (deleted["deleted"], deleted["documents"]) == (1, 2)
    assert _exported(run) == {"intro.md", "lens.md"}  # the deleted object's vectors left the index


def test_a_missing_prefix_is_one_line_and_exit_2(run, s3: str) -> None:  # type: ignore[no-untyped-def]
    result = run("ingest", "--tenant", "acme", "--source", f"s3://{BUCKET}/docs/nobody/")
    assert result.exit_code == 2
    assert f"the source prefix s3://{BUCKET}/docs/nobody of tenant 'acme' does not exist" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("store", ["dead endpoint", "missing bucket"])
def test_an_unreachable_data_store_stops_ingest_with_one_line_naming_the_setting_and_the_host(
    run, source, store: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    if store == "dead endpoint":
        from tests.processes import free_port

        host = f"127.0.0.1:{free_port()}"  # nothing listens there
        for name, value in {"AWS_ENDPOINT_URL": f"http://{host}", "AWS_ACCESS_KEY_ID": "fake-key-id",
                            "AWS_SECRET_ACCESS_KEY": "fake-secret", "AWS_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        data_url = "s3://embedops-nowhere/data"
    else:
        request.getfixturevalue("s3")
        host = f"127.0.0.1:{_bucket().meta.endpoint_url.rsplit(':', 1)[1]}"
        data_url = "s3://no-such-bucket/data"
    monkeypatch.setenv("EMBEDOPS_DATA_URL", data_url)
    started = time.monotonic()
    result = run("ingest", "--tenant", "acme", "--source", str(source))

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "EMBEDOPS_DATA_URL" in lines[0] and f"host {host}" in lines[0] and data_url in lines[0]
    assert "fake-secret" not in result.output
    # Lance says "error sending request" for a dead endpoint, LanceDB "Connection refused": either is no answer
    dead = ("connection refused", "the store does not answer (nothing listens there, or no route to it)")
    reason = lines[0][: lines[0].index("; check that")]
    assert reason.endswith(("no such bucket",) if store == "missing bucket" else dead)
    assert time.monotonic() - started < 120
