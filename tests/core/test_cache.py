"""The embedding cache in the data plane: shared by writers in several processes, on a folder or on S3."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from tests.processes import Background, free_port, wait_for

from embedops.core.cache import EmbeddingCache
from embedops.core.dataplane import storage_options
from embedops.errors import StateUnreachableError

DIM = 8


def key(i: int) -> str:
    return hashlib.sha256(f"text {i}".encode()).hexdigest()


def vector(i: int, dim: int = DIM) -> np.ndarray:
    """The vector the model would give text ``i``: the same in every process."""
    return np.random.default_rng(i).standard_normal(dim).astype(np.float32)


def put_range(root: str, start: int, stop: int, group: int, progress: str | None = None, dim: int = DIM) -> None:
    """A worker: stores texts ``start..stop`` in groups, as the pipeline does, noting each committed group."""
    cache = EmbeddingCache(root)
    for lo in range(start, stop, group):
        hi = min(lo + group, stop)
        cache.put_many("model-a", [(key(i), vector(i, dim)) for i in range(lo, hi)])
        if progress:
            with open(progress, "a") as out:
                out.write(f"{hi}\n")


def assert_holds(cache: EmbeddingCache, texts: range, dim: int = DIM) -> None:
    found = cache.get_many([key(i) for i in texts])
    missing = [i for i in texts if key(i) not in found]
    assert not missing, f"{len(missing)} of {len(texts)} keys lost, first {missing[:5]}"
    for i in texts:
        np.testing.assert_array_equal(found[key(i)][0], vector(i, dim))


def test_round_trip_keeps_vectors_and_the_time_they_were_computed(tmp_path: Path) -> None:
    cache = EmbeddingCache(str(tmp_path))
    assert len(cache) == 0 and cache.get_many([key(1)]) == {}  # nothing written yet: no dataset, no error
    before = datetime.now(UTC)
    stamp = cache.put_many("model-a", [(key(i), vector(i)) for i in range(3)])
    wide = np.arange(384, dtype=np.float32)
    cache.put_many("model-b", [(key(99), wide)])  # another model, another dimension, same cache

    again = EmbeddingCache(str(tmp_path))  # another worker on the same root
    found = again.get_many([key(0), key(2), key(0), key(7), key(99)])
    assert sorted(found) == sorted([key(0), key(2), key(99)])
    np.testing.assert_array_equal(found[key(2)][0], vector(2))
    np.testing.assert_array_equal(found[key(99)][0], wide)
    assert found[key(0)][1] == stamp and before <= stamp <= datetime.now(UTC) and stamp.tzinfo is not None
    assert found[key(0)][0].dtype == np.float32 and len(again) == 4
    assert (tmp_path / "cache" / "vectors.lance").is_dir()


def test_evict_forgets_the_keys_and_counts_those_it_had(tmp_path: Path) -> None:
    cache = EmbeddingCache(str(tmp_path))
    assert cache.evict([key(0)]) == 0
    cache.put_many("model-a", [(key(i), vector(i)) for i in range(4)])
    cache.put_many("model-a", [(key(1), vector(1))])  # a racing writer stored key 1 twice
    assert cache.evict([key(1), key(2), key(2), key(50)]) == 2
    assert sorted(cache.get_many([key(i) for i in range(4)])) == sorted([key(0), key(3)])
    assert len(EmbeddingCache(str(tmp_path))) == 2


def test_lookups_go_through_the_key_index_as_the_cache_grows(tmp_path: Path) -> None:
    """Writers bring the key index up to date, so a lookup reads index pages, not every fragment."""
    put_range(str(tmp_path), 0, 40 * 16, group=16)  # 40 puts, as 40 pipeline groups
    cache = EmbeddingCache(str(tmp_path))
    assert_holds(cache, range(0, 640, 7))
    ds = cache._latest()
    assert ds is not None
    (index,) = [i for i in ds.describe_indices() if i.name == "key_idx"]
    indexed = {f for s in index.segments for f in s.fragment_ids}
    outside = [f.fragment_id for f in ds.get_fragments() if f.fragment_id not in indexed]
    assert len(outside) < 16, f"{len(outside)} of {len(ds.get_fragments())} fragments outside the key index"
    assert "ScalarIndexQuery" in ds.scanner(filter=f"key IN ('{key(3)}')").explain_plan()


def spawn_writers(root: str, ranges: list[tuple[int, int]], group: int) -> None:
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as workers on other hosts
    workers = [context.Process(target=put_range, args=(root, lo, hi, group)) for lo, hi in ranges]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0] * len(workers)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Different and overlapping keys from two processes, enough puts for both to run maintenance too."""
    spawn_writers(str(tmp_path), [(0, 1200), (800, 2000)], group=32)
    cache = EmbeddingCache(str(tmp_path))
    assert_holds(cache, range(2000))
    assert 2000 <= len(cache) <= 2400  # the overlap may be stored twice, nothing else


