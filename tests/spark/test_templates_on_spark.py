"""Tier 2: template ids and masking give the same text in Python (the miners, on the driver) and
in Spark SQL (the stream, on the executors)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import mask_corpus
from logad.templates import template_id
from logad.templates.masking import DEFAULT_RULES, mask


def test_template_ids_are_stable_across_processes_and_in_spark_sql(spark):
    text = "Receiving block <*> src: <*>:<*> dest: <*>:<*>"
    code = f"from logad.templates import template_id; print(template_id({text!r}))"
    ids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
           for seed in ("1", "2")}
    assert ids == {template_id(text)} and len(template_id(text)) == 16

    from pyspark.sql import functions as F

    from logad.templates.ids import template_id_column
    got = spark.createDataFrame([(text,)], "t string").select(template_id_column(F.col("t"))).first()[0]
    assert got == template_id(text)


def test_masking_is_the_same_in_python_and_on_the_jvm(spark):
    """Both stream paths, logad's JVM scanner (what the session runs) and the regexes (a session
    without the jar), against Python's ``mask`` on LogHub 2k and the bundled samples."""
    from pyspark.sql import functions as F

    from logad.templates.masking import mask_column, native_masking

    lines = mask_corpus() + ["", "0x1F 0xzz", "naïve ünïcode 123 ✓", "a" * 5000 + " 42", "/a/b/c:9 x.y.z:80 a_1_b"]
    df = spark.createDataFrame([(i, x) for i, x in enumerate(lines)], "i int, line string")
    assert native_masking(spark, DEFAULT_RULES)  # the session has logad's jar (logad.spark_session)
    native = mask_column(F.col("line"), DEFAULT_RULES, spark)
    assert "logad.jvm.Mask" in str(native)
    regex = mask_column(F.col("line"), DEFAULT_RULES)
    assert "regexp_replace" in str(regex)
    got = {r.i: (r.n, r.r) for r in df.select("i", native.alias("n"), regex.alias("r")).collect()}
    python = [mask(x, DEFAULT_RULES) for x in lines]
    assert [got[i][0] for i in range(len(lines))] == python
    assert [got[i][1] for i in range(len(lines))] == python


def test_the_ingest_template_stage_masks_with_the_jvm_scanner(spark, tmp_path):
    """What the ingest query runs: TemplateStage.columns with the scanner in the plan, and the
    masked texts the miners would have seen from Python."""
    from logad.config import Warehouse
    from logad.templates.stream import MASKED, TemplateStage

    lines = mask_corpus()[:3000]
    stage = TemplateStage(spark, Warehouse(str(tmp_path)))
    df = stage.columns(spark.createDataFrame([(i, x) for i, x in enumerate(lines)], "i int, content string"))
    assert "logad.jvm.Mask" in df._jdf.queryExecution().toString()
    got = {r.i: r[MASKED] for r in df.select("i", MASKED).collect()}
    assert [got[i] for i in range(len(lines))] == [mask(x, DEFAULT_RULES) for x in lines]
