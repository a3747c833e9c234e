"""Data quality of the materialized tables with Great Expectations (1.x, ephemeral context).

Nothing leaves the machine: analytics are switched off before GX is imported and the context is
ephemeral (no project folder, no cloud). The GX result summary goes into the check metadata.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

from embedops.core.monitoring import Outcome
from embedops.core.tenants import _TENANT

os.environ["GX_ANALYTICS_ENABLED"] = "false"


def _suite(name: str, expectations: list[Any]) -> Any:
    import great_expectations as gx

    return gx.ExpectationSuite(name=name, expectations=expectations)


def run_suite(check: str, table: pa.Table, id_column: str, expectations: list[Any], limit: int = 50) -> Outcome:
    """Validate ``table`` against ``expectations`` in a fresh ephemeral context; failing rows by id."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("embedops")
        .add_dataframe_asset(check)
        .add_batch_definition_whole_dataframe("latest")
        .get_batch(batch_parameters={"dataframe": table.to_pandas()})
    )
    result = batch.validate(
        _suite(check, expectations),
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [id_column]},
    )
    summary, failing_ids = [], set()
    for r in result.results:
        ids = sorted({str(row.get(id_column)) for row in (r.result.get("unexpected_index_list") or [])})
        failing_ids.update(ids)
        summary.append({
            "expectation": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column"),
            "success": bool(r.success),
            "unexpected_count": int(r.result.get("unexpected_count") or 0),
            "unexpected_ids": ids[:20],
            "error": (r.exception_info or {}).get("exception_message"),
        })
    stats = dict(result.statistics)
    failed = [s for s in summary if not s["success"]]
    description = (
        f"GX: {stats['successful_expectations']}/{stats['evaluated_expectations']} expectations met on "
        f"{table.num_rows} rows" + "".join(
            f"; {s['expectation']}({s['column']}) failed for {s['unexpected_count']} row(s)" for s in failed
        )
    )
    return Outcome(
        check, passed=bool(result.success), description=description, ids=sorted(failing_ids)[:limit],
        metadata={"gx_success": bool(result.success), "gx_statistics": stats, "gx_results": summary,
                  "rows": table.num_rows},
    )


def _common(id_column: str, tenant: str) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column=id_column),
        gxe.ExpectColumnValuesToBeUnique(column=id_column),
        gxe.ExpectColumnValuesToNotBeNull(column="text"),
        gxe.ExpectColumnValuesToMatchRegex(column="text", regex=r"\S"),
        gxe.ExpectColumnValuesToBeInSet(column="tenant", value_set=[tenant]),
        gxe.ExpectColumnValuesToMatchRegex(column="tenant", regex=_TENANT.pattern),
    ]


def documents_quality(table: pa.Table, tenant: str, limit: int = 50) -> Outcome:
    """source_documents: unique ids, non-empty text, the partition's (valid) tenant on every row."""
    return run_suite("source_documents_quality", table, "doc_id", _common("doc_id", tenant), limit)


def chunks_quality(table: pa.Table, tenant: str, max_tokens: int, limit: int = 50) -> Outcome:
    """document_chunks: the same, plus every chunk's token count within the model's maximum sequence."""
    import great_expectations.expectations as gxe

    expectations = [
        *_common("chunk_id", tenant),
        gxe.ExpectColumnValuesToBeBetween(column="token_count", min_value=1, max_value=max_tokens),
    ]
    outcome = run_suite("document_chunks_quality", table, "chunk_id", expectations, limit)
    outcome.metadata["max_sequence_length"] = max_tokens
    return outcome
