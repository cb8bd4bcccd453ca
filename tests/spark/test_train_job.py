"""``logad train`` on real HDFS blocks: files -> events + templates -> sessions (Delta) -> a pinned
version -> petastorm -> TorchDistributor (2 gloo processes) -> a versioned artifact, scored on
unseen blocks by the Spark pandas UDF the stream uses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_table, write_table
    from logad.sessions.labels import load_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import read_labels, sessionize

    wh = Warehouse(str(tmp_path_factory.mktemp("train") / "wh"))
    counts = ingest_files(spark, wh, {str(SAMPLES / "HDFS_blocks600.log.gz"): "dn1"})
    assert counts["events"] == 11_198 and counts["rejects"] == 0
    load_labels(spark, wh, "hdfs", str(SAMPLES / "HDFS_blocks600.anomaly_label.csv.gz"))
    # a block is one session: LogHub labels whole blocks, which here span up to two days
    sessions = sessionize(read_table(spark, wh.table("events")), [rules_for("hdfs")],
                          read_labels(spark, wh))
    write_table(sessions, wh.table("sessions"))  # version 0: all 600 blocks
    write_table(sessions.orderBy("session_id").limit(100), wh.table("sessions"))  # version 1: fewer
    return wh


def test_train_reads_the_pinned_version_trains_on_two_ranks_and_registers_a_model(spark, warehouse, capsys):
    from logad.cli import main
    from logad.io.delta import read_small

    argv = ["train", "--warehouse", warehouse.root, "--version", "0", "--unit", "session", "--epochs", "25",
            "--batch-size", "64", "--patience", "10", "--num-processes", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    model_dir = Path(warehouse.root) / "models" / "att_gru" / "v1"
    summary = json.loads((model_dir / "model.json").read_text())
    assert f"att_gru v1 (att_gru): {model_dir / 'model.pt'}" in out and "test" in out
    # the pinned version, not the latest (which holds 100 sessions): 600 blocks, 171 abnormal
    assert summary["data_version"].endswith("tables/sessions@v0")
    assert sum(summary["sessions"].values()) == 600
    assert sum(v for k, v in summary["sessions"].items() if k.endswith("abnormal")) == 171
    assert summary["code_version"]
    # two TorchDistributor ranks that ended with the same parameters
    assert len(summary["digests"]) == 2 and len(set(summary["digests"])) == 1
    # progress per epoch, and a model that learned: unseen test blocks
    assert summary["history"] and all("val_f1" in h for h in summary["history"])
    m = summary["metrics"]
    assert m["test_sessions"] >= 100 and m["test_anomalies"] >= 20
    assert m["test_auc"] >= 0.85 and m["test_f1"] >= 0.75, m
    # the word2vec vectors, in the artifact and in the template_vectors table
    vectors = read_small(spark, warehouse.table("template_vectors")).to_pandas()
    assert set(vectors["model_version"]) == {1} and len(vectors) == summary["templates"] > 20
    assert not list((Path(warehouse.root) / "models" / "att_gru").glob("checkpoint-*"))  # done: no leftovers


def test_the_spark_udf_scores_like_the_model_called_directly(spark, warehouse):
    import torch

    from logad.io.delta import read_table
    from logad.models.fit import load_artifact
    from logad.models.inference import score_inputs
    from logad.models.inputs import inputs

    artifact = Path(warehouse.root) / "models" / "att_gru" / "v1" / "model.pt"
    if not artifact.exists():
        pytest.skip("needs the model of the training test")
    model, meta = load_artifact(artifact)
    assert meta["data_version"].endswith("@v0") and len(meta["words"]) == meta["word_vectors"].shape[0] > 20
    vocab = {t: i + 2 for i, t in enumerate(meta["template_ids"])}
    rows = inputs(read_table(spark, warehouse.table("sessions"), 0).limit(150), vocab, unit="session")
    got = score_inputs(rows, str(artifact)).orderBy("session_id").toPandas()
    x = torch.as_tensor(np.stack(got["x"].to_numpy()), dtype=torch.long)
    with torch.no_grad():
        logits, _ = model(x, torch.as_tensor(got["length"].to_numpy(copy=True)))
    direct = torch.softmax(logits, -1)[:, 1].numpy()
    assert len(got) == 150 and np.allclose(got["score"].to_numpy(), direct, atol=1e-5)
    assert 0 < (got["score"] >= meta["threshold"]).sum() < 150


def test_a_part_without_both_classes_is_a_clear_error(spark, warehouse, capsys):
    from logad.cli import main

    # version 1 holds 100 sessions: a 0.97 train fraction leaves a test part without an anomaly
    argv = ["train", "--warehouse", warehouse.root, "--unit", "session", "--epochs", "1",
            "--train-fraction", "0.97", "--valid-fraction", "0.02"]
    assert main(argv) == 2
    assert "abnormal hdfs sessions in sessions v1" in capsys.readouterr().err
