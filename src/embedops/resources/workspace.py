from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path

import dagster as dg

from embedops.core.cache import EmbeddingCache
from embedops.core.dataplane import storage_options
from embedops.core.registry import Registry
from embedops.core.settings import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_MODEL_FAILURE_SHARE,
    DEFAULT_TABLE_RETENTION_DAYS,
    Settings,
)
from embedops.core.spaces import SpacesConfig, load_config
from embedops.core.tables import TableStore


class WorkspaceResource(dg.ConfigurableResource):
    """EMBEDOPS_HOME and what lives in it: materialized tables, the embedding cache, the registry, and
    the space config.

    The space config is read once per resource instance. Dagster builds the instance anew for each run
    and sensor tick (and a command builds its Definitions once), so a run reads the file once and an
    edited file applies from the next run on, also in a long-lived code server.
    """

    home: str
    sources_root: str
    spaces_file: str | None = None
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    max_model_failure_share: float = DEFAULT_MAX_MODEL_FAILURE_SHARE
    data_url: str = ""
    table_retention_days: float = DEFAULT_TABLE_RETENTION_DAYS

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkspaceResource:
        return cls(
            home=str(settings.home),
            sources_root=str(settings.sources_root),
            spaces_file=str(settings.spaces_file) if settings.spaces_file else None,
            max_document_bytes=settings.max_document_bytes,
            max_model_failure_share=settings.max_model_failure_share,
            data_url=settings.data_url,
            table_retention_days=settings.table_retention_days,
        )

    @cached_property
    def settings(self) -> Settings:
        return Settings(
            home=Path(self.home),
            sources_root=Path(self.sources_root),
            spaces_file=Path(self.spaces_file) if self.spaces_file else None,
            max_document_bytes=self.max_document_bytes,
            max_model_failure_share=self.max_model_failure_share,
            data_url=self.data_url,
            table_retention_days=self.table_retention_days,
        )

    @cached_property
    def _spaces(self) -> SpacesConfig:
        return load_config(self.settings.spaces_file)

    def spaces(self) -> SpacesConfig:
        """The space config (with its ``migration:`` section), as this run or command first read it."""
        return self._spaces

    def tables(self) -> TableStore:
        """The materialized tables, under EMBEDOPS_DATA_URL."""
        root = self.settings.data_root
        retention = timedelta(days=self.settings.table_retention_days)
        return TableStore(root, storage_options=storage_options(root), retention=retention)

    def cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.settings.data_root)

    def registry(self) -> Registry:
        return Registry(self.settings.registry_path)
