from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from embedops.core.embedder import Embedder, SpaceEmbedder
from embedops.core.ingest import Chunker, LocalChunker
from embedops.core.settings import (
    DEFAULT_RAY_ACTORS,
    DEFAULT_RAY_BATCH_SIZE,
    DEFAULT_RAY_CHUNK_MIN_DOCUMENTS,
    Settings,
)
from embedops.core.spaces import SpaceSpec


class EmbedderResource(dg.ConfigurableResource):
    """Embedding models, loaded offline once per process and shared by every asset that needs them; with a
    ``ray_address``, the texts to embed go to an actor pool of model replicas on that Ray cluster instead."""

    batch_size: int = 32
    ray_address: str = ""  # empty: in process; "auto", "127.0.0.1:6379", "ray://head:10001": a Ray cluster
    ray_actors: int = DEFAULT_RAY_ACTORS  # model replicas in the pool (one GPU or one CPU each)
    ray_batch_size: int = DEFAULT_RAY_BATCH_SIZE  # texts per batch sent to one replica
    # below this many documents to chunk, chunking stays in the run's process even with a cluster
    ray_chunk_min_documents: int = DEFAULT_RAY_CHUNK_MIN_DOCUMENTS
    # or a dagster-ray resource (a ``dagster_ray.RayResource``: ``KubeRayCluster``, ``LocalRay``, ...): dagster-ray
    # creates and connects its cluster as the step starts, and that cluster embeds (its address wins)
    ray_cluster: dg.ConfigurableResource | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbedderResource:
        return cls(ray_address=settings.ray_address, ray_actors=settings.ray_actors,
                   ray_batch_size=settings.ray_batch_size, ray_chunk_min_documents=settings.ray_chunk_min_documents)

    def for_space(self, space: SpaceSpec) -> SpaceEmbedder:
        """The space's model in this process (queries, checks, chunking's token counts)."""
        return SpaceEmbedder(space, batch_size=self.batch_size)

    def for_corpus(self, space: SpaceSpec, log: Callable[[str], None] | None = None) -> Embedder:
        """The embedder of a tenant's chunks: in process, or on the Ray cluster when ``ray_address`` is set
        (``log`` hears its progress)."""
        address = self._ray_address()
        if not address:
            return self.for_space(space)
        from embedops.core.distributed import RayEmbedder  # imports ray: only when a cluster is configured

        return RayEmbedder(space, address, self.ray_actors, self.ray_batch_size, log=log)

    def chunker(self, space: SpaceSpec, log: Callable[[str], None] | None = None) -> Chunker:
        """The chunker of a tenant's documents: in process, or on the Ray cluster when one is configured and there
        are at least ``ray_chunk_min_documents`` documents to chunk (``log`` hears its progress)."""
        local = LocalChunker.of(space, self.for_space(space), log)
        address = self._ray_address()
        if not address:
            return local
        from embedops.core.distributed import RayChunker  # imports ray: only when a cluster is configured

        return RayChunker(space, address, local, self.ray_chunk_min_documents, log=log)

    def _ray_address(self) -> str:
        """The Ray cluster's address; empty for none (everything in process)."""
        if self.ray_cluster is not None:  # LocalRay has no address: it started a cluster in this process
            return getattr(self.ray_cluster, "ray_address", None) or "local"
        return self.ray_address
