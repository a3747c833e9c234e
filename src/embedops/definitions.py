"""The one place Definitions is assembled."""

from __future__ import annotations

import os

import dagster as dg

from embedops.assets.chunks import document_chunks
from embedops.assets.documents import source_documents
from embedops.assets.embeddings import chunk_embeddings
from embedops.assets.index import vector_index
from embedops.core.settings import Settings
from embedops.pipelines.jobs import embed_space_job, source_documents_job
from embedops.pipelines.sensors import declared_spaces_sensor, tenant_folders_sensor
from embedops.resources import EmbedderResource, VectorStoreResource, WorkspaceResource


def vector_store_resource(settings: Settings) -> VectorStoreResource:
    """LanceDB under EMBEDOPS_HOME, or Weaviate when EMBEDOPS_VECTOR_STORE=weaviate."""
    if os.environ.get("EMBEDOPS_VECTOR_STORE", "lancedb") == "weaviate":
        return VectorStoreResource(
            kind="weaviate",
            weaviate_url=dg.EnvVar("EMBEDOPS_WEAVIATE_URL"),
            weaviate_grpc_port=int(os.environ.get("EMBEDOPS_WEAVIATE_GRPC_PORT", "50051")),
            weaviate_api_key=dg.EnvVar("EMBEDOPS_WEAVIATE_API_KEY"),
        )
    return VectorStoreResource(kind="lancedb", lance_dir=str(settings.lance_dir))


def build_defs(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[source_documents, document_chunks, chunk_embeddings, vector_index],
        jobs=[source_documents_job, embed_space_job],
        sensors=[tenant_folders_sensor, declared_spaces_sensor],
        resources={
            "workspace": WorkspaceResource.from_settings(settings),
            "embedder": EmbedderResource(),
            "vector_store": vector_store_resource(settings),
        },
    )


defs = build_defs()
