"""The embedding cache: vectors keyed on sha256(model identity, exact text), in the data plane.

The key ignores where a chunk sits and how it was cut, so a re-chunking that leaves a chunk's text
unchanged, or the same text in another document or tenant, costs no model call.

The vectors live in one Lance dataset, ``<EMBEDOPS_DATA_URL>/cache/vectors.lance`` (a folder or an
object-store prefix), shared by every worker on every host:

- a ``put_many`` is one append, a commit Lance never refuses for a concurrent writer's sake (on S3 the
  commit is a conditional put of the next manifest); a writer killed before its commit leaves only
  unreferenced files, which the automatic cleanup removes later;
- racing writers may store one key twice, with the same vector: a reader takes either;
- ``get_many`` looks keys up through a BTREE index on ``key``; rows appended since the index last
  caught up are scanned, so every ``_MAINTAIN_EVERY`` fragments a writer compacts the small
  fragments and brings the index up to date (a concurrent maintainer's conflicting commit is dropped:
  the next writer does it again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import lance
import numpy as np
import pyarrow as pa
from lance.dataset import AutoCleanupConfig

from embedops.core.dataplane import join, open_dataset, unreachable
from embedops.core.dataplane import storage_options as options_for
from embedops.errors import StateUnreachableError

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.float32()), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
INDEX_NAME = "key_idx"
CACHE = "the embedding cache"  # how an unreachable-store error names it
_BATCH = 4096  # keys per lookup
# Maintenance (compaction and index catch-up) when this many fragments are not in the key index.
_MAINTAIN_EVERY = 16
# Compaction merges fragments smaller than this (about 100 MB of 384-d vectors) and leaves bigger ones alone,
# so a row is rewritten a few times at most, however big the cache grows.
_FRAGMENT_ROWS = 65536
# Old versions and files no commit references (a killed writer's) go after an hour, checked every 64 commits.
_AUTO_CLEANUP: AutoCleanupConfig = {"interval": 64, "older_than_seconds": 3600}


class EmbeddingCache:
    """Content-addressed store of vectors under a data-plane root; safe to share between processes and hosts."""

    def __init__(self, root_url: str, storage_options: dict[str, str] | None = None) -> None:
        self.root = str(root_url)
        self.uri = join(self.root, "cache", "vectors.lance")
        self._options = dict(options_for(self.root) if storage_options is None else storage_options)
        self._ds: lance.LanceDataset | None = None

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[np.ndarray, datetime]]:
        """Vectors and the time they were computed, for the keys that are cached."""
        unique = list(dict.fromkeys(keys))
        ds = self._latest()
        found: dict[str, tuple[np.ndarray, datetime]] = {}
        if ds is None or not unique:
            return found
        for start in range(0, len(unique), _BATCH):
            part = unique[start : start + _BATCH]
            table = ds.to_table(columns=["key", "vector", "created_at"], filter=_key_filter(part))
            vectors = table.column("vector").combine_chunks()
            flat = vectors.flatten().to_numpy(zero_copy_only=False)
            offsets = vectors.offsets.to_numpy()
            for i, (key, created) in enumerate(
                zip(table.column("key").to_pylist(), table.column("created_at").to_pylist(), strict=True)
            ):
                found[key] = (flat[offsets[i] : offsets[i + 1]], created)
        return found

    def put_many(self, model: str, items: Iterable[tuple[str, np.ndarray]]) -> datetime:
        """Store vectors under their keys (one commit); returns the timestamp recorded for them."""
        now = datetime.now(UTC)
        pairs = list(items)
        if not pairs:
            return now
        vectors = [np.asarray(vec, dtype=np.float32).ravel() for _, vec in pairs]
        lengths = np.fromiter((v.shape[0] for v in vectors), dtype=np.int32, count=len(vectors))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        table = pa.table(
            {
                "key": pa.array([key for key, _ in pairs], pa.string()),
                "model": pa.array([model] * len(pairs), pa.string()),
                "vector": pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(vectors))),
                "created_at": pa.array([now] * len(pairs), pa.timestamp("us", tz="UTC")),
            },
            schema=SCHEMA,
        )
        self._ds = self._append(table)
        self._maintain(self._ds)
        return now

    def evict(self, keys: Sequence[str]) -> int:
        """Forget the vectors of ``keys`` (one commit) so the model computes them again; returns how many it had."""
        unique = list(dict.fromkeys(keys))
        ds = self._latest()
        if ds is None or not unique:
            return 0
        removed: set[str] = set()
        for start in range(0, len(unique), _BATCH):
            removed.update(ds.to_table(columns=["key"], filter=_key_filter(unique[start : start + _BATCH]))
                           .column("key").to_pylist())
        if removed:
            ds.delete(_key_filter(sorted(removed)))
        return len(removed)

    def __len__(self) -> int:
        ds = self._latest()
        return 0 if ds is None else ds.count_rows()

    def close(self) -> None:
        self._ds = None

    def _latest(self) -> lance.LanceDataset | None:
        """The dataset at its newest version, or None before the first put anywhere."""
        if self._ds is None:
            self._ds = open_dataset(self.uri, self._options, CACHE)  # None: no put anywhere yet
            return self._ds
        try:
            self._ds.checkout_latest()
        except (OSError, ValueError) as exc:
            raise self._unreachable(exc) from exc
        return self._ds

    def _unreachable(self, exc: Exception) -> StateUnreachableError:
        return unreachable(self.uri, exc, CACHE)

    def _append(self, table: pa.Table) -> lance.LanceDataset:
        if self._latest() is None:
            try:
                ds = lance.write_dataset(
                    table, self.uri, SCHEMA, mode="create", storage_options=self._options,
                    auto_cleanup_options=_AUTO_CLEANUP,
                )
            except (OSError, ValueError) as exc:  # another writer created it first: append like any other put
                if self._latest() is None:
                    raise self._unreachable(exc) from exc
                log.debug("the cache dataset appeared while this writer created it: %s", type(exc).__name__)
            else:
                _create_index(ds)
                return ds
        try:
            return lance.write_dataset(table, self.uri, SCHEMA, mode="append", storage_options=self._options)
        except OSError as exc:  # Lance retries commit conflicts of appends itself: this is the store failing
            raise self._unreachable(exc) from exc

    def _maintain(self, ds: lance.LanceDataset) -> None:
        """Compact small fragments and bring the key index up to date once enough fragments are outside it."""
        indexed = _indexed_fragments(ds)
        if indexed is None:
            _create_index(ds)
            return
        if sum(1 for f in ds.get_fragments() if f.fragment_id not in indexed) < _MAINTAIN_EVERY:
            return
        try:
            ds.optimize.compact_files(target_rows_per_fragment=_FRAGMENT_ROWS)
            ds.optimize.optimize_indices()
        except OSError as exc:  # a concurrent writer's maintenance or evict won the commit; the next put retries
            log.info("cache maintenance deferred: %s", exc)


def _indexed_fragments(ds: lance.LanceDataset) -> set[int] | None:
    for index in ds.describe_indices():
        if index.name == INDEX_NAME:
            return {f for segment in index.segments for f in segment.fragment_ids}
    return None


def _create_index(ds: lance.LanceDataset) -> None:
    try:
        ds.create_scalar_index("key", "BTREE", name=INDEX_NAME, replace=False)
    except (OSError, ValueError) as exc:  # a concurrent writer created it
        log.info("cache key index not created here: %s", exc)


def _key_filter(keys: Sequence[str]) -> str:
    quoted = ",".join("'" + key.replace("'", "''") + "'" for key in keys)
    return f"key IN ({quoted})"


