"""Scale-out: the same per-line work on one JVM, on ``local-cluster`` executors and on a standalone
cluster's workers, in lines/s per executor core (does the rate per core hold as executors are
added?).

Two workloads, each configuration in a fresh process (its own driver and executors):

- ``match``: the ingest query's per-line path on cached lines (logad's JVM masking scanner, then
  the broadcast join to template ids, into Spark's ``noop`` sink): ``bench/templates.py
  --stream-only``. Pure executor CPU.
- ``ingest``: the whole query, Kafka -> parse -> templates -> ``raw_logs`` + ``events`` +
  ``rejects`` on a local broker (``bench/ingest.py``, warm batches). Driver work per batch
  (the template stage, the Delta commits) does not spread over executors.

Configurations: ``local[1]`` (the baseline, one core), ``local-cluster[1,1,1024]`` and
``local-cluster[2,1,1024]`` (one and two executor JVMs of one core), and a standalone master
with 2 workers of one core each (``logad.lab.cluster.StandaloneCluster``). On a 2-core machine
the driver, the broker and the daemons share the two cores with the executors; the report says so.

    .venv/bin/python bench/scaleout.py [--lines 1000000] [--ingest-lines 200000] [--skip-ingest]

``--lines``: lines per run; with fewer than about a million, the match runs last under a second
and the per-job fixed cost (scheduling, a fresh executor's JIT) weighs in every figure.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT

HERE = Path(__file__).resolve().parent


def run(script: str, master: str, *args: str) -> dict[str, object]:
    """The JSON line of ``bench/<script>`` run with ``--master``."""
    cmd = [sys.executable, str(HERE / script), "--master", master, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800,
                          env=dict(os.environ, SPARK_LOCAL_IP="127.0.0.1"))
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(lines[-1])
    return result


def _key(label: str) -> str:
    """A configuration's label as a JSON key part: ``local[1]`` -> ``local_1``."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--ingest-lines", type=int, default=200_000, help="lines per ingest run (4 micro-batches)")
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()

    from logad.lab.cluster import StandaloneCluster

    result: dict[str, object] = {"bench": "scaleout", "lines": args.lines, "ingest_lines": args.ingest_lines,
                                 "machine_cores": os.cpu_count()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="logad-bench-scaleout-") as tmp, \
            StandaloneCluster(tmp, workers=2, cores=1, memory="2g") as cluster:
        configs = [("local[1]", "local[1]", 1), ("local-cluster 1x1", "local-cluster[1,1,1024]", 1),
                   ("local-cluster 2x1", "local-cluster[2,1,1024]", 2), ("standalone 2 workers x1", cluster.url, 2)]
        for label, master, cores in configs:
            key = _key(label)
            match = run("templates.py", master, "--stream-only", "--lines", str(args.lines))
            rate = int(match["match_stream_spark_lps"])  # type: ignore[call-overload]
            row = [label, cores, rate, None]
            result[f"match_{key}_lps"] = rate
            result[f"match_{key}_per_core"] = round(rate / cores)
            result[f"match_{key}_memory"] = {k: v for k, v in match.items() if k.endswith("_peak_mb")}
            if not args.skip_ingest:
                ingest = run("ingest.py", master, "--lines", str(args.ingest_lines),
                             "--max-per-trigger", str(args.ingest_lines // 4))
                warm = int(ingest["native_warm_lps"])  # type: ignore[call-overload]
                row[3] = warm
                result[f"ingest_{key}_warm_lps"] = warm
                result[f"ingest_{key}_per_core"] = round(warm / cores)
                result[f"ingest_{key}_memory"] = {k: v for k, v in ingest.items() if k.endswith("_peak_mb")}
            rows.append(row)
            print(f"  {label}: match {rate:,} lines/s" + (f", ingest {row[3]:,} lines/s" if row[3] else ""),
                  flush=True)
    base_match, base_ingest = rows[0][2], rows[0][3]
    print(f"\nmatch: {args.lines:,} lines (HDFS + Spark contents); ingest: {args.ingest_lines:,} HDFS lines; "
          f"{os.cpu_count()} cores")
    print(f"{'configuration':<26}{'cores':>6}{'match/s':>12}{'per core':>10}{'vs 1':>7}"
          f"{'ingest/s':>12}{'per core':>10}{'vs 1':>7}")
    for label, cores, rate, warm in rows:
        per, ratio = rate / cores, rate / cores / base_match  # type: ignore[operator]
        line = f"{label:<26}{cores:>6}{rate:>12,}{per:>10,.0f}{ratio:>7.2f}"
        if warm and base_ingest:
            line += f"{warm:>12,}{warm / cores:>10,.0f}{warm / cores / base_ingest:>7.2f}"
        print(line)
        key = _key(label)
        result[f"match_{key}_per_core_vs_local1"] = round(ratio, 2)
        if warm and base_ingest:
            result[f"ingest_{key}_per_core_vs_local1"] = round(warm / cores / base_ingest, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
