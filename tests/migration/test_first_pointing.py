"""The first pointing of an alias is a move like any other: under the alias lock, in the manifest, shown by
`embedops spaces`."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from embedops.core.cutover import open_manifest, point_first
from embedops.core.manifest import Manifest
from embedops.core.settings import control_url
from embedops.core.spaces import DEFAULT_SPACE, SpacesConfig, SpaceSpec
from embedops.core.stores.lance import LanceStore
from tests.stores.contract import make_rows


def test_a_first_ingest_records_who_first_pointed_the_alias_and_when(run, source: Path) -> None:  # type: ignore[no-untyped-def]
    before = datetime.now(UTC)
    ingested = run("ingest", "--tenant", "acme", "--source", str(source), "--json")
    after = datetime.now(UTC)
    assert ingested.exit_code == 0, ingested.output
    listing = json.loads(run("spaces", "--json").stdout)
    first = listing["first_pointing"]["docs"]
    assert (first["action"], first["who"], first["from_space"], first["to_space"], first["status"]) == (
        "first-pointing",
        "vector_index first sync",
        None,
        DEFAULT_SPACE.name,
        "done",
    )
    assert first["gate"]["run_id"] in json.loads(ingested.stdout)["run_ids"] and first["gate"]["tenant"] == "acme"
    assert before <= datetime.fromisoformat(first["at"]) <= after
    assert listing["history"] == [first]

    # an ingest that finds the alias pointed moves nothing and records nothing
    assert run("ingest", "--tenant", "acme").exit_code == 0
    assert json.loads(run("spaces", "--json").stdout)["history"] == [first]
    shown = run("spaces").output
    assert (
        f"alias docs first pointed at {DEFAULT_SPACE.name} by vector_index first sync "
        f"(run_id {first['gate']['run_id']}, tenant acme) at {first['at']}"
    ) in shown


class _PausingStore(LanceStore):
    """A LanceStore whose alias moves wait for ``release``, so another run can try while one is mid-move."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, aliases=control_url(root.parent))
        self.moving = threading.Event()
        self.release = threading.Event()

    def set_alias(self, alias: str, space_id: str) -> None:
        self.moving.set()
        assert self.release.wait(timeout=60), "the test never released the move"
        super().set_alias(alias, space_id)


class _WatchedStore(LanceStore):
    """A LanceStore that notes when it is asked where an alias points."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, aliases=control_url(root.parent))
        self.asked = threading.Event()

    def get_alias(self, alias: str) -> str | None:
        self.asked.set()
        return super().get_alias(alias)


def test_two_spaces_first_syncing_at_once_cannot_both_point_the_alias(tmp_path: Path) -> None:
    home = tmp_path / "home"
    one, two = replace(DEFAULT_SPACE, name="one", dimension=8), replace(DEFAULT_SPACE, name="two", dimension=9)
    config = SpacesConfig(spaces=(one, two), alias="docs", serving="one")
    first, second = _PausingStore(home / "lancedb"), _WatchedStore(home / "lancedb")  # two runs, one store
    for space in (one, two):
        first.sync("acme", space.space_id, space.name, make_rows("acme", ["1-a"], space=(space.space_id, space.name)))
    manifest = open_manifest(control_url(home), config, first)
    results: dict[str, object] = {}

    def point(name: str, store: LanceStore, space: SpaceSpec) -> None:  # each run with its own manifest connection
        own = Manifest(manifest.engine)
        results[name] = point_first(store, own, config, "docs", space, "vector_index first sync", {})
        own.close()

    moving = threading.Thread(target=point, args=("one", first, one))
    moving.start()
    assert first.moving.wait(timeout=60)  # run one holds the alias lock and is mid-move; the alias points nowhere yet
    waiting = threading.Thread(target=point, args=("two", second, two))
    waiting.start()
    # while run one moves the alias, run two does not even get to look where it points
    looked_early = second.asked.wait(timeout=0.5)
    first.release.set()
    moving.join(timeout=60)
    waiting.join(timeout=60)

    assert not looked_early
    assert results["two"] is None and second.get_alias("docs") == one.space_id
    assert [(s.action, s.to_space, s.status) for s in manifest.history("docs")] == [("first-pointing", "one", "done")]
    assert manifest.first_pointing("docs") == results["one"]
    assert (manifest.state("one"), manifest.state("two")) == ("serving", "building")
