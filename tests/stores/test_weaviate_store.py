"""WeaviateStore: the shared contract and Weaviate-specific behaviour.

Weaviate cannot run here, so the tests talk to ``FakeWeaviateServer`` (tests/fakes/weaviate_fake.py),
a protocol-level FAKE that speaks the REST and gRPC calls of weaviate-client 4.23.1. The same
contract also runs against a live Weaviate when EMBEDOPS_WEAVIATE_URL is set (marker
``weaviate_live``); it then uses, and deletes, the collections Chunks_a1b2c3d4e5f6 and
Chunks_ffffffffffff and the alias Docs on that server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import weaviate
from weaviate.classes.config import Configure, DataType, Property
from weaviate.classes.data import DataObject
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateQueryError

from embedops.core.stores.weaviate import UPSERT_BATCH, WeaviateStore, alias_name, chunk_uuid, collection_name
from embedops.core.stores.weaviate.store import _regroup
from embedops.errors import ConfigError, NotMaterializedError, SpaceMismatchError, VectorStoreError
from tests.fakes.weaviate_fake import FakeWeaviateServer
from tests.processes import free_port
from tests.stores.contract import DIM, OTHER_SPACE, SPACE, VectorStoreContract, as_dataset, as_tenant, make_rows

LIVE_URL = os.environ.get("EMBEDOPS_WEAVIATE_URL")


class _WeaviateContract(VectorStoreContract):
    """The shared contract; subclasses provide the store."""


@pytest.fixture
def fake() -> Iterator[FakeWeaviateServer]:
    server = FakeWeaviateServer().start()
    yield server
    server.stop()


def _store(fake: FakeWeaviateServer, api_key: str | None = None) -> WeaviateStore:
    return WeaviateStore.connect(fake.url, grpc_port=fake.grpc_port, api_key=api_key)


@pytest.fixture
def raw(fake: FakeWeaviateServer) -> Iterator[weaviate.WeaviateClient]:
    """A plain weaviate-client on the fake, for setting up what another writer left behind."""
    client = weaviate.connect_to_custom(
        http_host=fake.host,
        http_port=fake.http_port,
        http_secure=False,
        grpc_host=fake.host,
        grpc_port=fake.grpc_port,
        grpc_secure=False,
        skip_init_checks=True,
    )
    yield client
    client.close()


class TestWeaviateStoreOnFake(_WeaviateContract):
    @pytest.fixture
    def store(self, fake: FakeWeaviateServer) -> Iterator[WeaviateStore]:
        store = _store(fake)
        yield store
        store.close()


@pytest.fixture
def store(fake: FakeWeaviateServer) -> Iterator[WeaviateStore]:
    store = _store(fake)
    yield store
    store.close()


def _writes(fake: FakeWeaviateServer) -> list[str]:
    """The requests that change state (schema, tenants, aliases, objects)."""
    return [
        r
        for r in fake.requests
        if r.split()[0] in ("POST", "PUT", "DELETE") or r.startswith(("gRPC BatchObjects", "gRPC BatchDelete"))
    ]


# -- writes -------------------------------------------------------------------------------------


def test_an_object_weaviate_refuses_fails_the_sync_by_chunk_id_and_deletes_nothing(
    fake: FakeWeaviateServer, store: WeaviateStore
) -> None:
    store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
    fake.rejections[str(chunk_uuid("3-a"))] = "id '3-a-object' refused: disk quota exceeded"
    with pytest.raises(VectorStoreError) as err:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a", "3-a", "4-a"]))
    message = str(err.value)
    assert "3-a: id '3-a-object' refused: disk quota exceeded" in message
    assert "1 of 2 objects" in message and "nothing was deleted" in message
    # 4-a was written (no transactions in Weaviate), 2-a was not deleted, 3-a is missing.
    assert sorted(store.export("acme", SPACE[0]).column("chunk_id").to_pylist()) == ["1-a", "2-a", "4-a"]


def test_a_sync_from_a_dataset_writes_only_changed_rows_in_full_batches(
    fake: FakeWeaviateServer, store: WeaviateStore, tmp_path: Path
) -> None:
    ids = [f"{i}-a" for i in range(450)]
    texts = [f"text of {i}" for i in ids]
    store.sync("acme", *SPACE, as_dataset(make_rows("acme", ids, texts), tmp_path / "first.parquet"))
    before = len(fake.requests)
    edited = [f"edited {i}" if n % 2 else t for n, (i, t) in enumerate(zip(ids, texts, strict=True))]
    result = store.sync("acme", *SPACE, as_dataset(make_rows("acme", ids, edited), tmp_path / "second.parquet"))
    assert (result.upserted, result.deleted, result.rows) == (225, 0, 450)
    batches = [r for r in fake.requests[before:] if r.startswith("gRPC BatchObjects")]
    assert len(batches) == -(-225 // UPSERT_BATCH)  # the changed rows, scattered over the file, in full batches
    exported = store.export("acme", SPACE[0])
    assert exported.filter(pc.starts_with(exported["text"], "edited")).num_rows == 225


@pytest.mark.parametrize(
    ("sizes", "size", "expected"),
    [([], 3, []), ([0, 0], 3, []), ([5], 3, [3, 2]), ([1, 1, 1, 1], 3, [3, 1]), ([2, 0, 4, 3], 3, [3, 3, 3])],
)
def test_regroup_yields_full_groups_whatever_the_parts(sizes: list[int], size: int, expected: list[int]) -> None:
    start = 0
    parts = []
    for n in sizes:
        parts.append(pa.table({"i": list(range(start, start + n))}, schema=pa.schema([("i", pa.int64())])))
        start += n
    groups = list(_regroup(parts, size))
    assert [g.num_rows for g in groups] == expected
    assert [i for g in groups for i in g["i"].to_pylist()] == list(range(start))


def test_rows_repeating_a_chunk_id_or_of_another_tenant_are_refused_before_any_write(
    fake: FakeWeaviateServer, store: WeaviateStore, tmp_path: Path
) -> None:
    rows = make_rows("acme", ["1-a", "2-a", "1-a"])
    with pytest.raises(VectorStoreError, match=r"repeat chunk ids \['1-a'\]"):
        store.sync("acme", *SPACE, as_dataset(rows, tmp_path / "repeats.parquet"))
    with pytest.raises(VectorStoreError, match=r"tenant\(s\) \['globex'\] cannot be written to tenant 'acme'"):
        store.upsert("acme", *SPACE, as_dataset(as_tenant(rows, "globex"), tmp_path / "globex.parquet"))
    assert _writes(fake) == []


def test_a_vector_length_the_tenant_index_does_not_hold_is_reported_with_weaviate_message(
    fake: FakeWeaviateServer, store: WeaviateStore, raw: weaviate.WeaviateClient
) -> None:
    store.sync("globex", *SPACE, make_rows("globex", ["1-g"]))
    # Another writer put a 4-dimensional vector into tenant acme of the same collection.
    foreign = raw.collections.use(collection_name(SPACE[0]))
    foreign.tenants.create("acme")
    foreign.with_tenant("acme").data.insert_many(
        [DataObject(properties={"chunk_id": "foreign"}, vector={"default": [1.0, 0.0, 0.0, 0.0]})]
    )
    with pytest.raises(VectorStoreError) as err:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
    message = str(err.value)
    assert f"1-a, 2-a: new node has a vector with length {DIM}. Existing nodes have vectors with length 4" in message
    assert store.count("acme", SPACE[0]) == 1  # the foreign object was not deleted


def test_sync_removes_objects_another_writer_left_in_the_tenant(
    store: WeaviateStore, raw: weaviate.WeaviateClient
) -> None:
    store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    stray = raw.collections.use(collection_name(SPACE[0])).with_tenant("acme")
    stray.data.insert_many([DataObject(properties={"text": "no chunk id"}, vector={"default": [0.5] * DIM})])
    result = store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    assert (result.upserted, result.deleted, result.rows) == (0, 1, 1)


def test_objects_are_keyed_by_uuid5_of_the_chunk_id(fake: FakeWeaviateServer, store: WeaviateStore) -> None:
    store.sync("acme", *SPACE, make_rows("acme", ["1-a", "2-a"]))
    stored = fake.objects[collection_name(SPACE[0])]["acme"]
    assert set(stored) == {str(chunk_uuid("1-a")), str(chunk_uuid("2-a"))}
    assert stored[str(chunk_uuid("1-a"))].properties["chunk_id"] == "1-a"


def test_the_collection_records_the_space_and_keeps_tenants_apart(
    fake: FakeWeaviateServer, store: WeaviateStore
) -> None:
    store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    cls = fake.classes[collection_name(SPACE[0])]
    assert json.loads(cls["description"]) == {
        "embedops": 1,
        "space_id": SPACE[0],
        "space_name": SPACE[1],
        "dimension": DIM,
    }
    assert cls["multiTenancyConfig"] == {
        "enabled": True,
        "autoTenantCreation": False,
        "autoTenantActivation": False,
    }
    assert cls["vectorConfig"]["default"]["vectorizer"] == {"none": {}}
    assert cls["vectorConfig"]["default"]["vectorIndexConfig"]["distance"] == "cosine"
    types = {p["name"]: p["dataType"][0] for p in cls["properties"]}
    assert types["embedded_at"] == "date" and types["seq"] == "int" and types["chunk_id"] == "text"


def test_tenants_are_created_on_the_concrete_collection_never_through_the_alias(
    fake: FakeWeaviateServer, store: WeaviateStore
) -> None:
    store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    store.set_alias("docs", SPACE[0])
    store.sync("globex", *SPACE, make_rows("globex", ["1-g"]))
    tenant_writes = [r for r in fake.requests if r.endswith("/tenants") and r.startswith("POST")]
    assert tenant_writes == [f"POST /v1/schema/{collection_name(SPACE[0])}/tenants"] * 2
    assert set(fake.tenants[collection_name(SPACE[0])]) == {"acme", "globex"}


def test_a_collection_recording_another_space_is_refused_and_nothing_is_written(
    fake: FakeWeaviateServer, store: WeaviateStore, raw: weaviate.WeaviateClient
) -> None:
    name = collection_name(SPACE[0])
    recorded = {"embedops": 1, "space_id": OTHER_SPACE[0], "space_name": OTHER_SPACE[1], "dimension": DIM}
    raw.collections.create(
        name=name,
        description=json.dumps(recorded),
        properties=[Property(name="chunk_id", data_type=DataType.TEXT)],
        multi_tenancy_config=Configure.multi_tenancy(enabled=True),
    )
    before = len(_writes(fake))
    with pytest.raises(SpaceMismatchError) as err:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    assert name in str(err.value) and SPACE[0] in str(err.value) and OTHER_SPACE[0] in str(err.value)
    assert len(_writes(fake)) == before and fake.tenants[name] == {}


def test_rows_of_another_dimension_are_refused(store: WeaviateStore) -> None:
    store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    rows = make_rows("acme", ["2-a"])
    four = pa.list_(pa.float32(), 4)
    rows = rows.set_column(
        rows.schema.get_field_index("vector"), pa.field("vector", four), pa.array([[1.0] * 4], type=four)
    )
    with pytest.raises(SpaceMismatchError, match=f"dimension 4 .*{collection_name(SPACE[0])}.*dimension {DIM}"):
        store.sync("acme", *SPACE, rows)
    assert store.count("acme", SPACE[0]) == 1


def test_a_collection_without_an_embedops_description_is_refused(
    store: WeaviateStore, raw: weaviate.WeaviateClient
) -> None:
    raw.collections.create(name=collection_name(SPACE[0]), multi_tenancy_config=Configure.multi_tenancy(enabled=True))
    with pytest.raises(SpaceMismatchError, match="does not record an embedops space"):
        store.count("acme", SPACE[0])


# -- aliases ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alias", "weaviate_name"), [("docs", "Docs"), ("Docs", "Docs"), ("docs_v2", "Docs_v2")])
def test_alias_names_map_to_capitalised_weaviate_aliases(alias: str, weaviate_name: str) -> None:
    assert alias_name(alias) == weaviate_name


@pytest.mark.parametrize("alias", ["docs-v2", "2docs", "", "docs alias"])
def test_alias_names_weaviate_cannot_hold_are_refused(alias: str) -> None:
    with pytest.raises(ConfigError, match="cannot name a Weaviate alias"):
        alias_name(alias)


def test_alias_of_a_space_without_a_collection_is_refused(fake: FakeWeaviateServer, store: WeaviateStore) -> None:
    with pytest.raises(NotMaterializedError, match=f"no collection {collection_name(SPACE[0])}"):
        store.set_alias("docs", SPACE[0])
    assert fake.aliases == {}


def test_alias_is_a_weaviate_alias_of_the_concrete_collection(
    fake: FakeWeaviateServer, store: WeaviateStore, raw: weaviate.WeaviateClient
) -> None:
    rows = make_rows("acme", ["1-a", "2-a"])
    store.sync("acme", *SPACE, rows)
    store.sync("acme", *OTHER_SPACE, make_rows("acme", ["1-a"], space=OTHER_SPACE))
    store.set_alias("docs", SPACE[0])
    assert fake.aliases == {"Docs": collection_name(SPACE[0])}
    store.set_alias("docs", OTHER_SPACE[0])
    assert fake.aliases == {"Docs": collection_name(OTHER_SPACE[0])}
    assert [r for r in fake.requests if "aliases" in r and r.split()[0] != "GET"] == [
        "POST /v1/aliases",
        "PUT /v1/aliases/Docs",
    ]
    # Readers query through the alias; Weaviate resolves it for object operations.
    served = raw.collections.use("Docs").with_tenant("acme").query.fetch_objects()
    assert [o.properties["space_id"] for o in served.objects] == [OTHER_SPACE[0]]


# -- connection ---------------------------------------------------------------------------------


def test_a_server_older_than_1_32_is_refused_and_nothing_is_written() -> None:
    with FakeWeaviateServer(version="1.31.0") as old:
        with pytest.raises(VectorStoreError) as err:
            _store(old)
        assert old.url in str(err.value) and "1.31.0" in str(err.value)
        assert "upgrade to >= 1.32" in str(err.value)
        assert _writes(old) == []


def test_a_refused_api_key_is_reported_without_the_key() -> None:
    with FakeWeaviateServer(api_keys=["right-key"]) as secured:
        with pytest.raises(VectorStoreError) as err:
            _store(secured, api_key="wrong-secret-key")
        assert "refused the API key" in str(err.value) and secured.url in str(err.value)
        assert "wrong-secret-key" not in str(err.value) and err.value.__cause__ is None
        with pytest.raises(VectorStoreError, match="requires an API key"):
            _store(secured)
        with _store(secured, api_key="right-key") as store:
            store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
            assert store.count("acme", SPACE[0]) == 1


def test_an_unreachable_url_is_reported_with_what_to_check() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(VectorStoreError) as err:
        WeaviateStore.connect(url, grpc_port=free_port(), timeout_s=2)
    assert f"cannot reach Weaviate at {url}" in str(err.value)
    assert "check that the server is running" in str(err.value)


def test_an_unreachable_grpc_port_is_reported(fake: FakeWeaviateServer) -> None:
    grpc_port = free_port()
    with pytest.raises(VectorStoreError, match=f"gRPC 127.0.0.1:{grpc_port}"):
        WeaviateStore.connect(fake.url, grpc_port=grpc_port, timeout_s=2)


def test_a_url_that_is_not_http_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="http://localhost:8080"):
        WeaviateStore.connect("localhost:8080")


def test_an_already_connected_client_is_used_and_left_open(
    fake: FakeWeaviateServer, raw: weaviate.WeaviateClient
) -> None:
    with WeaviateStore(raw) as store:
        store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    assert raw.is_connected() and raw.collections.exists(collection_name(SPACE[0]))


# -- the fake stays honest ----------------------------------------------------------------------


def test_fake_refuses_tenant_creation_through_an_alias_like_weaviate(
    store: WeaviateStore, raw: weaviate.WeaviateClient
) -> None:
    store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    store.set_alias("docs", SPACE[0])
    with pytest.raises(UnexpectedStatusCodeError) as err:
        raw.collections.use("Docs").tenants.create("globex")
    assert err.value.status_code == 422 and "not found" in str(err.value)


def test_fake_refuses_reads_of_a_tenant_that_does_not_exist(store: WeaviateStore, raw: weaviate.WeaviateClient) -> None:
    store.sync("acme", *SPACE, make_rows("acme", ["1-a"]))
    with pytest.raises(WeaviateQueryError, match='tenant not found: "globex"'):
        raw.collections.use(collection_name(SPACE[0])).with_tenant("globex").query.fetch_objects()


# -- live Weaviate ------------------------------------------------------------------------------


@pytest.mark.weaviate_live
@pytest.mark.skipif(
    LIVE_URL is None,
    reason="set EMBEDOPS_WEAVIATE_URL=http://localhost:8080 (Weaviate >= 1.32) to run "
    "(optionally EMBEDOPS_WEAVIATE_GRPC_PORT, EMBEDOPS_WEAVIATE_API_KEY)",
)
class TestWeaviateStoreLive(_WeaviateContract):
    @pytest.fixture
    def store(self) -> Iterator[WeaviateStore]:
        assert LIVE_URL is not None
        store = WeaviateStore.connect(
            LIVE_URL,
            grpc_port=int(os.environ.get("EMBEDOPS_WEAVIATE_GRPC_PORT", "50051")),
            api_key=os.environ.get("EMBEDOPS_WEAVIATE_API_KEY") or None,
        )
        _clean_live(store)
        yield store
        _clean_live(store)
        store.close()


def _clean_live(store: WeaviateStore) -> None:
    client = store._client
    client.alias.delete(alias_name=alias_name("docs"))
    for space_id, _ in (SPACE, OTHER_SPACE):
        client.collections.delete(collection_name(space_id))
    store._spaces.clear()
    store._known_tenants.clear()
