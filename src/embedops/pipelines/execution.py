"""Running a Dagster job in process, and explaining a failed run in one line per failed step.

Every command that runs a job (ingest, backfill, checks, evaluation, cutover) runs it here, so each
run lands in the instance (DAGSTER_HOME) like any other and fails the same way: with a RunFailedError
whose message starts with the asset's own error (embedops' message and its fix), then names the job,
the partition, the step and the run. Dagster's console log is silenced; the traceback stays in the
run's event log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dagster as dg

from embedops.errors import RunFailedError
from embedops.pipelines.liveness import worker_tags

LAUNCHED_BY = "embedops/launched_by"  # who started a run: cli, sensor:NAME, schedule:NAME, backfill:ID, ui
# The event log keeps every event; the console stays silent, so a failed run prints only our one line.
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# "embedops.errors.ModelLoadError: msg" -> "msg"; "json.decoder.JSONDecodeError: msg" -> "JSONDecodeError: msg"
_OWN = re.compile(r"^embedops(?:\.\w+)+: ")
_QUALIFIED = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*: )")


@dataclass(frozen=True)
class StepFailure:
    """One failed step: its key, and the asset's own error as one line (``Class: message``)."""

    step: str
    error: str
    description: str | None = None  # a dagster Failure's description, when the step raised one


def step_failures(result: dg.ExecuteInProcessResult) -> list[StepFailure]:
    """The failed steps of a run, each with the error the asset raised (not Dagster's wrapper)."""
    failures = []
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        error = data.error
        # Dagster wraps the asset's exception; the first error below its wrappers is the asset's own,
        # with embedops' message and fix (its own cause, say a loader's exception, is quoted in it)
        while error is not None and (error.cls_name or "").startswith("Dagster") and error.cause is not None:
            error = error.cause
        text = one_line(_QUALIFIED.sub("", _OWN.sub("", error.message))) if error is not None else "the step failed"
        user = data.user_failure_data
        failures.append(StepFailure(event.step_key or "?", text, user.description if user else None))
    return failures


def launched_by(kind: str, name: str | None = None) -> dict[str, str]:
    """The tag that says who started a run, for the runs list: ``cli``, ``sensor:cutover_sensor``, ..."""
    return {LAUNCHED_BY: f"{kind}:{name}" if name else kind}


def launcher_of(tags: dict[str, str]) -> dict[str, str]:
    """``launched_by`` for a queued run that does not say: a backfill, a sensor, a schedule, else the UI."""
    for dagster_tag, kind in (("dagster/backfill", "backfill"), ("dagster/sensor_name", "sensor"),
                              ("dagster/schedule_name", "schedule")):
        if tags.get(dagster_tag):
            return launched_by(kind, tags[dagster_tag])
    return launched_by("ui")


def one_line(text: str) -> str:
    return " ".join(text.split())


def execute_job(
    defs: dg.Definitions,
    job: str,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
    *,
    tags: dict[str, str] | None = None,
    run_config: dict[str, Any] | None = None,
    check_keys: set[dg.AssetCheckKey] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Run ``job`` (only ``check_keys`` of it, when given) in process on ``instance``.

    The run carries this process's ``worker_tags``, so the run monitor can fail it if the process dies,
    and ``embedops/launched_by: cli`` unless ``tags`` say otherwise.
    A failed run raises RunFailedError unless ``raise_on_error`` is false; then the caller reads
    ``step_failures(result)``.
    """
    job_def = defs.resolve_job_def(job)
    if check_keys is not None:
        job_def = job_def.get_subset(asset_check_selection=check_keys)
    result = job_def.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        tags={**worker_tags(), **launched_by("cli"), **(tags or {})},
        run_config={**(run_config or {}), **QUIET},
        raise_on_error=False,
    )
    if not result.success and raise_on_error:
        raise RunFailedError.of(job, partition_key, result.run_id, step_failures(result))
    return result
