"""golden_set_evaluation reads its golden set and qrels split from the space config's migration section."""

from __future__ import annotations

from pathlib import Path

from embedops.core.embedder import SpaceEmbedder
from embedops.core.golden import GoldenSet, write_beir
from embedops.pipelines.execution import execute_job, step_failures
from tests.conftest import make_project

CORPUS = {str(i): (f"Topic {i}", f"Document {i} is about subject number {i}.") for i in range(1, 7)}
# two splits and no test.tsv: which one to use must come from the config
DEV = GoldenSet(CORPUS, {"1": "subject one"}, {"1": {"1": 1}})
TRAIN = GoldenSet(CORPUS, {"2": "subject two", "3": "subject three"}, {"2": {"2": 1}, "3": {"3": 1}})


def test_golden_split_in_the_space_config_picks_the_qrels(tmp_path: Path, minilm: SpaceEmbedder) -> None:
    golden = write_beir(DEV, tmp_path / "golden", split="dev")
    write_beir(TRAIN, golden, split="train")
    spaces_file = tmp_path / "spaces.yaml"
    spaces = "spaces:\n  - name: minilm\n    chunker: {max_tokens: 200}\n"
    spaces_file.write_text(f"{spaces}migration: {{golden: {golden}}}\n")
    project = make_project(tmp_path, spaces_file=spaces_file)
    project.instance.add_dynamic_partitions("spaces", ["minilm"])

    refused = execute_job(project.defs, "golden_set_evaluation_job", project.instance, "minilm", raise_on_error=False)
    assert "cannot tell which qrels split" in step_failures(refused)[0].error

    spaces_file.write_text(f"{spaces}migration: {{golden: {golden}, golden_split: train}}\n")
    result = execute_job(project.defs, "golden_set_evaluation_job", project.instance, "minilm")
    metadata = result.asset_materializations_for_node("golden_set_evaluation")[0].metadata
    assert metadata["queries"].value == 2  # train's two queries, not dev's one
