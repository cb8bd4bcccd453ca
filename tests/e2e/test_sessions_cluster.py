"""Tier 3: Task workflows from the executor log of a real Spark application on a local cluster
(one executor, two cores: the log really interleaves two tasks at a time)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import events_of
from logad.sessions.rules import rules_for
from logad.sessions.spark import sessionize

EXECUTOR_JOB = """
import sys, time
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local-cluster[1,2,1024]").appName("logad-sessions-test")
         .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
         .config("spark.pyspark.python", sys.executable).getOrCreate())
def work(i):
    time.sleep(0.3 + 0.1 * (i % 3))
    return i
spark.sparkContext.parallelize(range(12), 12).map(work).count()
print("APP", spark.sparkContext.applicationId)
spark.stop()
"""


@pytest.mark.slow
def test_workflows_from_an_executor_log_we_make(spark, tmp_path):
    """A real Spark application, one executor with two cores: its own log interleaves two tasks
    at a time; every task is one workflow from its Running to its Finished line."""
    import os
    import subprocess
    import sys

    import pyspark

    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    out = subprocess.run([sys.executable, "-c", EXECUTOR_JOB], capture_output=True, text=True, env=env,
                         timeout=300, check=True).stdout
    app = re.search(r"APP (\S+)", out).group(1)
    log = Path(pyspark.__file__).parent / "work" / app / "0" / "stderr"
    lines = [ln for ln in log.read_text().splitlines() if re.match(r"\d{2}/\d{2}/\d{2} ", ln)]
    got = sessionize(events_of(spark, lines, "127.0.0.1", str(log)), [rules_for("spark")]).collect()
    assert sorted(r.name for r in got) == sorted(f"TID {i}" for i in range(12))
    assert {r.close_reason for r in got} == {"finished"}
    for r in got:
        assert "Running task" in lines[r.offsets[0]] and "Finished task" in lines[r.offsets[-1]]
    spans = sorted((r.offsets[0], r.offsets[-1]) for r in got)
    overlapping = sum(b0 < a1 for (_, a1), (b0, _) in zip(spans, spans[1:], strict=False))
    assert overlapping >= 3  # two cores: tasks really run, and log, at the same time
