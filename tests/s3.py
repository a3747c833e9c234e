"""A FAKE S3: moto's S3 server, for the data plane's object-store tests.

No S3 server can run here; moto's server speaks S3's HTTP API and follows its documented behaviour
(including conditional writes, ``If-None-Match: *``, which Lance's commits rely on: see
``tests/core/test_tables.py::test_concurrent_commits_on_the_fake_s3_never_overwrite_each_other``).
The server is a subprocess on 127.0.0.1 and a free port, stopped by its own PID; the test gets the
URL of an empty prefix in a fresh bucket, with the AWS_* variables Lance reads set to reach it.
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.processes import Background, free_port, wait_for

BUCKET = "embedops-test"


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def fake_s3(log_dir: Path) -> Iterator[dict[str, str]]:
    """FAKE S3 (moto's server) on 127.0.0.1, an empty bucket ``BUCKET``; yields the AWS_* variables reaching it."""
    import boto3

    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = Background([server, "-H", "127.0.0.1", "-p", str(port)], log_dir / "moto.log", dict(os.environ))
    try:
        wait_for(lambda: _answers(endpoint), 30, "the fake S3 (moto_server) to answer", proc)
        variables = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "fake-key-id",
            "AWS_SECRET_ACCESS_KEY": "fake-secret",
            "AWS_REGION": "us-east-1",
        }
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="fake-key-id",
                     aws_secret_access_key="fake-secret").create_bucket(Bucket=BUCKET)
        yield variables
    finally:
        proc.stop()


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """FAKE S3 (moto's server): yields ``s3://embedops-test/data``, an empty prefix to use as EMBEDOPS_DATA_URL."""
    with fake_s3(tmp_path) as variables:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        yield f"s3://{BUCKET}/data"
