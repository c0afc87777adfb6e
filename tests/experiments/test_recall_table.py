"""The recall table on a tiny synthetic catalog: models train, the graph learns the change, checkpoints
are reused."""

from __future__ import annotations

from experiments.recall_table import evaluate_models, markdown_table
from gnn.config import ExperimentConfig, TrainConfig
from tests.gnn.synthetic import synthetic_export


def test_models_train_and_the_graph_learns_the_change(tmp_path) -> None:
    export, feats = synthetic_export(per_cell=6)
    config = ExperimentConfig(train=TrainConfig(epochs=40, batch_size=64, negatives=32, patience=40, lr=1e-2))
    config.model.hidden = 32
    report = evaluate_models(
        export,
        feats,
        config,
        ("image_only", "graph_catalog"),
        tmp_path,
        log=lambda s: None,
    )
    graph, image = report.recall["graph_catalog"]["all"], report.recall["image_only"]["all"]
    assert graph["id_R@1"] > image["id_R@1"] + 30  # image-only finds the same colour, not the target
    # A second run reuses the checkpoint made with the same config and data.
    again = evaluate_models(
        export, feats, config, ("graph_catalog",), tmp_path, log=lambda s: None
    )
    assert again.training["graph_catalog"]["reused_checkpoint"]
    assert again.recall["graph_catalog"] == report.recall["graph_catalog"]
    assert "at most 20 a group" in markdown_table(report)


def test_two_stage_rows_rerank_the_graph_model_and_off_they_are_its_numbers(tmp_path) -> None:
    export, feats = synthetic_export(per_cell=6)
    config = ExperimentConfig(train=TrainConfig(epochs=3, batch_size=64, negatives=32, lr=1e-2))
    config.model.hidden = 16
    config.ranker.candidates = 30
    models = ("graph_catalog", "two_stage_catalog", "two_stage_catalog_embedding_only",
              "two_stage_catalog_facts_only")
    report = evaluate_models(export, feats, config, models, tmp_path, log=lambda s: None)
    graph, two = report.recall["graph_catalog"]["all"], report.recall["two_stage_catalog"]["all"]
    assert two["id_R@1"] > graph["id_R@1"]  # a three-epoch R-GCN leaves much to the facts
    assert report.recall["two_stage_catalog_facts_only"]["all"]["id_R@10"] > graph["id_R@10"]
    ranker = report.rankers["two_stage_catalog"]
    assert ranker["stage_one"] == "graph_catalog" and ranker["weights"]["has_added"] > 0
    assert set(report.rankers["two_stage_catalog_embedding_only"]["weights"]) == {
        "embedding_score", "embedding_rank", "image_similarity", "look_rank"}
    assert "two_stage_catalog" in markdown_table(report)

    config.ranker.enabled = False
    off = evaluate_models(export, feats, config, ("two_stage_catalog",), tmp_path, log=lambda s: None)
    assert off.recall["two_stage_catalog"] == report.recall["graph_catalog"]