def test_a_writer_killed_mid_put_leaves_a_readable_cache(tmp_path: Path) -> None:
    """SIGKILL once a put's data file is on disk, before its commit: the cache reads as before, the next put works."""
    progress, data = tmp_path / "committed.txt", tmp_path / "cache" / "vectors.lance" / "data"
    script = (
        "from tests.core.test_cache import put_range; "
        f"put_range({str(tmp_path)!r}, 0, 10**7, 8192, {str(progress)!r}, dim=384)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = Background([sys.executable, "-c", script], tmp_path / "writer.log", env)
    try:
        wait_for(lambda: progress.is_file() and len(progress.read_text().split()) >= 2, 120,
                 "two committed puts", writer)
        seen = set(os.listdir(data))
        deadline = time.monotonic() + 60
        while not set(os.listdir(data)) - seen and time.monotonic() < deadline:  # the next put is writing
            time.sleep(0.001)
        os.kill(writer.proc.pid, signal.SIGKILL)
        writer.proc.wait(30)
    finally:
        writer.stop()
    committed = int(progress.read_text().split()[-1])

    cache = EmbeddingCache(str(tmp_path))
    ds = cache._latest()
    assert ds is not None
    referenced = {Path(f.path).name for fragment in ds.get_fragments() for f in fragment.data_files()}
    assert set(os.listdir(data)) - referenced, "the writer was not killed inside a put; its files were all committed"
    assert len(cache) == committed  # whole puts only: the killed one is not there at all
    assert_holds(cache, range(0, committed, 97), dim=384)  # every put that returned is there
    cache.put_many("model-a", [(key(10**8), vector(10**8, 384))])
    assert_holds(EmbeddingCache(str(tmp_path)), range(10**8, 10**8 + 1), dim=384)


# FAKE S3 (moto): moto's S3 server stands in for the object store; a shared fixture replaces this one at merge.
@pytest.fixture
def fake_s3_moto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on moto's S3 server on 127.0.0.1, with the AWS_* variables pointing at it; yields its URL."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "fake", "AWS_SECRET_ACCESS_KEY": "fake"}
    moto = Background([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                      tmp_path / "moto.log", env)
    try:
        wait_for(lambda: _answers(endpoint), 60, "moto's S3 server", moto)
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "fake",
                            "AWS_SECRET_ACCESS_KEY": "fake-secret-1234", "AWS_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="embedops")
        yield "s3://embedops/data"
    finally:
        moto.stop()


def _answers(endpoint: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(endpoint, timeout=2):
            return True
    except OSError:
        return False


def test_the_cache_on_s3(fake_s3_moto: str) -> None:
    assert storage_options(fake_s3_moto)["aws_endpoint"].startswith("http://127.0.0.1:")
    stamp = EmbeddingCache(fake_s3_moto).put_many("model-a", [(key(i), vector(i)) for i in range(5)])
    spawn_writers(fake_s3_moto, [(5, 200), (100, 300)], group=10)  # two processes at once, on the object store
    cache = EmbeddingCache(fake_s3_moto)
    assert_holds(cache, range(300))
    assert cache.get_many([key(0)])[key(0)][1] == stamp
    assert cache.evict([key(0), key(1)]) == 2 and key(0) not in EmbeddingCache(fake_s3_moto).get_many([key(0)])


def test_a_missing_bucket_or_a_store_that_does_not_answer_fails_loudly(
    fake_s3_moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache it cannot reach is an infrastructure failure, not an empty cache: the run must not re-embed."""
    with pytest.raises(StateUnreachableError, match="s3://no-such-bucket/data/cache.*EMBEDOPS_DATA_URL") as missing:
        EmbeddingCache("s3://no-such-bucket/data").put_many("model-a", [(key(0), vector(0))])
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(StateUnreachableError, match="cannot reach the embedding cache at s3://.*host 127") as down:
        EmbeddingCache(fake_s3_moto).get_many([key(0)])
    for error in (missing.value, down.value):
        assert "fake-secret-1234" not in str(error)
