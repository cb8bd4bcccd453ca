"""Every notebook runs as a plain Python script (as CI does) on a small real warehouse: 600 HDFS
blocks and the committed Spark lab sample, ingested from files (raw_logs, events, templates),
labelled and cut into sessions. Notebook 04 trains a model that 05 then scores and explains."""

from __future__ import annotations

import logging
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
SAMPLES = ROOT / "data" / "samples"

# what each notebook must print (a notebook that breaks, or stops short, fails here)
EXPECT = {
    "01_raw_logs.py": ["'rows': ", "logs.files"],
    "02_events_and_templates.py": ["templates in use", "plot: ", "top_templates.png"],
    "03_task_workflows.py": ["share interleaved", "spark_session_length.png", "label 1 (spark:truth.csv.gz)",
                             "Running task"],
    "04_train_and_evaluate.py": ["att_gru v1 from", "test sessions", "_loss.png", "_pr.png", "_confusion.png",
                                "_attention.png"],
    "05_investigate_an_alert.py": ["score ", ">> ", "alert_top_events.png"],
}


@pytest.fixture(scope="module")
def small_warehouse(spark, tmp_path_factory):
    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_table, write_table
    from logad.sessions.labels import load_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import read_labels, sessionize

    wh = Warehouse(str(tmp_path_factory.mktemp("notebooks") / "wh"))
    lab = SAMPLES / "spark_lab"
    files = {str(SAMPLES / "HDFS_blocks600.log.gz"): "dn1",
             **{str(p): p.parent.name for p in sorted(lab.glob("logs/worker-*/*.log.gz"))}}
    ingest_files(spark, wh, files)
    load_labels(spark, wh, "hdfs", str(SAMPLES / "HDFS_blocks600.anomaly_label.csv.gz"))
    load_labels(spark, wh, "spark", str(lab / "truth.csv.gz"))
    write_table(sessionize(read_table(spark, wh.table("events")),
                           [rules_for("hdfs"), rules_for("spark")], read_labels(spark, wh)),
                wh.table("sessions"))
    return wh


def test_every_notebook_is_covered():
    assert {p.name for p in NOTEBOOKS} == set(EXPECT)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_as_a_script(notebook, spark, small_warehouse, monkeypatch, capsys, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="logad")
    assert notebook.read_text().startswith("# Databricks notebook source")
    monkeypatch.setenv("LOGAD_WAREHOUSE", small_warehouse.root)
    monkeypatch.setenv("LOGAD_PLOTS", str(tmp_path / "plots"))
    monkeypatch.setenv("LOGAD_EPOCHS", "4")
    monkeypatch.setenv("LOGAD_MODEL_VERSION", "latest")
    runpy.run_path(str(notebook), run_name="__main__")
    out = capsys.readouterr().out + caplog.text  # tables the notebook prints, logad's log lines
    for text in EXPECT[notebook.name]:
        assert text in out, (text, out[-3000:])
    for path in re.findall(r"plot: (\S+\.png)", out):
        assert Path(path).stat().st_size > 1000  # a real PNG
    if notebook.name.startswith("05"):
        from logad.io.delta import read_table

        # the HDFS model scored the HDFS blocks only, not the Spark workflows beside them
        scores = read_table(spark, small_warehouse.table("scores"))
        assert {r[0] for r in scores.select("system").distinct().collect()} == {"hdfs"}
        assert scores.count() == 600
