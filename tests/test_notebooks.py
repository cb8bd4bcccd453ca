"""Every notebook runs as a plain Python script on a small table (as CI does)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from logad.config import Warehouse
from logad.io.delta_files import append_batch

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


@pytest.fixture
def small_warehouse(spark, tmp_path):
    import datetime as dt

    warehouse = Warehouse(str(tmp_path / "wh"))
    rows = [("logs.hdfs", 0, i, dt.datetime(2026, 1, 1, 0, 0, i), None, "hdfs",
             f"081109 203518 143 INFO dfs.DataNode: line {i}", dt.datetime(2026, 1, 1))
            for i in range(20)]
    schema = ("topic string, partition int, offset long, kafka_ts timestamp, key string, "
              "host string, line string, ingested_at timestamp")
    append_batch(spark.createDataFrame(rows, schema), warehouse.table("raw_logs"), "nb", 0)
    return warehouse


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_as_a_script(notebook, small_warehouse, monkeypatch, capsys):
    assert notebook.read_text().startswith("# Databricks notebook source")
    monkeypatch.setenv("LOGAD_WAREHOUSE", small_warehouse.root)
    runpy.run_path(str(notebook), run_name="__main__")
    out = capsys.readouterr().out
    assert "'rows': 20" in out and "logs.hdfs" in out
