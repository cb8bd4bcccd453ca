"""Ingest on YARN against local[2], same machine, same records, same run.

A single-node Apache Hadoop (``logad hadoop``: HDFS + YARN on 127.0.0.1) and a Kafka broker are
started; ``--lines`` real HDFS log lines (the bundled sample, repeated) are produced once; then
``./submit.sh ingest --once`` runs twice on the same topic: ``--master local[2]`` with the
warehouse on local disk (the baseline), and ``--master yarn`` (two 1-core executors) with the
warehouse on HDFS. For each: the wall time of the command (JVM, YARN application and query start
included), the rate inside the micro-batches (Spark's progress: input rows over trigger time), and
the start overhead (wall time minus the batches).

    .venv/bin/python bench/yarn.py [--lines 200000] [--max-per-trigger 50000]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT, free_port

_ROWS = re.compile(r'^  "numInputRows" : (\d+)', re.MULTILINE)
_TRIGGER = re.compile(r'^    "triggerExecution" : (\d+)', re.MULTILINE)


def _ports_free(base: int, span: int = 13) -> bool:
    import socket

    for p in range(base, base + span):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", p)) == 0:
                return False
    return True


def submit(master: str, warehouse: str, bootstrap: str, topic: str, max_per_trigger: int,
           env: dict[str, str]) -> dict[str, float]:
    cmd = [str(ROOT / "submit.sh"), "--master", master, "--cached-jars", "--conf", "spark.ui.enabled=false"]
    if master == "yarn":
        cmd += ["--conf", "spark.executor.instances=2", "--conf", "spark.executor.cores=1",
                "--conf", "spark.executor.memory=1g", "--conf", "spark.yarn.am.memory=512m"]
    cmd += ["ingest", "--", "--bootstrap", bootstrap, "--subscribe", topic, "--warehouse", warehouse,
            "--max-offsets-per-trigger", str(max_per_trigger), "--trigger", "0 seconds", "--once"]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{master}: ingest failed:\n" + out.stderr[-3000:])
    text = out.stdout + out.stderr
    rows = [int(x) for x in _ROWS.findall(text)]
    trig = [int(x) for x in _TRIGGER.findall(text)]
    batches = [(r, t) for r, t in zip(rows, trig, strict=True) if r > 0]
    in_batches_s = sum(t for _, t in batches) / 1000
    warm = batches[1:]
    warm_s = sum(t for _, t in warm) / 1000
    n = sum(r for r, _ in batches)
    return {"wall_s": round(wall, 1), "rows": n, "batches": len(batches),
            "in_batches_lps": round(n / in_batches_s) if in_batches_s else 0,
            "warm_lps": round(sum(r for r, _ in warm) / warm_s) if warm_s else 0,
            "overhead_s": round(wall - in_batches_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--max-per-trigger", type=int, default=50_000)
    args = ap.parse_args()

    from logad import hadoop
    from logad.config import Broker
    from logad.io import broker
    from logad.produce import produce_files

    sample = gzip.decompress((ROOT / "data/samples/HDFS_first20000.log.gz").read_bytes()).splitlines()
    work = Path(tempfile.mkdtemp(prefix="logad-bench-yarn-"))
    base = next(p for p in iter(lambda: free_port(), None) if p < 65000 - 13 and _ports_free(p))
    hcfg = hadoop.LocalHadoop(state_dir=str(work / "hadoop"), port=base)
    bcfg = Broker(port=free_port(), state_dir=str(work / "broker"))
    t = time.perf_counter()
    hadoop.start(hcfg)
    hadoop_start_s = time.perf_counter() - t
    broker.start(bcfg)
    try:
        path = work / "hdfs.log"
        with path.open("wb") as f:
            for n in range(args.lines):
                f.write(sample[n % len(sample)] + b"\n")
        produce_files(bcfg.bootstrap, "logs.bench", [str(path)])
        env = dict(os.environ, HADOOP_CONF_DIR=str(hcfg.conf_dir), SPARK_LOCAL_IP="127.0.0.1")
        legs = {
            "local": submit("local[2]", str(work / "wh"), bcfg.bootstrap, "logs.bench", args.max_per_trigger, env),
            "yarn": submit("yarn", f"{hcfg.fs}/logad", bcfg.bootstrap, "logs.bench", args.max_per_trigger, env),
        }
    finally:
        broker.stop(bcfg)
        hadoop.stop(hcfg)
        shutil.rmtree(work, ignore_errors=True)

    for leg in legs.values():
        assert leg["rows"] == args.lines, f"read {leg['rows']} of {args.lines} lines"
    result: dict[str, object] = {"bench": "yarn", "lines": args.lines, "cores": os.cpu_count(),
                                 "hadoop_start_s": round(hadoop_start_s, 1)}
    for name, leg in legs.items():
        result.update({f"{name}_{k}": v for k, v in leg.items() if k != "rows"})
    result["ratio_yarn_vs_local_in_batches"] = round(legs["yarn"]["in_batches_lps"] / legs["local"]["in_batches_lps"], 2)
    result["ratio_yarn_vs_local_wall"] = round(legs["local"]["wall_s"] / legs["yarn"]["wall_s"], 2)
    print(f"lines {args.lines:,}; Hadoop (HDFS + YARN) started in {hadoop_start_s:.1f} s")
    print(f"{'':<10}{'wall s':>8}{'start s':>9}{'batches':>9}{'lines/s in batches':>20}{'warm lines/s':>14}")
    for name, leg in legs.items():
        label = "local[2]" if name == "local" else "yarn"
        print(f"{label:<10}{leg['wall_s']:>8}{leg['overhead_s']:>9}{leg['batches']:>9}"
              f"{leg['in_batches_lps']:>20,}{leg['warm_lps']:>14,}")
    print(f"yarn / local[2] inside batches: {result['ratio_yarn_vs_local_in_batches']}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
