"""The one place Definitions is assembled."""

from __future__ import annotations

import os
import warnings

import dagster as dg

from embedops.assets.checks import MONITORING_CHECKS
from embedops.assets.chunks import document_chunks
from embedops.assets.documents import source_documents
from embedops.assets.embeddings import chunk_embeddings
from embedops.assets.evaluation import golden_set_evaluation
from embedops.assets.index import vector_index
from embedops.core.memory import bound_heap
from embedops.core.settings import Settings, refuse_old_layout
from embedops.pipelines.backfill import space_backfill_sensor
from embedops.pipelines.cdc import (
    cdc_sensor,
    table_changes_job,
    table_source_checks_job,
    table_source_checks_schedule,
)
from embedops.pipelines.jobs import embed_space_job, monitoring_checks_job, source_checks_job, source_documents_job
from embedops.pipelines.migration import cutover_job, cutover_sensor, dual_write_sensor, golden_set_evaluation_job
from embedops.pipelines.monitoring import (
    nightly_reconciliation_schedule,
    nightly_source_checks_schedule,
    nightly_source_verify_schedule,
    pager_sensor,
)
from embedops.pipelines.sensors import declared_spaces_sensor, tenant_folders_sensor
from embedops.resources import EmbedderResource, VectorStoreResource, WorkspaceResource
from embedops.resources.monitoring import MonitoringResource
from embedops.resources.pager import PagerResource
from embedops.resources.workspace import database_url_field

# Dagster 1.13 warns that sensor `owners` is beta each time it copies a sensor to bind resources
# (SensorDefinition.with_attributes passes owners=None), in every process that loads these Definitions;
# the project sets no owners.
warnings.filterwarnings("ignore", "Parameter `owners` of initializer `SensorDefinition", dg.BetaWarning)


def vector_store_resource(settings: Settings) -> VectorStoreResource:
    """LanceDB under EMBEDOPS_DATA_URL, or Weaviate when EMBEDOPS_VECTOR_STORE=weaviate."""
    if os.environ.get("EMBEDOPS_VECTOR_STORE", "lancedb") == "weaviate":
        return VectorStoreResource(
            kind="weaviate",
            weaviate_url=dg.EnvVar("EMBEDOPS_WEAVIATE_URL"),
            weaviate_grpc_port=int(os.environ.get("EMBEDOPS_WEAVIATE_GRPC_PORT", "50051")),
            # an anonymous server needs no key; a key, when set, only ever travels as an EnvVar
            weaviate_api_key=(
                dg.EnvVar("EMBEDOPS_WEAVIATE_API_KEY") if os.environ.get("EMBEDOPS_WEAVIATE_API_KEY") else None
            ),
        )
    aliases = database_url_field(settings) or settings.control_url  # LanceDB's aliases: in the control database
    return VectorStoreResource(kind="lancedb", lance_uri=settings.lance_uri, database_url=aliases)


def pager_resource() -> PagerResource:
    """PagerDuty Events API v2 at EMBEDOPS_PAGER_URL, routing key from EMBEDOPS_PAGER_ROUTING_KEY; off without a URL."""
    url = os.environ.get("EMBEDOPS_PAGER_URL", "")
    if not url:
        return PagerResource()
    return PagerResource(url=url, routing_key=dg.EnvVar("EMBEDOPS_PAGER_ROUTING_KEY"))


def build_defs(settings: Settings | None = None, embedder: EmbedderResource | None = None) -> dg.Definitions:
    """The Definitions; ``embedder`` replaces the one the settings give (for example one whose ``ray_cluster`` is
    a dagster-ray resource such as ``dagster_ray.kuberay.KubeRayCluster``)."""
    settings = settings or Settings.from_env()
    refuse_old_layout(settings)
    return dg.Definitions(
        assets=[source_documents, document_chunks, chunk_embeddings, vector_index, golden_set_evaluation],
        asset_checks=MONITORING_CHECKS,
        jobs=[source_documents_job, embed_space_job, monitoring_checks_job, source_checks_job, cutover_job,
              golden_set_evaluation_job, table_changes_job, table_source_checks_job],
        schedules=[nightly_reconciliation_schedule, nightly_source_checks_schedule, nightly_source_verify_schedule,
                   table_source_checks_schedule],
        sensors=[tenant_folders_sensor, declared_spaces_sensor, dual_write_sensor, cutover_sensor,
                 space_backfill_sensor, pager_sensor, cdc_sensor],
        resources={
            "workspace": WorkspaceResource.from_settings(settings),
            "embedder": embedder or EmbedderResource.from_settings(settings),
            "vector_store": vector_store_resource(settings),
            "monitoring": MonitoringResource(home=str(settings.home), database_url=database_url_field(settings)),
            "pager": pager_resource(),
        },
    )


bound_heap()  # every Dagster process that runs a step loads this module first
defs = build_defs()
