"""Partitions: tenants are discovered, spaces are declared; both are dynamic so a new tenant folder
or a new space in the config shows up in the UI without a code change."""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg

from embedops.core.spaces import SpacesConfig, SpaceSpec
from embedops.core.tenants import validate_tenant
from embedops.errors import UnknownTenantError
from embedops.resources import WorkspaceResource

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


def tenant_space(context: Any, workspace: WorkspaceResource) -> tuple[str, SpaceSpec]:
    """The tenant and the space of a tenant x space run or check, both declared.

    A partition added by hand in the UI ("Add a partition") names neither: a tenant is declared by a
    folder under the sources root or a registered source folder, a space by the space config. Either
    missing fails the step before it writes anything.
    """
    key = context.partition_key
    if not isinstance(key, dg.MultiPartitionKey):  # a checks-only run may see the key as a string
        key = tenant_space_partitions.get_partition_key_from_str(str(key))
    dims = key.keys_by_dimension
    space = workspace.spaces().get(dims["space"])
    return declared_tenant(workspace, dims["tenant"]), space


def declared_tenant(workspace: WorkspaceResource, tenant: str) -> str:
    """``tenant`` if it is declared (a registered source folder, or a folder under the sources root)."""
    root = workspace.settings.sources_root
    if validate_tenant(tenant) in workspace.registry().tenants() or (root / tenant).is_dir():
        return tenant
    raise UnknownTenantError(
        f"tenant {tenant!r} is not declared: no folder {root / tenant} and no registered source folder; "
        f"create the folder (tenant_folders_sensor adds the partition) or run "
        f"`embedops ingest --tenant {tenant} --source DIR`"
    )


def register_partitions(instance: dg.DagsterInstance, tenants: list[str], spaces: SpacesConfig) -> None:
    """Make sure the partitions exist before runs are launched for them."""
    for tenant in tenants:
        validate_tenant(tenant)
    for name, keys in (("tenants", tenants), ("spaces", spaces.names)):
        new = [k for k in keys if not instance.has_dynamic_partition(name, k)]
        if new:
            instance.add_dynamic_partitions(name, new)
