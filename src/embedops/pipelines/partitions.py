"""Partitions: tenants are discovered, spaces are declared; both are dynamic so a new tenant folder
or a new space in the config shows up in the UI without a code change."""

from __future__ import annotations

import warnings

import dagster as dg

from embedops.core.spaces import SpacesConfig, SpaceSpec
from embedops.core.tenants import validate_tenant

tenant_partitions = dg.DynamicPartitionsDefinition(name="tenants")
space_partitions = dg.DynamicPartitionsDefinition(name="spaces")
tenant_space_partitions = dg.MultiPartitionsDefinition({"tenant": tenant_partitions, "space": space_partitions})

# document_chunks (tenant x space) reads source_documents (tenant); golden_set_evaluation (space) reads
# vector_index (tenant x space) of every tenant; the mapping is marked beta
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    by_tenant = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="tenant")
    by_space = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="space")


def tenant_space_key(tenant: str, space: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"tenant": validate_tenant(tenant), "space": space})


def split_key(context: dg.AssetExecutionContext, spaces: SpacesConfig) -> tuple[str, SpaceSpec]:
    """The tenant and the space of a tenant x space run, validated."""
    key = context.partition_key
    assert isinstance(key, dg.MultiPartitionKey), f"expected a tenant x space key, got {key!r}"
    dims = key.keys_by_dimension
    return validate_tenant(dims["tenant"]), spaces.get(dims["space"])


def register_partitions(instance: dg.DagsterInstance, tenants: list[str], spaces: SpacesConfig) -> None:
    """Make sure the partitions exist before runs are launched for them."""
    for tenant in tenants:
        validate_tenant(tenant)
    for name, keys in (("tenants", tenants), ("spaces", spaces.names)):
        new = [k for k in keys if not instance.has_dynamic_partition(name, k)]
        if new:
            instance.add_dynamic_partitions(name, new)
