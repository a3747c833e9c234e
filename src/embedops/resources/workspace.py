from __future__ import annotations

import os
from contextlib import AbstractContextManager
from datetime import timedelta
from functools import cached_property
from pathlib import Path

import dagster as dg

from embedops.core.cache import EmbeddingCache
from embedops.core.dataplane import storage_options
from embedops.core.leases import Lease, Leases
from embedops.core.registry import Registry
from embedops.core.settings import (
    DEFAULT_LEASE_WAIT_S,
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_MODEL_FAILURE_SHARE,
    DEFAULT_TABLE_RETENTION_DAYS,
    Settings,
)
from embedops.core.spaces import SpacesConfig, load_config
from embedops.core.tables import TableStore
from embedops.resources.vector_store import field_value


class WorkspaceResource(dg.ConfigurableResource):
    """EMBEDOPS_HOME and what lives in it: materialized tables, the embedding cache and the space config;
    and in the control database (EMBEDOPS_DATABASE_URL) the registry and the run leases.

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
    # EMBEDOPS_DATABASE_URL (an EnvVar when it comes from there: it may hold a password); empty: SQLite in home
    database_url: str = ""
    lease_wait_s: float = DEFAULT_LEASE_WAIT_S

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
            database_url=database_url_field(settings),
            lease_wait_s=settings.lease_wait_s,
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
            database_url=field_value(self.database_url) or "",
            lease_wait_s=self.lease_wait_s,
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
        return Registry(self.settings.control_url)

    def lease(
        self, key: str, run_id: str, instance: dg.DagsterInstance | None = None
    ) -> AbstractContextManager[Lease]:
        """Hold the lease on ``key`` (such as ``tables/document_chunks/acme/docs-v1``) for run ``run_id``
        while the block runs, waiting up to ``lease_wait_s`` for another run to let go (PartitionBusyError).

        With the Dagster ``instance``, a lease held by a run that is over (finished, or its process gone)
        is taken at once rather than after its expiry.
        """
        from embedops.pipelines.liveness import run_is_over

        is_over = (lambda holder: run_is_over(instance, holder)) if instance is not None else None
        return Leases(self.settings.control_url).held(key, run_id, self.lease_wait_s, is_over=is_over)


def database_url_field(settings: Settings) -> str:
    """The settings' EMBEDOPS_DATABASE_URL for a resource field: an EnvVar when it came from the environment,
    so that the URL's password never shows in the run's config."""
    url = settings.database_url
    if url and os.environ.get("EMBEDOPS_DATABASE_URL") == url:
        return dg.EnvVar("EMBEDOPS_DATABASE_URL")
    return url
