"""Dagster resources: thin, typed handles on the embedded state, the models and the vector store."""

from embedops.resources.embedder import EmbedderResource
from embedops.resources.vector_store import VectorStoreResource
from embedops.resources.workspace import WorkspaceResource

__all__ = ["EmbedderResource", "VectorStoreResource", "WorkspaceResource"]
