"""``logad retrain`` on real HDFS blocks: a candidate trained on the latest ``sessions`` snapshot is
compared with the promoted model on held-out sessions neither trained on, promoted only when the
rule says so, and every run is recorded in a real MLflow store (SQLite + registry)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
MODEL = "logad-att_gru-hdfs"


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_table, write_table
    from logad.sessions.labels import load_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import read_labels, sessionize

    wh = Warehouse(str(tmp_path_factory.mktemp("retrain") / "wh"))
    ingest_files(spark, wh, {str(SAMPLES / "HDFS_blocks600.log.gz"): "dn1"})
    load_labels(spark, wh, "hdfs", str(SAMPLES / "HDFS_blocks600.anomaly_label.csv.gz"))
    sessions = sessionize(read_table(spark, wh.table("events")), [rules_for("hdfs")],
                          read_labels(spark, wh)).persist()
    write_table(sessions.orderBy("session_id").limit(400), wh.table("sessions"))  # yesterday's 400 blocks
    return wh, sessions


def _client(wh):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{Path(wh.root) / 'models' / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def _retrain(wh, *extra):
    from logad.cli import main

    return main(["retrain", "--warehouse", wh.root, "--unit", "session", "--batch-size", "64",
                 "--num-processes", "1", *extra])


def test_first_retrain_promotes_and_records_the_run(spark, warehouse, capsys):
    from logad.models import registry

    wh, _ = warehouse
    tracking = os.environ.get("MLFLOW_TRACKING_URI")
    assert _retrain(wh, "--epochs", "20", "--patience", "10") == 0
    # the process's MLflow settings are left as they were: a retraining for another warehouse in
    # this process records into its own store (MLflow's fluent API set $MLFLOW_TRACKING_URI, and
    # a second retrain in one session wrote into the first one's store)
    assert os.environ.get("MLFLOW_TRACKING_URI") == tracking
    out = capsys.readouterr().out
    assert "att_gru v1 PROMOTED: no promoted model yet" in out and "MLflow: sqlite:///" in out
    models = Path(wh.root) / "models"
    assert registry.promoted(models, "att_gru") == 1
    report = json.loads((models / "att_gru" / "v1" / "retrain.json").read_text())
    assert report["decision"] == "promoted" and report["current_metrics"] is None
    assert report["candidate_metrics"]["f1"] >= 0.7, report["candidate_metrics"]
    client = _client(wh)
    mv = client.get_model_version_by_alias(MODEL, "champion")
    assert str(mv.version) == "1" and mv.tags["logad.version"] == "1"
    run = client.get_run(mv.run_id)
    assert run.data.tags["logad.decision"] == "promoted"
    assert run.data.tags["logad.data_version"].endswith("tables/sessions@v0")  # Delta's first version
    assert run.data.metrics["candidate_f1"] == pytest.approx(report["candidate_metrics"]["f1"])
    assert run.data.params["epochs"] == "20" and "val_f1" in run.data.metrics  # the training curve
    names = {a.path for a in client.list_artifacts(mv.run_id, "model")}
    assert names == {"model/model.pt", "model/model.json"}


def test_a_worse_candidate_is_rejected_on_sessions_the_current_model_never_saw(spark, warehouse, capsys):
    from logad.io.delta import read_table, write_table
    from logad.models import registry
    from logad.models.retrain import held_out

    wh, sessions = warehouse
    models = Path(wh.root) / "models"
    if registry.promoted(models, "att_gru") != 1:
        pytest.skip("needs the first retrain")
    write_table(sessions, wh.table("sessions"))  # today: all 600 blocks (v1)
    # one epoch at a learning rate that cannot move the weights, another split seed
    assert _retrain(wh, "--epochs", "1", "--lr", "1e-7", "--seed", "1") == 0
    out = capsys.readouterr().out
    assert "att_gru v2 REJECTED: candidate f1" in out and "< current" in out
    assert registry.promoted(models, "att_gru") == 1  # the stream keeps scoring with v1
    report = json.loads((models / "att_gru" / "v2" / "retrain.json").read_text())
    assert report["current_version"] == 1
    assert report["candidate_metrics"]["sessions"] == report["current_metrics"]["sessions"] == report["held_out"]["sessions"]
    # the held-out set: the candidate's test sessions minus all v1 trained or validated on
    cand = json.loads((models / "att_gru" / "v2" / "model.json").read_text())
    cur = json.loads((models / "att_gru" / "v1" / "model.json").read_text())
    held = {r[0] for r in held_out(spark, cand, cur).select("session_id").collect()}
    from logad.models.inputs import split

    seen = {r[0] for r in split(read_table(spark, wh.table("sessions"), 0), "session", 0)
            .where("part != 'test'").select("session_id").collect()}
    test = {r[0] for r in split(read_table(spark, wh.table("sessions"), 1), "session", 1)
            .where("part = 'test'").select("session_id").collect()}
    assert len(held) == report["held_out"]["sessions"] and held == test - seen and held < test
    client = _client(wh)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    v2 = client.get_model_version(MODEL, "2")
    assert v2.tags["logad.decision"] == "rejected" and "champion" not in v2.aliases
    assert client.get_run(v2.run_id).data.metrics["current_f1"] == pytest.approx(report["current_metrics"]["f1"])


def test_the_rule_comes_from_the_spark_conf(spark, warehouse, capsys):
    from logad.models import registry

    wh, _ = warehouse
    models = Path(wh.root) / "models"
    if registry.versions(models, "att_gru") != [1, 2]:
        pytest.skip("needs the first two retrains")
    spark.conf.set("spark.logad.retrain.metric", "auc")
    spark.conf.set("spark.logad.retrain.maxDrop", "0.9")  # anything not far worse goes
    try:
        assert _retrain(wh, "--epochs", "1", "--lr", "1e-7", "--seed", "2") == 0
    finally:
        spark.conf.unset("spark.logad.retrain.metric")
        spark.conf.unset("spark.logad.retrain.maxDrop")
    out = capsys.readouterr().out
    assert "att_gru v3 PROMOTED: candidate auc" in out and " - 0.9" in out
    assert registry.promoted(models, "att_gru") == 3
    assert str(_client(wh).get_model_version_by_alias(MODEL, "champion").version) == "3"
    spark.conf.set("spark.logad.retrain.maxDrop", "lots")
    try:
        assert _retrain(wh, "--epochs", "1") == 2
    finally:
        spark.conf.unset("spark.logad.retrain.maxDrop")
    assert "spark.logad.retrain.maxDrop='lots' is not a number" in capsys.readouterr().err
