"""Tier 2: sessions from real LogHub lines parsed by the real header parser, in Spark (batch)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from conftest import events_of
from logad.sessions.rules import rules_for
from logad.sessions.spark import sessionize

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def sample(name: str) -> list[str]:
    return gzip.decompress((SAMPLES / name).read_bytes()).decode().splitlines()


def test_spark_task_workflows_from_a_real_executor_log(spark):
    lines = sample("Spark_2k.log.gz")
    got = sessionize(events_of(spark, lines, "exec7", "/var/log/spark/stderr"), [rules_for("spark")]).collect()
    tasks = {r.name: r for r in got}
    # what the file says, read plainly: every TID that starts and where it finishes
    started = {m.group(1): i for i, ln in enumerate(lines) if (m := re.search(r"Running task .*\(TID (\d+)\)", ln))}
    finished = {m.group(1): i for i, ln in enumerate(lines) if (m := re.search(r"Finished task .*\(TID (\d+)\)", ln))}
    assert len(started) > 100 and set(tasks) == {f"TID {t}" for t in started}
    for tid, first in started.items():
        row = tasks[f"TID {tid}"]
        assert row.offsets[0] == first, tid
        if tid in finished:
            assert row.close_reason == "finished" and row.offsets[-1] == finished[tid], tid
        else:
            assert row.close_reason in ("end_of_input", "idle", "max_duration"), tid
        assert row.offsets == sorted(row.offsets) and row.task.endswith(f"(TID {tid})")
    # tasks really interleave in this log: some workflow holds lines between another's start and end
    spans = sorted((r.offsets[0], r.offsets[-1]) for r in got)
    assert any(b0 < a1 for (_, a1), (b0, _) in zip(spans, spans[1:], strict=False))
    # a partition hint sends "Found block rdd_2_4 locally" to the open task with index 4 only
    hinted = [i for i, ln in enumerate(lines) if "Found block rdd_2_" in ln]
    owners = {i: [r for r in got if i in r.offsets] for i in hinted}
    assert all(len(o) == 1 for o in owners.values())
    for i, (row,) in owners.items():
        assert row.task.startswith(re.search(r"rdd_2_(\d+)", lines[i]).group(1) + ".")
    # all INFO: the papers' rule labels nothing; labels say where they came from
    assert {(r.label, r.label_source) for r in got} == {(0, "rule")}


def test_the_papers_attach_rule_shares_unnamed_lines(spark):
    ev = events_of(spark, sample("Spark_2k.log.gz"), "exec7", "stderr")
    paper = sessionize(ev, [rules_for("spark", attach="paper")]).collect()
    hints = sessionize(ev, [rules_for("spark")]).collect()
    assert sum(r.shared_events for r in paper) > sum(r.shared_events for r in hints)
    assert sum(r.n_events for r in paper) > sum(r.n_events for r in hints)


def test_bgl_windows_carry_the_alert_flag_as_ground_truth(spark):
    lines = sample("BGL_2k.log.gz")
    got = sessionize(events_of(spark, lines, "bgl", "BGL.log"), [rules_for("bgl", window_s=300)]).collect()
    assert sum(r.n_events for r in got) == len(lines)
    assert {r.label_source for r in got} == {"bgl_alert"}
    alerts = {i for i, ln in enumerate(lines) if not ln.startswith("- ")}
    for r in got:
        flagged = [k for k, off in enumerate(r.offsets) if off in alerts]
        assert r.label == int(bool(flagged)) and r.label_event == (flagged[0] if flagged else None)
        assert len({lines[o].split()[3] for o in r.offsets}) == 1  # one node per window
    assert 0 < sum(r.label for r in got) < len(got)


def test_a_hadoop_container_log_is_one_application(spark):
    source = "/logs/application_1445062781478_0011/container_1445062781478_0011_01_000001.log"
    lines = sample("Hadoop_container_1445062781478_0011_01_000001.log.gz")
    got = sessionize(events_of(spark, lines, "node1", source), [rules_for("hadoop", idle_s=86400)]).collect()
    assert [(r.key, r.close_reason) for r in got] == [("application_1445062781478_0011", "end_of_input")]
    assert got[0].n_events == sum(1 for ln in lines if re.match(r"\d{4}-\d{2}-\d{2} ", ln))


def test_two_systems_in_one_pass_and_a_duplicate_line(spark):
    from pyspark.sql import functions as F

    hdfs = events_of(spark, sample("HDFS_first20000.log.gz")[:300], "dn1", "hdfs.log", "logs.dn1")
    spark_ev = events_of(spark, sample("Spark_2k.log.gz")[:200], "exec7", "stderr", "logs.exec7")
    resent = hdfs.where("offset = 10").withColumn("offset", F.lit(10_000).cast("long"))
    both = hdfs.unionByName(spark_ev).unionByName(resent).withColumn(
        "file_offset", F.when(F.col("system") == "hdfs", F.col("offset") % 10_000 * 100))
    got = sessionize(both, [rules_for("hdfs"), rules_for("spark")]).collect()
    assert {r.system for r in got} == {"hdfs", "spark"}
    assert sum(r.duplicates for r in got) >= 1
    assert all(10_000 not in r.offsets for r in got)


@pytest.mark.parametrize("bad", [[], [rules_for("hdfs"), rules_for("hdfs")]])
def test_rules_are_checked(spark, bad):
    from logad.errors import ConfigError

    with pytest.raises(ConfigError):
        sessionize(events_of(spark, ["x"], "h", "s"), bad)


def test_label_files_load_with_their_source(tmp_path):
    from logad.errors import ConfigError
    from logad.sessions.labels import read_label_file

    hadoop = tmp_path / "hadoop_labels.csv"
    hadoop.write_text("application_id,application_type,failure_type,label\n"
                      "application_1_0011,PageRank,normal,Normal\napplication_1_0012,PageRank,machine_down,Anomaly\n")
    t = read_label_file("hadoop", str(hadoop)).to_pylist()
    assert [(r["key"], r["label"], r["label_source"]) for r in t] == [
        ("application_1_0011", 0, "hadoop:hadoop_labels.csv"), ("application_1_0012", 1, "hadoop:hadoop_labels.csv")]
    hdfs = read_label_file("hdfs", str(SAMPLES / "HDFS_first20000.anomaly_label.csv.gz"))
    assert hdfs.num_rows == 1782 and sum(hdfs["label"].to_pylist()) == 43
    bad = tmp_path / "bad.csv"
    bad.write_text("BlockId,Label\nblk_1,Maybe\n")
    with pytest.raises(ConfigError, match="Normal or Anomaly"):
        read_label_file("hdfs", str(bad))
    with pytest.raises(ConfigError, match="BlockId"):
        read_label_file("hdfs", str(hadoop))


def test_the_label_join_finds_the_run_of_a_workflow_as_the_event_log_labeller_keys_it(spark):
    """The run in Spark SQL (the join) and in Python (the labeller's keys, the lab's truth file)
    is the same, for every layout an executor log is shipped from."""
    from pyspark.sql import functions as F

    from logad.sessions.eventlogs import run_of_path
    from logad.sessions.spark import task_label_key

    keys = ["worker-1|/opt/spark/work/app-20261203150000-0001/3/stderr",
            "worker-1|/corpus/logs/worker-1/app-20261123051951-0000.exec-1.log.gz",
            "nm-1|/yarn/userlogs/application_1700000000000_0042/container_1700000000000_0042_01_000002/stderr",
            "nm-2|/yarn/logs/application_1700000000000_0042/container_e17_1700000000000_0042_02_000007/stderr",
            "dn1|/var/log/hdfs/hadoop-hdfs-datanode.log"]
    df = spark.createDataFrame([(k, "TID 7") for k in keys] + [(keys[0], "blk_1")], "key string, name string")
    got = [r[0] for r in df.select(task_label_key(F.col("key"), F.col("name"))).collect()]
    want = [f"{run_of_path(k)}|TID 7" if run_of_path(k) else None for k in keys] + [None]
    assert got == want and got[2] == "application_1700000000000_0042_1|TID 7"
