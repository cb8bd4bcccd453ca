"""Run lab applications on a standalone cluster, collect their logs, and label every task attempt.

:func:`run_lab` starts a :class:`~logad.lab.cluster.StandaloneCluster`, runs ``apps`` applications
one after another (each its own driver process, see :mod:`logad.lab.app`), and after each one
collects what it left:

- ``logs/<worker>/<app-id>.exec-<executor-id>.log.gz``: each executor's own log (its ``stderr``,
  as the worker wrote it), and ``logs/driver/<app-id>.log.gz``: the driver's;
- ``eventlogs/<app-id>.json.gz``: Spark's event log, its account of every task;
- ``faults/<app-id>.jsonl``: what the lab injected, with TIDs;
- ``truth.csv.gz``: one row per task attempt (TID): application, workload, job, stage, partition,
  attempt, executor, worker, log file, speculative, Spark's task end reason and detail, the
  injected fault (or ``none``), what the executor log shows for it, and the label;
- ``manifest.json``: the configuration (seed, rates, cluster shape) and the statistics.

Label of a task attempt: ``Anomaly`` when a fault was injected into it, or Spark's own account
labels it so (:func:`logad.sessions.eventlogs.label_of`, the code that labels any cluster's
attempts from its event logs: failed, or killed for a reason other than scheduling); else
``Normal``. ``session_key`` (``<app-id>.exec-<id>|TID <n>``) is how the ``labels``
table finds the task's workflow in the ``sessions`` table.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logad.errors import ConfigError, LogadError
from logad.lab.faults import DEFAULT_RATES, FaultPlan
from logad.parse.formats import ABNORMAL_LEVELS, FORMATS, header
from logad.sessions import eventlogs, tasks

log = logging.getLogger(__name__)

TRUTH_COLUMNS = ("app_id", "app", "workload", "job_id", "stage_id", "stage_attempt", "partition",
                 "attempt", "tid", "executor_id", "worker", "log_file", "speculative", "launch_ms",
                 "finish_ms", "status", "detail", "fault", "log_end", "label", "session_key")
# the sessionizer's own markers (logad.sessions.tasks); the TID is group 2 of TASK
_TID_START = re.compile(tasks.START + tasks.TASK)
_TID_END = {("finished" if k == "finish" else k): re.compile(words + tasks.TASK)
            for k, words in tasks.ENDS.items()}
_TID_ANY = re.compile(tasks.TID)
_SPARK = FORMATS["spark"]


@dataclass
class LabConfig:
    """A lab run: how many applications, which workloads, which faults, which cluster."""

    out: str
    apps: int = 2
    seed: int = 0
    workloads: tuple[str, ...] = ("etl_join", "aggregate", "cache_broadcast", "skew", "narrow_wide",
                                  "shuffle_reuse", "parse")
    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    workers: int = 2
    worker_cores: int = 2
    executor_cores: int = 2
    executor_memory: str = "512m"
    slow_s: float = 8.0
    partitions: int = 12
    app_timeout_s: float = 900.0

    def __post_init__(self) -> None:
        from logad.lab.workloads import WORKLOADS

        unknown = [w for w in self.workloads if w not in WORKLOADS]
        if unknown:
            raise ConfigError(f"unknown lab workload {unknown[0]!r}; known: {', '.join(WORKLOADS)}")
        if self.apps < 1:
            raise ConfigError("--apps must be at least 1")
        if self.executor_cores > self.worker_cores:
            raise ConfigError("an executor cannot have more cores than its worker")
        FaultPlan(self.seed, self.rates, self.slow_s)  # validates the rates


def run_lab(cfg: LabConfig) -> dict[str, Any]:
    """Run the lab; returns the manifest (also written to ``<out>/manifest.json``)."""
    from logad.lab.cluster import StandaloneCluster

    out = Path(cfg.out).resolve()
    if (out / "manifest.json").exists():
        raise ConfigError(f"{out} already holds a lab corpus; pick another --out or delete it")
    for d in ("logs/driver", "eventlogs", "faults", "apps", "run"):
        (out / d).mkdir(parents=True, exist_ok=True)
    plan = FaultPlan(cfg.seed, cfg.rates, cfg.slow_s)
    t0 = time.monotonic()
    app_ids: list[str] = []
    with StandaloneCluster(out / "run" / "cluster", workers=cfg.workers, cores=cfg.worker_cores,
                           memory="2g") as cluster:
        for app in range(cfg.apps):
            started = time.monotonic()
            app_id = _run_app(cfg, plan, app, cluster, out)
            app_ids.append(app_id)
            _collect(cluster, app_id, out)
            rows = truth_rows(out, app_id, app)
            bad = sum(r["label"] == "Anomaly" for r in rows)
            log.info("lab app %d/%d %s: %d task attempts, %d anomalous, %.0fs (%.0fs so far)",
                     app + 1, cfg.apps, app_id, len(rows), bad, time.monotonic() - started,
                     time.monotonic() - t0)
    shutil.rmtree(out / "run", ignore_errors=True)
    rows = [r for i, a in enumerate(app_ids) for r in truth_rows(out, a, i)]
    write_truth(out / "truth.csv.gz", rows)
    manifest = {"config": {k: v for k, v in vars(cfg).items() if k != "out"},
                "plan": plan.to_json(), "spark_version": _spark_version(), "apps": app_ids,
                "seconds": round(time.monotonic() - t0, 1), "stats": corpus_stats(out, rows)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=list))
    return manifest


def _spark_version() -> str:
    import pyspark

    return str(pyspark.__version__)


def _run_app(cfg: LabConfig, plan: FaultPlan, app: int, cluster: Any, out: Path) -> str:
    run = out / "run"
    app_cfg = {
        "master": cluster.url, "app": app, "plan": plan.to_json(), "workloads": list(cfg.workloads),
        "executor_cores": cfg.executor_cores, "executor_memory": cfg.executor_memory,
        "cores_max": cfg.workers * cfg.worker_cores, "partitions": cfg.partitions,
        "eventlog_dir": str(run / "eventlog"), "faults_dir": str(out / "faults"),
        "input_dir": str(run / "input"), "apps_dir": str(out / "apps"),
        "local_dirs": [str(cluster.local_dir(w)) for w in cluster.worker_names],
    }
    (run / "eventlog").mkdir(exist_ok=True)
    conf = run / f"app-{app}.json"
    result = run / f"app-{app}.result.json"
    result.unlink(missing_ok=True)
    conf.write_text(json.dumps({**app_cfg, "result": str(result)}))
    driver_log = run / f"driver-{app}.log"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
               SPARK_LOCAL_IP="127.0.0.1")
    with open(driver_log, "wb") as err:
        try:
            proc = subprocess.run([sys.executable, "-m", "logad.lab.app", str(conf)], stdout=err,
                                  stderr=err, env=env, timeout=cfg.app_timeout_s, check=False)
        except subprocess.TimeoutExpired as e:
            raise LogadError(f"lab app {app} ran longer than {cfg.app_timeout_s:.0f}s; its driver log: "
                             f"{driver_log}") from e
    if proc.returncode != 0 or not result.is_file():
        raise LogadError(f"lab app {app} failed (exit {proc.returncode}); its driver log: {driver_log}")
    app_id = str(json.loads(result.read_text())["app_id"])
    _gzip(driver_log, out / "logs" / "driver" / f"{app_id}.log.gz")
    return app_id


def _gzip(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f, gzip.open(dst, "wb", compresslevel=6) as g:
        shutil.copyfileobj(f, g)


def _collect(cluster: Any, app_id: str, out: Path) -> None:
    """Executor logs, event log and inputs of one finished application, into the corpus."""
    for w in cluster.worker_names:
        app_dir = cluster.work_dir(w) / app_id
        for stderr in sorted(app_dir.glob("*/stderr")):
            _gzip(stderr, out / "logs" / w / f"{app_id}.exec-{stderr.parent.name}.log.gz")
        shutil.rmtree(app_dir, ignore_errors=True)
    event_log = out / "run" / "eventlog" / app_id
    if not event_log.exists():
        raise LogadError(f"Spark wrote no event log for {app_id} at {event_log}")
    _gzip(event_log, out / "eventlogs" / f"{app_id}.json.gz")
    event_log.unlink()
    shutil.rmtree(out / "run" / "input" / app_id, ignore_errors=True)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", "replace")


def executor_logs(out: Path, app_id: str) -> dict[str, tuple[str, Path]]:
    """Executor id -> (worker, log file) of one application in a corpus."""
    found = {}
    for p in sorted((out / "logs").glob(f"*/{app_id}.exec-*.log*")):
        eid = p.name.split(".exec-", 1)[1].split(".log", 1)[0]
        found[eid] = (p.parent.name, p)
    return found


def log_view(path: Path) -> dict[int, str]:
    """What an executor log shows of each TID: ``finished``, ``exception``, ``killed``, or
    ``none`` (started, no end line: the executor died or the log stops)."""
    seen: dict[int, str] = {}
    for line in _read_text(path).splitlines():
        m = _TID_START.search(line)
        if m:
            seen.setdefault(int(m.group(2)), "none")
            continue
        for end, rx in _TID_END.items():
            m = rx.search(line)
            if m:
                seen[int(m.group(2))] = end
                break
    return seen


def label_of(status: str, detail: str, fault: str) -> str:
    """The lab's label: an injected fault, or what Spark's own account says
    (:func:`logad.sessions.eventlogs.label_of`, the labels an operator's cluster gets)."""
    return "Anomaly" if fault != "none" or eventlogs.label_of(status, detail) else "Normal"


def truth_rows(out: Path, app_id: str, app: int) -> list[dict[str, Any]]:
    """The ground truth of one application, from its event log (read as
    :mod:`logad.sessions.eventlogs` reads any cluster's), injection records and logs."""
    path = out / "eventlogs" / f"{app_id}.json.gz"
    parsed = eventlogs.parse_event_log(_read_text(path).split("\n"), str(path))
    if parsed.rejects:
        raise LogadError(f"{path}: {len(parsed.rejects)} unusable lines or attempts, first {parsed.rejects[0]}")
    injected: dict[int, str] = {}
    fetch_fault = False
    fpath = out / "faults" / f"{app_id}.jsonl"
    if fpath.exists():
        for line in fpath.read_text().splitlines():
            r = json.loads(line)
            if r.get("tid") is not None:
                injected[int(r["tid"])] = r["fault"]
            elif r["fault"] == "fetch_failure" and r.get("detail"):
                fetch_fault = True
    logs = executor_logs(out, app_id)
    views = {eid: log_view(p) for eid, (_, p) in logs.items()}
    rows = []
    for a in parsed.attempts:
        fault = injected.get(a.tid, "none")
        if fault == "none" and a.status == "FetchFailed" and fetch_fault:
            fault = "fetch_failure"
        worker, path = logs.get(a.executor_id, ("", Path("")))
        rows.append({
            "app_id": app_id, "app": app, "workload": a.job_group, "job_id": a.job_id, "stage_id": a.stage_id,
            "stage_attempt": a.stage_attempt, "partition": a.partition, "attempt": a.attempt, "tid": a.tid,
            "executor_id": a.executor_id, "worker": worker,
            "log_file": f"{worker}/{path.name}" if worker else "", "speculative": a.speculative,
            "launch_ms": a.launch_ms, "finish_ms": a.finish_ms, "status": a.status, "detail": a.detail,
            "fault": fault, "log_end": views.get(a.executor_id, {}).get(a.tid, "missing"),
            "label": label_of(a.status, a.detail, fault),
            "session_key": f"{path.name.split('.log', 1)[0]}|TID {a.tid}" if worker else "",
        })
    return rows


def write_truth(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TRUTH_COLUMNS)
    w.writeheader()
    w.writerows(rows)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())


