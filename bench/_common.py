"""Helpers shared by the benchmarks: a private broker, the raw consume ceiling, repo paths."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_consume(bootstrap: str, topics: dict[str, int], n: int) -> float:
    """Seconds for one confluent-kafka consumer to read n records of ``{topic: partitions}``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(t, p, 0) for t, parts in topics.items() for p in range(parts)])
    got, start = 0, time.perf_counter()
    while got < n:
        for m in c.consume(10_000, 1.0):
            if m.error() is None:
                got += 1
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed


def batch_rates(query) -> tuple[float | None, float | None, list]:  # type: ignore[no-untyped-def]
    """Rows/s inside the query's micro-batches, and the same without the first (cold) batch."""
    batches = [p for p in query.recentProgress if p["numInputRows"] > 0]

    def rate(ps: list) -> float | None:
        secs = sum(p["durationMs"].get("triggerExecution", 0) for p in ps) / 1000
        return round(sum(p["numInputRows"] for p in ps) / secs) if secs else None

    return rate(batches), rate(batches[1:]), batches


def session(app: str, master: str):  # type: ignore[no-untyped-def]
    """A SparkSession on ``master`` with what logad's local sessions get (the Kafka and Delta
    connectors, logad's JVM module), also for a ``spark://`` master, whose sessions get nothing
    from :func:`logad.spark_session.get_spark` (a cluster brings its own)."""
    from pyspark import SparkConf

    from logad.spark_session import connector_conf, get_spark, jvm_conf

    conf: dict[str, str] = {}
    if not master.startswith("local"):
        conf.update(connector_conf(SparkConf(), conf))
        conf.update(jvm_conf(SparkConf(), conf))
        conf.update({"spark.executor.memory": "1g", "spark.driver.host": "127.0.0.1",
                     "spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": "4",
                     "spark.driver.extraJavaOptions": "-XX:-DontCompileHugeMethods",
                     "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods"})
    spark = get_spark(app, master=master, conf=conf)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run_query_once(app: str, start, source, warehouse, master: str = "local[2]"):  # type: ignore[no-untyped-def]
    """Start a logad streaming query on a ``master`` session, run it until caught up.

    Returns (seconds including query start, rows/s in batches, rows/s in warm batches, batches).
    """
    from logad.ingest import run

    spark = session(app, master)
    started = time.perf_counter()
    query = start(spark, source, warehouse, trigger="0 seconds")
    run(query, once=True)
    return (time.perf_counter() - started, *batch_rates(query))


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a JVM starts its children from any of its threads, so each
    thread's children are read)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = []
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        out += kids
        todo += kids
    return out


def _executors_of(driver_port: str) -> list[int]:
    """Executor JVMs anywhere on this machine (a standalone worker's children) that talk to the
    driver listening on ``driver_port``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "CoarseGrainedExecutorBackend" in cmd and f":{driver_port} " in cmd + " ":
            found.append(int(entry))
    return found


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_memory() -> dict[str, int]:
    """Peak resident memory (MB, the kernel's VmHWM) of this run's processes, read while they are
    alive: this Python driver, the driver JVM (local mode: the executors run in it), executor JVMs
    (local-cluster's, and a standalone worker's for this driver) and Python workers (the largest
    of each kind). Linux only; {} elsewhere."""
    import resource

    if not os.path.isdir("/proc/self"):
        return {}
    from pyspark.sql import SparkSession

    peaks: dict[str, int] = {"driver_python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}
    pids = _descendants(os.getpid())
    spark = SparkSession.getActiveSession()
    port = spark.sparkContext.getConf().get("spark.driver.port") if spark is not None else None
    if port:
        pids += [p for p in _executors_of(port) if p not in pids]
        pids += [d for p in list(pids) for d in _descendants(p) if d not in pids]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "CoarseGrainedExecutorBackend" in cmd:
            kind = "executor_jvm_peak_mb"
        elif "org.apache.spark.deploy.SparkSubmit" in cmd or "pyspark-shell" in cmd:
            kind = "driver_jvm_peak_mb"
        elif "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
            kind = "python_worker_peak_mb"
        else:
            continue
        peaks[kind] = max(peaks.get(kind, 0), _status_kb(pid, "VmHWM") // 1024)
    return peaks


def memory_line(result: dict[str, object]) -> str:
    """The ``*_peak_mb`` figures of a result as one report line."""
    return "peak memory (MB): " + ", ".join(f"{k.removesuffix('_peak_mb')} {v:,}" for k, v in result.items()
                                            if k.endswith("_peak_mb"))
