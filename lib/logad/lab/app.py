"""One lab application: ``python -m logad.lab.app CONFIG.json`` (the lab runs it as a subprocess,
so each application has its own driver JVM and its own driver log on stderr).

It runs the configured workloads in order, each in its own job group, with the fault plan's
gates, a thread that kills the task attempts that asked for ``kill``, speculation on, and the
event log (Spark's own account of every task) written uncompressed to the lab's folder. It writes
``<out>/apps/<app-id>.json``: the workloads, which jobs failed, the timings.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from logad.lab.faults import FaultPlan
from logad.lab.workloads import WORKLOADS, LabContext

log = logging.getLogger("logad.lab.app")


def spark_conf(cfg: dict[str, Any]) -> dict[str, str]:
    return {
        "spark.master": cfg["master"],
        "spark.app.name": f"logad-lab-{cfg['app']}",
        "spark.driver.host": "127.0.0.1",
        "spark.executor.cores": str(cfg["executor_cores"]),
        "spark.executor.memory": cfg["executor_memory"],
        "spark.cores.max": str(cfg["cores_max"]),
        "spark.task.maxFailures": "4",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": cfg["eventlog_dir"],
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
        "spark.speculation": "true",
        "spark.speculation.multiplier": "3",
        "spark.speculation.quantile": "0.75",
        "spark.speculation.minTaskRuntime": "3s",
        "spark.speculation.efficiency.enabled": "false",
        "spark.sql.shuffle.partitions": str(cfg["partitions"]),
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.deploy.maxExecutorRetries": "20",
    }


def _killer(sc: Any, app_id: str, folder: Path, stop: threading.Event) -> None:
    """Kill the task attempts whose gate asked for ``kill`` (a file ``<app-id>.<tid>``)."""
    while not stop.is_set():
        for req in folder.glob(f"{app_id}.*"):
            tid = int(req.name.rsplit(".", 1)[1])
            req.unlink()
            try:
                ok = sc._jsc.sc().killTaskAttempt(tid, True, "lab: injected kill")
                log.info("killed TID %d: %s", tid, ok)
            except Exception as e:  # noqa: BLE001 - one failed kill must not end the killing
                log.warning("could not kill TID %d: %s", tid, e)
        stop.wait(0.2)


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for k, v in spark_conf(cfg).items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("INFO")
    app_id = sc.applicationId
    ctx = LabContext(FaultPlan.from_json(cfg["plan"]), cfg["app"], app_id, cfg["faults_dir"],
                     cfg["input_dir"], tuple(cfg["local_dirs"]), cfg["partitions"])
    kill_dir = Path(cfg["faults_dir"]) / "kill"
    kill_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    killer = threading.Thread(target=_killer, args=(sc, app_id, kill_dir, stop), daemon=True)
    killer.start()
    jobs = []
    try:
        for name in cfg["workloads"]:
            sc.setJobGroup(name, f"logad lab workload {name}")
            t0 = time.monotonic()
            error = None
            try:
                WORKLOADS[name](spark, ctx)
            except Exception as e:  # noqa: BLE001 - recorded; the next workload still runs
                error = str(e).splitlines()[0][:300]
                log.warning("workload %s failed: %s", name, error)
            jobs.append({"workload": name, "seconds": round(time.monotonic() - t0, 2), "error": error})
    finally:
        stop.set()
        killer.join(timeout=5)
        spark.stop()
    out = {"app_id": app_id, "app": cfg["app"], "jobs": jobs}
    Path(cfg["apps_dir"], f"{app_id}.json").write_text(json.dumps(out, indent=1))
    return out


def main() -> int:
    """The child process's entry point; the parent reads its application id from ``result``."""
    from logad.entry import configure_logging

    configure_logging()
    cfg = json.loads(Path(sys.argv[1]).read_text())
    out = run(cfg)
    Path(cfg["result"]).write_text(json.dumps({"app_id": out["app_id"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
