"""BEIR golden sets: loading, deterministic slicing, writing back, fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedops.core.golden import GOLDEN_TENANT, GoldenSet, load_beir, slice_golden, write_beir
from embedops.core.registry import Registry
from embedops.errors import ConfigError, InvalidTenantError

GOLD = GoldenSet(
    corpus={str(i): (f"Title {i}", f"Body of document {i}.") for i in range(1, 21)},
    queries={"1": "first", "2": "second", "3": "third", "10": "tenth"},
    qrels={"1": {"1": 1}, "2": {"2": 1, "3": 2}, "3": {"4": 0}, "10": {"5": 1}},
    name="tiny",
)


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    folder = write_beir(GOLD, tmp_path / "tiny")
    loaded = load_beir(folder)
    assert loaded.corpus == GOLD.corpus and loaded.qrels == GOLD.qrels and loaded.queries == GOLD.queries
    assert loaded.fingerprint == GOLD.fingerprint


def test_slice_keeps_relevant_documents_and_is_deterministic() -> None:
    part = slice_golden(GOLD, queries=2, distractors=5, max_chars=8)
    assert sorted(part.queries) == ["1", "2"]  # judged queries by id, q3 (no relevant doc) never chosen
    assert {"1", "2", "3"} <= set(part.corpus) and len(part.corpus) == 3 + 5
    assert all(len(text) <= 8 for _title, text in part.corpus.values())
    assert slice_golden(GOLD, 2, 5, 8).fingerprint == part.fingerprint != GOLD.fingerprint


def test_documents_table_is_a_source_table_under_the_reserved_tenant() -> None:
    table = GOLD.documents_table()
    assert table.num_rows == 20 and set(table.column("tenant").to_pylist()) == {GOLDEN_TENANT}
    assert GOLD.document_text("1").startswith("# Title 1\n\nBody")


def test_the_golden_namespace_is_not_a_customer_tenant(tmp_path: Path) -> None:
    with pytest.raises(InvalidTenantError, match="reserved"):
        Registry(f"sqlite:///{tmp_path / 'r.sqlite'}").add_tenant(GOLDEN_TENANT, tmp_path)


def test_missing_folder_or_ambiguous_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_beir(tmp_path / "nope")
    folder = write_beir(GOLD, tmp_path / "two", split="train")
    write_beir(GOLD, folder, split="dev")
    with pytest.raises(ConfigError, match="which qrels split"):
        load_beir(folder)
    assert load_beir(folder, "dev").qrels == GOLD.qrels
