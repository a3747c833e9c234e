"""What Dagster recorded of some runs: each run's own start-to-end time and each step's ``duration_s`` metadata.

``python -m bench.run_steps DAGSTER_HOME RUN_ID...`` prints one JSON object. It runs in a process of its own, with
the design under test on PYTHONPATH, because an instance's dagster.yaml names that design's run coordinator and
launcher; it reads Dagster's records only, nothing of embedops.
"""

from __future__ import annotations

import json
import sys
import warnings


def read(dagster_home: str, run_ids: list[str]) -> dict:
    """{"runs": [{run_id, job, seconds}], "steps": {asset key: duration_s summed over the runs}}."""
    warnings.filterwarnings("ignore")
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef  # no public constructor from a folder

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(dagster_home))
    runs, steps = [], {}
    for run_id in run_ids:
        record = instance.get_run_record_by_id(run_id)
        seconds = None
        if record is not None and record.start_time and record.end_time:
            seconds = round(record.end_time - record.start_time, 3)
        runs.append({"run_id": run_id, "job": record.dagster_run.job_name if record else None, "seconds": seconds})
        events = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
                                              limit=10_000).records
        for event in events:
            materialization = event.asset_materialization
            if materialization is None:
                continue
            value = materialization.metadata.get("duration_s")
            if value is None:
                continue
            key = materialization.asset_key.to_user_string()
            steps[key] = round(steps.get(key, 0.0) + float(value.value), 3)
    return {"runs": runs, "steps": steps}


if __name__ == "__main__":
    print(json.dumps(read(sys.argv[1], sys.argv[2:])))
