"""Vector stores: one narrow interface, an embedded (LanceDB) and a server (Weaviate) implementation."""

from embedops.core.stores.base import INDEX_SCHEMA_FIELDS, Hit, SyncResult, VectorStore, index_schema

__all__ = ["INDEX_SCHEMA_FIELDS", "Hit", "SyncResult", "VectorStore", "index_schema"]
