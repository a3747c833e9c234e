"""The weaviate-client internals embedops relies on (core/stores/weaviate/client_internals.py) behave as relied on.

Against the FAKE Weaviate server of tests/fakes (no real server can run here). When one of these fails
after a weaviate-client upgrade, adapt client_internals.py (and only it), or use a public replacement.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import weaviate
from weaviate.connect import ConnectionParams
from weaviate.exceptions import WeaviateGRPCUnavailableError

from embedops.core.stores.weaviate.client_internals import client_address, ping_grpc
from tests.fakes.weaviate_fake import FakeWeaviateServer
from tests.processes import free_port


@pytest.fixture
def fake() -> Iterator[FakeWeaviateServer]:
    with FakeWeaviateServer() as server:
        yield server


def _client(fake: FakeWeaviateServer, grpc_port: int) -> weaviate.WeaviateClient:
    return weaviate.connect_to_custom(
        http_host=fake.host, http_port=fake.http_port, http_secure=False,
        grpc_host=fake.host, grpc_port=grpc_port, grpc_secure=False, skip_init_checks=True,
    )


def test_the_address_of_a_client_names_its_rest_url_and_grpc_port() -> None:
    params = ConnectionParams.from_params(http_host="weaviate.example", http_port=443, http_secure=True,
                                          grpc_host="grpc.example", grpc_port=50052, grpc_secure=True)
    client = weaviate.WeaviateClient(connection_params=params, skip_init_checks=True)  # never connected
    assert client_address(client) == ("https://weaviate.example:443", "grpc.example:50052")


def test_the_grpc_ping_passes_on_a_serving_port_and_raises_on_a_dead_one(fake: FakeWeaviateServer) -> None:
    client = _client(fake, fake.grpc_port)
    try:
        assert client_address(client) == (fake.url, f"{fake.host}:{fake.grpc_port}")
        assert ping_grpc(client) is None
    finally:
        client.close()
    dead = _client(fake, free_port())
    try:
        with pytest.raises(WeaviateGRPCUnavailableError):
            ping_grpc(dead)
    finally:
        dead.close()
