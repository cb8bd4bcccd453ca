"""The cluster path on real Apache Hadoop: a single-node HDFS + YARN (``logad hadoop``, Apache's
jars from Maven) on 127.0.0.1, the jobs submitted with ``./submit.sh --master yarn`` and the whole
warehouse (tables, checkpoints, model versions, the promotion record) on ``hdfs://``.

The same ingest and session cut also run on a ``file://`` warehouse; the tables must match.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import cron_line, new_topic, produce

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
EXECUTORS = ["--conf", "spark.executor.instances=2", "--conf", "spark.executor.cores=1",
             "--conf", "spark.executor.memory=1g", "--conf", "spark.yarn.am.memory=512m",
             "--conf", "spark.ui.enabled=false"]


def _free_base(span: int = 13) -> int:
    """A base port with ``span`` free ports above it."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + span >= 65000:
            continue
        ok = True
        for p in range(base, base + span):
            with socket.socket() as t:
                if t.connect_ex(("127.0.0.1", p)) == 0:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no 13 free ports in a row")


@pytest.fixture(scope="module")
def hadoop(tmp_path_factory):
    from logad import hadoop as local

    cfg = local.LocalHadoop(state_dir=str(tmp_path_factory.mktemp("hadoop")), port=_free_base())
    local.start(cfg)
    try:
        yield cfg
    finally:
        local.stop(cfg)


def _submit(hadoop, job: str, *args: str, timeout: int = 600,
            options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HADOOP_CONF_DIR=str(hadoop.conf_dir), SPARK_LOCAL_IP="127.0.0.1")
    cmd = [str(ROOT / "submit.sh"), "--master", "yarn", "--cached-jars", *EXECUTORS, *options, job, "--", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{job} failed:\n" + "\n".join(
        ln for ln in proc.stderr.splitlines() if " INFO " not in ln and not ln.startswith("\tat "))[-4000:]
    return proc


