"""Tier 2: template ids and masking give the same text in Python (the miners, on the driver) and
in Spark SQL (the stream, on the executors)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import excerpt
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
    from pyspark.sql import functions as F

    from logad.templates.masking import mask_column

    lines = [c for rows in excerpt().values() for c, _ in rows]
    lines += ["", "0x1F 0xzz", "naïve ünïcode 123 ✓", "a" * 5000 + " 42", "/a/b/c:9 x.y.z:80 a_1_b"]
    df = spark.createDataFrame([(i, x) for i, x in enumerate(lines)], "i int, line string")
    jvm = {r.i: r.m for r in df.select("i", mask_column(F.col("line"), DEFAULT_RULES).alias("m")).collect()}
    assert [jvm[i] for i in range(len(lines))] == [mask(x, DEFAULT_RULES) for x in lines]
