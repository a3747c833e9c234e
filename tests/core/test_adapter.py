"""The Drift-Adapter map: Procrustes recovers a rotation, least squares a projection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedops.core.adapter import Adapter, adapter_path, adapters_into, fit_adapter, fit_map
from embedops.core.settings import Settings
from embedops.errors import NotMaterializedError, SpaceMismatchError


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_procrustes_recovers_a_rotation() -> None:
    rng = np.random.default_rng(1)
    x = _unit(rng.standard_normal((300, 16)))
    rotation, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    w, method = fit_map(x, x @ rotation)
    assert method == "procrustes"
    assert np.allclose(w, rotation, atol=1e-4) and np.allclose(w.T @ w, np.eye(16), atol=1e-4)


def test_least_squares_maps_across_dimensions() -> None:
    rng = np.random.default_rng(2)
    x = _unit(rng.standard_normal((400, 24)))
    y = _unit(x @ rng.standard_normal((24, 8)))
    adapter = fit_adapter(("new", "n1"), ("old", "o1"), x, y)
    assert adapter.method == "least-squares" and adapter.matrix.shape == (24, 8)
    cosine = np.sum(adapter.apply(x) * y, axis=1)
    assert cosine.mean() > 0.95
    with pytest.raises(SpaceMismatchError, match="Procrustes needs equal dimensions"):
        fit_map(x, y, "procrustes")
    with pytest.raises(SpaceMismatchError, match="dimension 24"):
        adapter.apply(np.ones(8))


def test_adapter_saves_loads_and_is_fast(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = _unit(rng.standard_normal((100, 32)))
    adapter = fit_adapter(("new", "n1"), ("old", "o1"), x, x)
    adapter.report = {"recovered_fraction": 0.97}
    loaded = Adapter.load(adapter.save(tmp_path / "a.npz"))
    assert np.array_equal(loaded.matrix, adapter.matrix) and loaded.report == adapter.report
    assert loaded.target_id == "o1" and loaded.samples == 100
    assert loaded.latency_us(repeats=200) < 1000  # one small matrix product per query
    with pytest.raises(NotMaterializedError, match="adapter fit"):
        Adapter.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("plane", ["folder", "fake-s3"])
def test_an_adapter_saved_by_one_worker_is_found_by_another_sharing_the_data_plane(
    plane: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data_url = str(tmp_path / "shared-data") if plane == "folder" else request.getfixturevalue("s3")
    one, two = (Settings.from_env({"EMBEDOPS_HOME": str(tmp_path / h), "EMBEDOPS_DATA_URL": data_url})
                for h in ("worker-one", "worker-two"))
    rng = np.random.default_rng(4)
    x = _unit(rng.standard_normal((20, 8)))
    assert adapters_into(two.data_root, "old") == []

    fit_adapter(("new", "n1"), ("old", "o1"), x, x).save(adapter_path(one.data_root, "new", "old"))

    assert adapters_into(two.data_root, "old") == ["new"]
    found = Adapter.load(adapter_path(two.data_root, "new", "old"))
    assert found.source_id == "n1" and found.matrix.shape == (8, 8)
    assert not (tmp_path / "worker-one" / "adapters").exists()  # nothing on the worker's own disk