def _start(hadoop, job: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``submit.sh --master yarn JOB`` in the background, its output to ``log``."""
    env = dict(os.environ, HADOOP_CONF_DIR=str(hadoop.conf_dir), SPARK_LOCAL_IP="127.0.0.1")
    cmd = [str(ROOT / "submit.sh"), "--master", "yarn", "--cached-jars", *EXECUTORS, job, "--", *args]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait(what: str, cond, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc is None or proc.poll() is None, f"the job ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.5)


def _app_id(log: Path) -> str:
    found = re.findall(r"Submitted application (application_\d+_\d+)", log.read_text(errors="replace"))
    return found[0] if found else ""


def _processes() -> dict[int, list[str]]:
    """pid -> command line, read from /proc (ps cuts long Java command lines)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                found[int(proc.name)] = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
    return found


def _executors(app_id: str) -> list[int]:
    """The pids of the application's executor JVMs (YARN containers on this node)."""
    return [pid for pid, args in _processes().items()
            if args and args[0].endswith("java") and any("YarnCoarseGrainedExecutorBackend" in a for a in args)
            and app_id in args]


def _apps(hadoop) -> list[dict]:
    with urllib.request.urlopen(f"{hadoop.web['resourcemanager']}/ws/v1/cluster/apps") as r:
        return list((json.load(r).get("apps") or {}).get("app") or [])


def _rows(spark, uri: str):
    """The table's rows without write times; maps as sorted entries (set operations refuse maps)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    from logad.io.delta import read_table

    df = read_table(spark, uri)
    return df.select(*[F.to_json(F.array_sort(F.map_entries(f.name))).alias(f.name)
                       if isinstance(f.dataType, MapType) else F.col(f.name)
                       # app_id: the writing query's id, one per checkpoint by design
                       for f in df.schema.fields if not f.name.endswith("_at") and f.name not in ("batch", "app_id")])


def test_the_pipeline_runs_on_yarn_with_the_warehouse_on_hdfs(hadoop, broker, spark, tmp_path, capsys):
    from logad.cli import main
    from logad.io import fs
    from logad.io.broker import create_topics
    from logad.models import registry

    lines = gzip.decompress((SAMPLES / "HDFS_first20000.log.gz").read_bytes()).splitlines()
    topic, alerts = new_topic("logs.yarn"), new_topic("alerts.yarn")
    produce(broker.bootstrap, topic, [(0, line) for line in lines])
    create_topics(broker.bootstrap, {alerts: 1})
    labels = str(SAMPLES / "HDFS_first20000.anomaly_label.csv.gz")
    hdfs_wh = f"{hadoop.fs}/logad"
    file_wh = (tmp_path / "wh").as_uri()
    kafka = ["--bootstrap", broker.bootstrap, "--subscribe", topic]

    # ingest and the session cut as YARN applications, every table and checkpoint on HDFS
    out = _submit(hadoop, "ingest", *kafka, "--warehouse", hdfs_wh, "--once").stdout
    assert "--master yarn" in out and "spark.yarn.archive=hdfs://" in out
    assert main(["sessions", "labels", "--system", "hdfs", "--warehouse", hdfs_wh, labels]) == 0
    # the cut runs Python on the executors (applyInPandas): with the packed .venv that submit.sh
    # builds, stages and ships with --archives (6 GB with torch's CUDA build: packed, on HDFS and
    # localized, it needs about 18 GB; with less free disk the executors use this node's Python)
    packed = shutil.disk_usage(tmp_path).free > 25 * 2**30
    backfill = _submit(hadoop, "sessions", "backfill", "--warehouse", hdfs_wh, "--system", "hdfs", "--table",
                       "sessions", options=("--venv", "auto") if packed else (), timeout=1200)
    if packed:
        assert re.search(r"--archives hdfs://\S+/user/\w+/\.logad/envs/logad-env-\w+\.tar#environment", backfill.stdout)
        assert "spark.pyspark.python=./environment/bin/python" in backfill.stdout
    else:
        print(f"only {shutil.disk_usage(tmp_path).free / 2**30:.0f} GB free: --venv auto left out")
    assert fs.exists(f"{hdfs_wh}/checkpoints/ingest/offsets/0")

    # the same on a file:// warehouse, in this process: the tables match
    assert main(["ingest", *kafka, "--warehouse", file_wh, "--once"]) == 0
    assert main(["sessions", "labels", "--system", "hdfs", "--warehouse", file_wh, labels]) == 0
    assert main(["sessions", "backfill", "--warehouse", file_wh, "--system", "hdfs", "--table", "sessions"]) == 0
    for table in ("raw_logs", "events", "templates", "sessions"):
        a, b = _rows(spark, f"{hdfs_wh}/tables/{table}"), _rows(spark, f"{file_wh}/tables/{table}")
        assert a.count() == b.count() > 0, table
        assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0, table
    n_sessions = _rows(spark, f"{hdfs_wh}/tables/sessions").count()

    # training across two YARN executors (TorchDistributor's cluster mode), the model registered
    # and promoted on HDFS; an executor's container is killed after the first epoch's checkpoint:
    # the barrier stage fails, logad starts the ranks again on the executors YARN gives back, and
    # they resume from the checkpoint
    log = tmp_path / "train.log"
    train = _start(hadoop, "train", "--warehouse", hdfs_wh, "--system", "hdfs", "--unit", "session",
                   "--epochs", "8", "--patience", "8", "--batch-size", "64", "--num-processes", "2", "--promote",
                   "--scratch", str(tmp_path / "scratch"), log=log)
    checkpoints = tmp_path / "scratch" / "att_gru"
    _wait("first checkpoint", lambda: any(checkpoints.glob("checkpoint-*.pt")), 600, train)
    app = _app_id(log)
    victims = _executors(app)
    assert app and victims, (app, victims)
    os.kill(victims[0], signal.SIGKILL)
    assert train.wait(timeout=900) == 0, log.read_text(errors="replace")[-4000:]
    text = log.read_text(errors="replace")
    assert "2 processes, CPU, cluster mode" in text
    assert "training attempt 1 of 3 lost an executor (ExecutorLostFailure" in text
    # TorchDistributor streams the ranks' output to the driver: both ranks load the checkpoint
    assert re.search(r"rank 0 INFO logad\.models\.fit: resumed from \S+checkpoint-\S+ at epoch [1-7]", text), \
        "rank 0 did not resume from the checkpoint"
    assert "rank 1 INFO logad.models.fit: resumed from" in text
    assert not any(checkpoints.glob("checkpoint-*.pt"))  # removed once the version is registered
    models = f"{hdfs_wh}/models"
    assert registry.versions(models, "att_gru") == [1] and registry.promoted(models, "att_gru") == 1
    assert registry.artifact(models, "att_gru", 1).startswith(f"{hadoop.fs}/logad/models/att_gru/v1/")
    assert not (ROOT / "hdfs:").exists() and not Path("hdfs:").exists()  # no local folder named after the URI

    # scoring on YARN with the promoted model: every session scored once, the alerts in Kafka
    score = _submit(hadoop, "score", "--warehouse", hdfs_wh, "--once", "--bootstrap", broker.bootstrap,
                    "--alerts-topic", alerts)
    assert f"'rows': {n_sessions}" in score.stdout
    top = _rows(spark, f"{hdfs_wh}/tables/scores").orderBy("score", ascending=False).first()

    # the nightly retrain as the README's cron line runs it (cluster deploy mode: the driver in a
    # YARN container), with this machine's paths and a 2-epoch budget
    line = cron_line().split(None, 5)[5]
    for old, new in (("/opt/logad", str(ROOT)), ("/etc/hadoop/conf", str(hadoop.conf_dir)),
                     ("hdfs:///logad", hdfs_wh), ("http://mlflow:5000", f"sqlite:///{tmp_path / 'mlflow.db'}"),
                     ("/var/log/logad-retrain.log", str(tmp_path / "retrain.log"))):
        assert old in line, old
        line = line.replace(old, new)
    line = line.replace(" >> ", " --unit session --epochs 2 --batch-size 64 >> ")
    cron = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=900, check=False,
                          env=dict(os.environ, SPARK_LOCAL_IP="127.0.0.1"))
    assert cron.returncode == 0, (tmp_path / "retrain.log").read_text()[-4000:]
    assert "final status: SUCCEEDED" in (tmp_path / "retrain.log").read_text()
    assert registry.versions(models, "att_gru") == [1, 2]
    report = json.loads(fs.read_text(f"{models}/att_gru/v2/retrain.json"))
    assert report["decision"] in ("promoted", "rejected") and report["held_out"]["sessions"] > 0

    # explain reads the scored session's raw lines back from HDFS
    capsys.readouterr()
    assert main(["explain", "--warehouse", hdfs_wh, top["session_id"]]) == 0
    explained = capsys.readouterr().out
    assert top["session_id"] in explained and "blk_" in explained

    apps = [a for a in _apps(hadoop) if a["name"].startswith("logad-")]
    # the application is named after the command (get_spark's name wins over submit.sh's --name)
    assert {a["name"] for a in apps} >= {"logad-ingest", "logad-sessions-backfill", "logad-train", "logad-score",
                                        "logad-retrain"}
    assert all(a["finalStatus"] == "SUCCEEDED" for a in apps), [(a["name"], a["finalStatus"]) for a in apps]


def _driver(job: str) -> int:
    """The pid of the Python driver of ``jobs/<job>.py`` (client mode: a child of spark-submit)."""
    found = [pid for pid, args in _processes().items()
             if args and "python" in Path(args[0]).name and any(a.endswith(f"jobs/{job}.py") for a in args)]
    assert len(found) == 1, found
    return found[0]


def test_a_killed_executor_mid_stream_loses_and_repeats_no_line(hadoop, broker, spark, tmp_path):
    """SIGKILL one executor container while ingest streams on YARN: Spark gets a new executor from
    YARN, the failed tasks run again, and every line lands in raw_logs and events exactly once."""
    from logad.io import fs
    from logad.io.delta import read_table

    lines = gzip.decompress((SAMPLES / "HDFS_first20000.log.gz").read_bytes()).splitlines()
    topic = new_topic("logs.kill")
    produce(broker.bootstrap, topic, [(0, line) for line in lines])
    wh = f"{hadoop.fs}/{topic}"
    log = tmp_path / "ingest.log"
    job = _start(hadoop, "ingest", "--bootstrap", broker.bootstrap, "--subscribe", topic, "--warehouse", wh,
                 "--max-offsets-per-trigger", "2000", "--trigger", "0 seconds", log=log)
    commits = f"{wh}/checkpoints/ingest/commits"

    def batches() -> int:
        return sum(n.isdigit() for n in fs.listdir(commits))

    try:
        _wait("two committed batches", lambda: batches() >= 2, 600, job)
        app = _app_id(log)
        victims = _executors(app)
        assert victims, app
        os.kill(victims[0], signal.SIGKILL)
        killed_at = batches()
        _wait("every line read", lambda: batches() >= len(lines) // 2000, 900, job)
        assert batches() > killed_at
        os.kill(_driver("ingest"), signal.SIGTERM)  # as an operator stops it: between micro-batches
        assert job.wait(timeout=180) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        if job.poll() is None:
            job.kill()
    text = log.read_text(errors="replace")
    assert re.search(r"Lost executor \d+", text) or "Executor lost" in text, "the executor was not lost"
    for table in ("raw_logs", "events"):
        rows = read_table(spark, f"{wh}/tables/{table}")
        assert rows.count() == len(lines), table
        assert rows.select("topic", "partition", "offset").distinct().count() == len(lines), table
