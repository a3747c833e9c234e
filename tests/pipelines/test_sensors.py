from __future__ import annotations

import json

import dagster as dg
import pytest

from embedops.pipelines.sensors import declared_spaces_sensor, tenant_folders_sensor
from tests.conftest import Project


def test_a_new_tenant_folder_adds_a_partition_and_requests_a_run(project: Project) -> None:
    project.write("acme", {"a.md": "# A\n\nalpha"})
    project.source("Not Valid")  # skipped: not a tenant name
    workspace = project.workspace
    context = dg.build_sensor_context(instance=project.instance, resources={"workspace": workspace})
    result = tenant_folders_sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["acme"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["acme"]

    # same folder, same cursor: nothing to do
    project.instance.add_dynamic_partitions("tenants", ["acme"])
    again = tenant_folders_sensor(
        dg.build_sensor_context(instance=project.instance, cursor=result.cursor, resources={"workspace": workspace})
    )
    assert again.run_requests == [] and again.dynamic_partitions_requests == []

    # a changed file re-reads the tenant
    project.write("acme", {"a.md": "# A\n\nalpha, now longer"})
    changed = tenant_folders_sensor(
        dg.build_sensor_context(instance=project.instance, cursor=result.cursor, resources={"workspace": workspace})
    )
    assert [r.partition_key for r in changed.run_requests] == ["acme"]
    assert json.loads(changed.cursor) != json.loads(result.cursor)


def test_declared_spaces_become_partitions(project: Project) -> None:
    context = dg.build_sensor_context(instance=project.instance, resources={"workspace": project.workspace})
    result = declared_spaces_sensor(context)
    assert result.dynamic_partitions_requests[0].partition_keys == project.spaces.names


def test_the_folder_sensor_skips_the_reserved_golden_tenant_visibly(
    project: Project, capfd: pytest.CaptureFixture[str]
) -> None:
    project.write("acme", {"a.md": "# A\n\nalpha"})
    project.write("embedops-golden", {"a.md": "# G\n\nnot a customer"})
    context = dg.build_sensor_context(instance=project.instance, resources={"workspace": project.workspace})
    result = tenant_folders_sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["acme"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["acme"]
    assert "embedops-golden" not in json.loads(result.cursor)
    warning = capfd.readouterr().err  # the sensor's log: a warning in the tick's log in the UI
    assert "WARNING - skipping folder" in warning and "'embedops-golden' is reserved" in warning
