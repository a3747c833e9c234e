from __future__ import annotations

import dagster as dg

from embedops.core.embedder import SpaceEmbedder
from embedops.core.spaces import SpaceSpec


class EmbedderResource(dg.ConfigurableResource):
    """Embedding models, loaded offline once per process and shared by every asset that needs them."""

    batch_size: int = 32

    def for_space(self, space: SpaceSpec) -> SpaceEmbedder:
        return SpaceEmbedder(space, batch_size=self.batch_size)
