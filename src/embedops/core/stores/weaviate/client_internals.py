"""The parts of weaviate-client that embedops relies on and the client does not expose, in one place.

- Where a client given by the caller connects (``client_address``): its REST URL and gRPC address,
  for messages that name the server. The client keeps them on its private connection.
- The client's own gRPC health check (``ping_grpc``): connecting with ``skip_init_checks`` (which also
  skips the client's query to PyPI for a newer version) skips it, and no public call checks gRPC alone.

tests/stores/test_weaviate_client_internals.py fails when a client upgrade moves or changes these.
"""

from __future__ import annotations

import weaviate


def client_address(client: weaviate.WeaviateClient) -> tuple[str, str]:
    """The REST URL (``http://host:port``) and the gRPC address (``host:port``) the client connects to."""
    params = client._connection._connection_params
    scheme = "https" if params.http.secure else "http"
    return f"{scheme}://{params.http.host}:{params.http.port}", f"{params.grpc.host}:{params.grpc.port}"


def ping_grpc(client: weaviate.WeaviateClient) -> None:
    """Ask the server's gRPC health service; raises ``WeaviateGRPCUnavailableError`` when it does not serve."""
    client._connection._ping_grpc("sync")
