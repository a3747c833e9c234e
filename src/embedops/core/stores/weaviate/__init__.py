"""The production vector store: Weaviate (server >= 1.32) through weaviate-client v4.

``schema`` names and lays out the data, ``connection`` connects, checks the server and translates
client errors, ``store`` is ``WeaviateStore`` itself; see ``store`` for the layout in Weaviate.
"""

from embedops.core.stores.weaviate.connection import MIN_SERVER_VERSION
from embedops.core.stores.weaviate.schema import (
    COLLECTION_PREFIX,
    VECTOR_NAME,
    alias_name,
    chunk_uuid,
    collection_name,
)
from embedops.core.stores.weaviate.store import DELETE_BATCH, UPSERT_BATCH, WeaviateStore

__all__ = [
    "COLLECTION_PREFIX",
    "DELETE_BATCH",
    "MIN_SERVER_VERSION",
    "UPSERT_BATCH",
    "VECTOR_NAME",
    "WeaviateStore",
    "alias_name",
    "chunk_uuid",
    "collection_name",
]
