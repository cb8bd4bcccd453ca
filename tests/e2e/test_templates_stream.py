"""The stream's template stage on real Spark and real Delta tables: every event gets an id, the
ids are the offline miners' templates, a restart reuses the table, a replayed batch is not counted
twice, and a different cluster layout (two executor JVMs, other partitioning, other hash seed)
gives the same ids."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import excerpt
from logad.config import Warehouse
from logad.templates.evaluate import normalize
from logad.templates.ids import template_id
from logad.templates.stream import TEMPLATE_LOOKUP, TEMPLATES, TemplateStage

ROOT = Path(__file__).resolve().parents[2]


def lines_df(spark, rows, partitions=2):
    """``(i, system, content, template)`` rows as an events-like DataFrame, one second apart."""
    from pyspark.sql import functions as F

    return (spark.createDataFrame(rows, "i long, system string, content string, truth string")
            .withColumn("ts", F.timestamp_seconds(F.lit(1_700_000_000) + F.col("i")))
            .repartition(partitions))


def all_rows():
    pairs = [(system, c, t) for system, items in sorted(excerpt().items()) for c, t in items]
    return [(i, *row) for i, row in enumerate(pairs)]


def resolved(templates_rows):
    """template_id -> the text it resolves to (following merged_into)."""
    by_id = {r["template_id"]: r for r in templates_rows}

    def final(tid):
        while by_id[tid]["merged_into"]:
            tid = by_id[tid]["merged_into"]
        return by_id[tid]["text"]

    return {tid: final(tid) for tid in by_id}


def read(spark, uri):
    from logad.io.delta import read_small

    return read_small(spark, uri).to_pylist()


def run_batches(spark, wh, batches, parser="drain", restart_between=False, replay=None):
    stage = TemplateStage(spark, wh, parser)
    out = []
    for batch_id, rows in enumerate(batches):
        if restart_between and batch_id:
            stage = TemplateStage(spark, wh, parser)
        tagged = stage.apply(stage.columns(lines_df(spark, rows)).persist(), batch_id, "app-1")
        out.extend(tagged.select("i", "template_id").collect())
        if replay == batch_id:  # Spark replays the last batch after a crash
            stage = TemplateStage(spark, wh, parser)
            stage.apply(stage.columns(lines_df(spark, rows)), batch_id, "app-1").count()
    return {r["i"]: r["template_id"] for r in out}


@pytest.mark.parametrize("parser", ["drain", "swisslog"])
def test_every_line_gets_an_id_that_resolves_to_the_offline_template(spark, tmp_path, parser):
    rows = all_rows()
    half = len(rows) // 2
    wh = Warehouse(str(tmp_path))
    ids = run_batches(spark, wh, [rows[:half], rows[half:]], parser)
    assert len(ids) == len(rows) and None not in ids.values()
    table = read(spark, wh.table(TEMPLATES))
    text = resolved(table)
    assert set(ids.values()) <= set(text), "every id handed out is in the templates table"
    assert {r["template_id"] for r in table} == {template_id(r["text"]) for r in table}
    assert sum(r["count"] for r in table) == len(rows), "counts add up to the lines"
    # the same quality as the offline miner (test_templates' floors) on each system
    by_system: dict[str, list[bool]] = {}
    for i, system, _, truth in rows:
        by_system.setdefault(system, []).append(normalize(text[ids[i]]) == normalize(truth))
    pa = {s: sum(v) / len(v) for s, v in by_system.items()}
    assert pa["HDFS"] == 1.0 and pa["Spark"] >= 0.8, pa
    lookup = read(spark, wh.table(TEMPLATE_LOOKUP))
    assert len({r["masked"] for r in lookup}) == len(lookup), "each masked text mined once"


def test_a_restart_reuses_the_table_and_a_replay_is_not_counted_twice(spark, tmp_path):
    rows = all_rows()
    random.Random(7).shuffle(rows)
    batches = [rows[i::4] for i in range(4)]
    straight = run_batches(spark, Warehouse(str(tmp_path / "a")), batches)
    wh = Warehouse(str(tmp_path / "b"))
    restarted = run_batches(spark, wh, batches, restart_between=True, replay=1)
    assert restarted == straight, "a restart from the tables hands out the same ids"
    table = read(spark, wh.table(TEMPLATES))
    assert sum(r["count"] for r in table) == len(rows), "the replayed batch was not counted again"
    assert len({r["template_id"] for r in table}) == len(table)
    assert read(spark, Warehouse(str(tmp_path / "a")).table(TEMPLATES)) and {
        r["template_id"] for r in read(spark, Warehouse(str(tmp_path / "a")).table(TEMPLATES))} == {
        r["template_id"] for r in table}


def test_another_parser_on_the_same_table_is_a_clear_error(spark, tmp_path):
    from logad.errors import ConfigError

    wh = Warehouse(str(tmp_path))
    run_batches(spark, wh, [all_rows()[:50]], "drain")
    with pytest.raises(ConfigError, match="mined by drain, not swisslog"):
        TemplateStage(spark, wh, "swisslog")


TWO_EXECUTORS = """
import json, sys
sys.path.insert(0, sys.argv[3])
from logad.spark_session import get_spark
from logad.config import Warehouse
from logad.templates.stream import TemplateStage
from test_templates_stream import lines_df
spark = get_spark("two-executors", master="local-cluster[2,1,1024]")
rows = [tuple(r) for r in json.load(open(sys.argv[1]))]
import time
deadline = time.monotonic() + 120  # executors register after the session starts: wait for both
while spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.monotonic() < deadline:
    time.sleep(0.2)
assert spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() == 3  # driver + 2 executors
stage = TemplateStage(spark, Warehouse(sys.argv[2]))
tagged = stage.apply(stage.columns(lines_df(spark, rows, partitions=7)).persist(), 0, "app-2")
json.dump({r["i"]: r["template_id"] for r in tagged.collect()}, sys.stdout)
spark.stop()
"""


def test_two_executors_give_the_same_ids(spark, tmp_path):
    rows = all_rows()
    here = run_batches(spark, Warehouse(str(tmp_path / "here")), [rows])
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    env = {**os.environ, "PYTHONHASHSEED": "12345",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "lib"), str(Path(__file__).parent), str(ROOT / "tests")])}
    out = subprocess.run([sys.executable, "-c", TWO_EXECUTORS, str(tmp_path / "rows.json"),
                          str(tmp_path / "there"), str(ROOT / "lib")],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    # the failing line, not the tail: Spark's shutdown chatter ("Could not find AppClient") would hide it
    assert out.returncode == 0, "\n".join(ln for ln in out.stderr.splitlines() if " INFO " not in ln)[-3000:]
    there = {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
    assert there == here


def test_templates_show_prints_the_table_and_says_when_there_is_none(spark, tmp_path, capsys):
    from logad.cli import main

    rows = [r for r in all_rows() if r[1] == "HDFS"]
    wh = Warehouse(str(tmp_path / "wh"))
    run_batches(spark, wh, [rows])
    assert main(["templates", "show", "--warehouse", wh.root, "--top", "50"]) == 0
    out = capsys.readouterr().out
    assert f"{len(rows):,} events" in out and "Receiving block <*> src: <*>:<*> dest: <*>:<*>" in out
    assert main(["templates", "show", "--warehouse", str(tmp_path / "nothing")]) == 2
    assert "no templates table" in capsys.readouterr().err