def read_truth(corpus: str | Path) -> list[dict[str, str]]:
    path = Path(corpus) / "truth.csv.gz"
    if not path.exists():
        raise ConfigError(f"{corpus} is not a lab corpus (no truth.csv.gz)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def interleaving(path: Path) -> tuple[int, int, float]:
    """(workflows, interleaved workflows, mean tasks open at a task's start) of one executor log.
    A workflow is interleaved when another task starts or ends between its start and its end."""
    open_: set[int] = set()
    touched: set[int] = set()
    seen = 0
    at_start: list[int] = []
    for line in _read_text(path).splitlines():
        m = _TID_START.search(line)
        if m:
            tid = int(m.group(2))
            if open_:
                touched.update(open_)
                touched.add(tid)
            at_start.append(len(open_) + 1)
            open_.add(tid)
            seen += 1
            continue
        for rx in _TID_END.values():
            m = rx.search(line)
            if m:
                tid = int(m.group(2))
                open_.discard(tid)
                if open_:
                    touched.update(open_)
                    touched.add(tid)
                break
    return seen, len(touched), (sum(at_start) / len(at_start) if at_start else 0.0)


def _quiet_anomalies(out: Path, rows: Sequence[dict[str, Any]]) -> int:
    """Anomalous attempts none of whose own lines (those naming the TID) is WARN/ERROR."""
    loud: set[tuple[str, int]] = set()
    for p in (out / "logs").glob("worker-*/*.log*"):
        app_exec = p.name.split(".log", 1)[0]
        for line in _read_text(p).splitlines():
            h = header("spark").match(line)
            if h and h.group(_SPARK.fields.index("level") + 1) in ABNORMAL_LEVELS:
                m = _TID_ANY.search(line)
                if m:
                    loud.add((app_exec, int(m.group(1))))
    return sum(1 for r in rows if r["label"] == "Anomaly" and r["log_end"] != "missing"
               and (str(r["session_key"]).split("|")[0], int(r["tid"])) not in loud)


def corpus_stats(out: Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    files = sorted((out / "logs").glob("*/*.log*"))
    exec_files = [p for p in files if p.parent.name != "driver"]
    lines = {p: _read_text(p).count("\n") for p in files}
    inter = [interleaving(p) for p in exec_files]
    workflows = sum(x[0] for x in inter)
    return {
        "apps": len({r["app_id"] for r in rows}),
        "task_attempts": len(rows),
        "tasks": len({(r["app_id"], r["stage_id"], r["partition"]) for r in rows}),
        "anomalous_attempts": sum(r["label"] == "Anomaly" for r in rows),
        "faults": dict(Counter(str(r["fault"]) for r in rows)),
        "status": dict(Counter(str(r["status"]) for r in rows)),
        "log_end": dict(Counter(str(r["log_end"]) for r in rows)),
        "executor_logs": len(exec_files),
        "executor_lines": sum(lines[p] for p in exec_files),
        "driver_lines": sum(n for p, n in lines.items() if p.parent.name == "driver"),
        "workflows_in_logs": workflows,
        "interleaved_workflows": sum(x[1] for x in inter),
        "mean_open_tasks_at_start": round(sum(x[2] * x[0] for x in inter) / workflows, 3) if workflows else 0.0,
        "anomalous_without_warn_error": _quiet_anomalies(out, rows),
    }


def replay(corpus: str | Path, bootstrap: str, topic_prefix: str = "logs",
           staging: str | Path | None = None, client: dict[str, str] | None = None) -> dict[str, int]:
    """Ship a corpus's executor and driver logs into Kafka with the shipper, one host per worker
    (topics ``<prefix>.worker-1``, ...; the driver's as ``<prefix>.driver``). Returns records per topic."""
    from logad.ship import ShipConfig, Shipper

    root = Path(corpus)
    if not (root / "logs").is_dir():
        raise ConfigError(f"{corpus} is not a lab corpus (no logs/)")
    stage = Path(staging) if staging else root / "replay"
    sent = {}
    for host_dir in sorted(p for p in (root / "logs").iterdir() if p.is_dir()):
        host = host_dir.name
        folder = stage / host
        folder.mkdir(parents=True, exist_ok=True)
        for p in sorted(host_dir.glob("*.log*")):
            (folder / p.name.removesuffix(".gz")).write_bytes(_read_text(p).encode())
        ship = ShipConfig((str(folder / "*.log"),), bootstrap, host=host, topic_prefix=topic_prefix,
                          registry=str(stage / f"{host}.registry.json"), progress_interval_s=60,
                          multiline_pattern=r"^\d{2}/\d{2}/\d{2} ", multiline_negate=True,
                          client=dict(client or {}))
        sent[ship.topic] = Shipper(ship).run(once=True).sent
        log.info("replayed %s as host %s: %d records", host_dir, host, sent[ship.topic])
    return sent
