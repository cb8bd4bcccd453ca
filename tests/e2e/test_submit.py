"""``submit.sh`` against a real standalone cluster: a master and a worker started on 127.0.0.1 from
the pyspark install, the ingest job submitted through the wrapper (library zip via --py-files,
conf/spark-defaults.conf as the properties file), its executors on the worker."""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

from conftest import new_topic, produce

ROOT = Path(__file__).resolve().parents[2]


def test_submit_runs_the_ingest_job_on_a_standalone_master(broker, spark, tmp_path):
    from logad.config import Warehouse
    from logad.io.delta import read_table
    from logad.lab.cluster import StandaloneCluster

    lines = gzip.decompress((ROOT / "data" / "samples" / "HDFS_first20000.log.gz").read_bytes()).splitlines()[:500]
    topic = new_topic("logs.submit")
    produce(broker.bootstrap, topic, [(0, line) for line in lines])
    wh = Warehouse(str(tmp_path / "wh"))
    with StandaloneCluster(tmp_path / "cluster", workers=1, cores=2, memory="1g") as cluster:
        cmd = [str(ROOT / "submit.sh"), "--master", cluster.url, "--cached-jars",
               "--conf", "spark.executor.memory=512m", "--conf", "spark.ui.enabled=false",
               "ingest", "--", "--bootstrap", broker.bootstrap, "--subscribe-pattern", topic.replace(".", r"\."),
               "--warehouse", wh.root, "--once"]
        env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=420, check=False)
        assert proc.returncode == 0, "\n".join(ln for ln in proc.stderr.splitlines() if " INFO " not in ln)[-3000:]
        # the wrapper prints the exact line it ran
        assert proc.stdout.startswith("spark-submit line:") and f"--master {cluster.url}" in proc.stdout
        assert "--py-files" in proc.stdout and "spark-defaults.conf" in proc.stdout
        assert "--jars" in proc.stdout and "spark-sql-kafka-0-10_2.13-4.0.0.jar" in proc.stdout
        # the application ran on the cluster: its executor wrote a log under the worker
        executor_logs = list(cluster.work_dir("worker-1").glob("app-*/*/stderr"))
        assert executor_logs, "no executor ran on the worker"
        assert any("Running task" in p.read_text(errors="replace") for p in executor_logs)
    events = read_table(spark, wh.table("events"))
    assert events.count() == 500
    assert events.where("system = 'hdfs'").count() == 500
