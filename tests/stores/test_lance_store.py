from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from embedops.core.stores.lance import LanceStore
from embedops.errors import SpaceMismatchError
from tests.stores.contract import SPACE, VectorStoreContract, make_rows


class TestLanceStore(VectorStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LanceStore:
        return LanceStore(tmp_path / "lance")


def test_each_sync_is_one_version_and_old_versions_stay_readable(tmp_path: Path) -> None:
    store = LanceStore(tmp_path)
    first = store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
    second = store.sync("acme", *SPACE, make_rows("acme", ["3-a"]))
    assert second.version == (first.version or 0) + 1


def test_a_table_written_by_another_space_is_refused(tmp_path: Path) -> None:
    store = LanceStore(tmp_path)
    store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    # a table copied in under another space's name keeps the space it was written with
    shutil.copytree(
        tmp_path / f"{LanceStore.table_name('acme', SPACE[0])}.lance",
        tmp_path / f"{LanceStore.table_name('acme', 'bbbbbbbbbbbb')}.lance",
    )

    with pytest.raises(SpaceMismatchError, match="bbbbbbbbbbbb"):
        store.count("acme", "bbbbbbbbbbbb")
