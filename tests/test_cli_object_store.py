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
