"""Connecting to Weaviate: the connection itself, the server checks (reachable, API key accepted,
gRPC serving, version >= 1.32) and the translation of weaviate-client errors into embedops errors
that name the server and the fix, with the API key scrubbed from every message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.connect import ConnectionParams
from weaviate.exceptions import (
    UnexpectedStatusCodeError,
    WeaviateBaseError,
    WeaviateConnectionError,
    WeaviateGRPCUnavailableError,
    WeaviateRetryError,
    WeaviateStartUpError,
    WeaviateTimeoutError,
)

from embedops.core.stores.weaviate.client_internals import client_address, ping_grpc
from embedops.errors import ConfigError, EmbedopsError, VectorStoreError

MIN_SERVER_VERSION = (1, 32)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


class WeaviateConnection:
    """A checked connection to a Weaviate server; the base of ``WeaviateStore``.

    Give it a connected ``weaviate.WeaviateClient`` (it does not close it), or connection
    parameters (it connects and ``close()`` disconnects). The server is checked on construction:
    reachable, the API key accepted, gRPC serving, version >= 1.32. Every client call goes through
    ``_errors``, which turns weaviate-client errors into ``VectorStoreError``s.
    """

    def __init__(
        self,
        client: weaviate.WeaviateClient | None = None,
        *,
        http_host: str = "localhost",
        http_port: int = 8080,
        http_secure: bool = False,
        grpc_host: str | None = None,
        grpc_port: int = 50051,
        grpc_secure: bool = False,
        api_key: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._api_key = api_key
        if client is not None:
            self._owns_client = False
            self.url, self.grpc_address = client_address(client)
            self._client = client
            if not client.is_connected():
                with self._errors("connect"):
                    client.connect()
        else:
            self._owns_client = True
            scheme = "https" if http_secure else "http"
            self.url = f"{scheme}://{http_host}:{http_port}"
            self.grpc_address = f"{grpc_host or http_host}:{grpc_port}"
            self._client = weaviate.WeaviateClient(
                connection_params=ConnectionParams.from_params(
                    http_host=http_host,
                    http_port=http_port,
                    http_secure=http_secure,
                    grpc_host=grpc_host or http_host,
                    grpc_port=grpc_port,
                    grpc_secure=grpc_secure,
                ),
                auth_client_secret=Auth.api_key(api_key) if api_key else None,
                additional_config=AdditionalConfig(
                    timeout=Timeout(init=min(timeout_s, 10.0), query=timeout_s, insert=timeout_s)
                ),
                # The client's own init checks also query PyPI for a newer client; the checks that
                # matter (REST reachable, key accepted, gRPC serving) are done below instead.
                skip_init_checks=True,
            )
            try:
                with self._errors("connect"):
                    self._client.connect()
            except EmbedopsError:
                self._client.close()
                raise
        try:
            self._check_server()
        except EmbedopsError:
            self.close()
            raise

    @classmethod
    def connect(
        cls,
        url: str,
        grpc_port: int = 50051,
        api_key: str | None = None,
        *,
        grpc_host: str | None = None,
        grpc_secure: bool | None = None,
        timeout_s: float = 30.0,
    ) -> Self:
        """Connect to the Weaviate at ``url`` (REST) and ``grpc_port`` on the same host (gRPC)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"Weaviate URL {url!r} is not an http(s) URL; give one such as http://localhost:8080")
        secure = parts.scheme == "https"
        try:
            port = parts.port or (443 if secure else 80)
        except ValueError as exc:
            raise ConfigError(f"Weaviate URL {url!r} has an invalid port: {exc}") from exc
        return cls(
            http_host=parts.hostname,
            http_port=port,
            http_secure=secure,
            grpc_host=grpc_host or parts.hostname,
            grpc_port=grpc_port,
            grpc_secure=secure if grpc_secure is None else grpc_secure,
            api_key=api_key,
            timeout_s=timeout_s,
        )

    def close(self) -> None:
        """Disconnect, when the store opened the connection itself."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_server(self) -> None:
        """Refuse a server that cannot serve embedops: gRPC down, or too old for aliases."""
        with self._errors("check its gRPC port"):
            ping_grpc(self._client)
        with self._errors("read its version"):
            version = str(self._client.get_meta().get("version", ""))
        match = _VERSION.match(version)
        if match is None or (int(match[1]), int(match[2])) < MIN_SERVER_VERSION:
            raise VectorStoreError(
                f"Weaviate at {self.url} is version {version or 'unknown'}, but embedops needs collection "
                f"aliases (Weaviate >= {'.'.join(map(str, MIN_SERVER_VERSION))}): upgrade to >= 1.32"
            )

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn a weaviate-client error into a VectorStoreError that names the server and the fix."""
        try:
            yield
        except EmbedopsError:
            raise
        except WeaviateBaseError as exc:
            raise self._translate(exc, action) from None

    def _translate(self, exc: WeaviateBaseError, action: str) -> VectorStoreError:
        message = self._scrub(exc.message or str(exc))
        lowered = message.lower()
        status = getattr(exc, "status_code", None) if isinstance(exc, UnexpectedStatusCodeError) else None
        if status == 401 or "invalid api key" in lowered or "unauthenticated" in lowered:
            if self._api_key:
                return VectorStoreError(
                    f"Weaviate at {self.url} refused the API key (401 Unauthorized) when trying to {action}; "
                    "check that the configured key is one the server accepts"
                )
            return VectorStoreError(
                f"Weaviate at {self.url} requires an API key (401 Unauthorized) when trying to {action}, "
                "and none was configured; pass api_key"
            )
        unreachable = (
            WeaviateConnectionError,
            WeaviateStartUpError,
            WeaviateGRPCUnavailableError,
            WeaviateTimeoutError,
            WeaviateRetryError,
        )
        if isinstance(exc, unreachable):
            return VectorStoreError(
                f"cannot reach Weaviate at {self.url} (gRPC {self.grpc_address}) to {action}: check that "
                f"the server is running, that the URL and both ports are right and that no firewall or "
                f"proxy blocks them ({message})"
            )
        return VectorStoreError(f"Weaviate at {self.url} failed to {action}: {message}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text
