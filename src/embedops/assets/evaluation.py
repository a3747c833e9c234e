import time

import dagster as dg

from embedops.assets.metadata import listing
from embedops.core.cutover import open_manifest
from embedops.core.evaluation import evaluate_with_serving
from embedops.core.golden import load_beir, slice_golden
from embedops.errors import ConfigError, UnknownSpaceError
from embedops.pipelines.migration import gate_for, migration_config
from embedops.pipelines.partitions import by_space, space_partitions
from embedops.resources import EmbedderResource, VectorStoreResource, WorkspaceResource


class GoldenSetConfig(dg.Config):
    """The golden set (a BEIR folder; default: ``migration.golden`` or EMBEDOPS_GOLDEN) and its qrels split
    (default: ``migration.golden_split``, else test, else the only one), optionally sliced."""

    golden: str | None = None
    split: str | None = None
    queries: int | None = None
    distractors: int = 150
    max_chars: int | None = None


@dg.asset(
    partitions_def=space_partitions,
    # it searches the space's index of every tenant; the cutover gate (cutover_sensor, cutover_job) reads it
    deps=[dg.AssetDep("vector_index", partition_mapping=by_space)],
    group_name="monitoring",
    kinds={"lancedb", "numpy"},
)
def golden_set_evaluation(
    context: dg.AssetExecutionContext,
    config: GoldenSetConfig,
    workspace: WorkspaceResource,
    embedder: EmbedderResource,
    vector_store: VectorStoreResource,
) -> dg.MaterializeResult:
    """recall@10, nDCG@10 and MRR@10 of the space on the golden set, through its index and exactly,
    beside the serving space's; the cutover gate reads these."""
    started = time.monotonic()
    spaces = workspace.spaces()
    space = spaces.get(context.partition_key)
    migration = migration_config(workspace)
    folder = config.golden or migration.golden
    if not folder:
        raise ConfigError(
            "no golden set configured: set 'migration: {golden: DIR}' in the space config, EMBEDOPS_GOLDEN, "
            "or the asset's config 'golden' (a BEIR folder: corpus.jsonl, queries.jsonl, qrels/*.tsv)"
        )
    golden = load_beir(folder, config.split or migration.golden_split)
    if config.queries:
        golden = slice_golden(golden, config.queries, config.distractors, config.max_chars)
    store = vector_store.open()
    manifest = open_manifest(workspace.settings.control_url, spaces, store)
    serving_id = store.get_alias(spaces.alias)
    try:
        serving = spaces.by_id(serving_id) if serving_id else None
    except UnknownSpaceError:
        serving = None
    result, serving_numbers = evaluate_with_serving(
        golden, space, serving, embedder.for_space, workspace.cache(), store, workspace.tables(), manifest
    )
    verdict = gate_for(workspace, vector_store, space, spaces.alias, context.instance)
    is_serving = serving is not None and serving.space_id == space.space_id
    if not verdict.passed and not is_serving:
        context.log.warning(f"{space.name}: {verdict.explain()}")
    shown = ("recall@10", "ndcg@10", "mrr@10")
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in result.numbers().items() if k not in ("space_id", "fingerprint", "golden_name")},
            "golden": golden.name,
            "golden_fingerprint": golden.fingerprint,
            "space_id": space.space_id,
            "serving_space": serving.name if serving else "",
            **{f"serving_{k}": float(serving_numbers[k]) for k in shown if serving_numbers},
            "gate_passed": verdict.passed,
            **listing("gate_reasons",
                      [f"space {space.name!r} serves alias {spaces.alias!r}"] if is_serving else verdict.reasons),
            "duration_s": round(time.monotonic() - started, 3),
        }
    )
