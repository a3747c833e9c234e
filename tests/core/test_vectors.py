"""The vector math every part of embedops uses (core/vectors.py), and that it exists only there."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embedops.core.vectors import cosine_distances, cosine_similarities, normalize, norms, vector_matrix

SRC = Path(__file__).resolve().parents[2] / "src" / "embedops"


def test_cosine_distances_rowwise() -> None:
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])
    assert cosine_distances(a, b) == pytest.approx([0.0, 1.0, 2.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_gives_unit_rows_keeps_zero_rows_and_the_dtype(dtype: type) -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]], dtype=dtype)
    unit = normalize(x)
    assert unit.dtype == dtype
    assert unit.ravel().tolist() == pytest.approx([0.6, 0.8, 0.0, 0.0, -1.0, 0.0])
    assert norms(unit) == pytest.approx([1.0, 0.0, 1.0])
    assert normalize(np.array([0.0, 5.0])).tolist() == [0.0, 1.0]  # a single vector too


def test_cosine_similarities_of_one_query_or_many() -> None:
    matrix = np.array([[2.0, 0.0], [0.0, 3.0], [0.0, 0.0], [-1.0, -1.0]])
    one = cosine_similarities(np.array([1.0, 0.0]), matrix)
    assert one.tolist() == pytest.approx([1.0, 0.0, 0.0, -np.sqrt(0.5)])
    many = cosine_similarities(np.array([[1.0, 0.0], [0.0, 1.0]]), matrix)
    assert many.shape == (2, 4) and many[0].tolist() == pytest.approx(one.tolist())


def test_vector_matrix_of_an_arrow_column() -> None:
    table = pa.table({"vector": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32(), 2))})
    assert vector_matrix(table).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert vector_matrix(table, dtype=np.float32).dtype == np.float32
    assert vector_matrix(table.slice(0, 0)).shape == (0, 0)


def test_norms_and_cosine_are_computed_in_core_vectors_only() -> None:
    """One definition: a second copy of the math elsewhere in src/embedops fails here."""
    pattern = re.compile(r"np\.linalg\.norm|np\.einsum|np\.dot\(|np\.inner\(")
    found = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if pattern.search(p.read_text())}
    assert found == {"core/vectors.py"}


def test_documents_are_chunked_in_a_space_recipe_in_one_place() -> None:
    callers = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "chunk_document(" in p.read_text()}
    assert callers == {"core/chunking.py"}
    users = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "chunk_in_space(" in p.read_text()}
    assert {"core/ingest.py", "core/monitoring/sentinel.py"} <= users
