from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from embedops.core.stores.base import VectorStore
from embedops.errors import ConfigError


class VectorStoreResource(dg.ConfigurableResource):
    """The vector index: LanceDB in the data plane (``lance_uri``, a folder or an object-store URL; the default)
    or a Weaviate server.

    For Weaviate, bind the URL and API key with ``dg.EnvVar`` so that they never reach logs.
    """

    kind: Literal["lancedb", "weaviate"] = "lancedb"
    lance_uri: str | None = None
    # the control database that keeps LanceDB's aliases (EMBEDOPS_DATABASE_URL, an EnvVar when set there)
    database_url: str | None = None
    weaviate_url: str | None = None
    weaviate_grpc_port: int = 50051
    weaviate_api_key: str | None = None

    _store: VectorStore | None = PrivateAttr(default=None)

    def open(self) -> VectorStore:
        if self._store is None:
            self._store = self._connect()
        return self._store

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # a run's copy of the resource may carry the store its original opened: open its own
        self._store = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        """Close the store this resource opened (a Weaviate connection; LanceDB holds none)."""
        close = getattr(self._store, "close", None)
        if close is not None:
            close()
        self._store = None

    def _connect(self) -> VectorStore:
        if self.kind == "lancedb":
            if not self.lance_uri:
                raise ConfigError("vector store 'lancedb' needs lance_uri (set EMBEDOPS_DATA_URL or EMBEDOPS_HOME)")
            from embedops.core.dataplane import storage_options
            from embedops.core.stores.lance import LanceStore

            if not self.database_url:
                raise ConfigError("vector store 'lancedb' needs database_url for its aliases (EMBEDOPS_DATABASE_URL)")
            return LanceStore(self.lance_uri, storage_options=storage_options(self.lance_uri),
                              aliases=str(field_value(self.database_url)))
        url = field_value(self.weaviate_url)
        if not url:
            raise ConfigError("vector store 'weaviate' needs a URL: set EMBEDOPS_WEAVIATE_URL")
        from embedops.core.stores.weaviate import WeaviateStore

        return WeaviateStore.connect(url, grpc_port=self.weaviate_grpc_port, api_key=field_value(self.weaviate_api_key))


def field_value(field: str | None) -> str | None:
    """A field's value, an ``EnvVar`` read from the environment.

    Dagster resolves ``EnvVar`` fields only when it builds the resource for a run; outside a run (the
    CLI, ``run_backfill``, sensor callers) the field still holds the variable's name, not its value.
    """
    return field.get_value() if isinstance(field, dg.EnvVar) else field
