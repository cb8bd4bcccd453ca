"""Pattern alerts (``logad patterns run``): time to alert on a known injected change, and false
alerts per hour of normal replay, against a named baseline rule in the same run.

Data: LogHub's HDFS 2% block sample (``--data``, default ``$LOGAD_DATA`` or ``../shared/data``:
``HDFS/raw/HDFS_dev_sample.log.gz``, 115,150 lines over 39 hours of event time); without it the
bundled 600-block sample (11,198 lines over 38 hours), and the report says so. The first day is
history (``learn_s``). Injected after it, through ``ingest_files`` like the rest: a burst of one
common template on the host (``--burst`` lines in one minute) and an error template no line ever
had on a second host (3 lines).

The replay runs the product's ingest (``ingest_files``: parser, masking, the template stage),
counts the lines per (host, template, minute) with the stage's own :meth:`PatternStage.groups`,
and feeds them, minute by minute of event time, to the stage's :class:`PatternState`: the
decisions of a stream with a one-minute trigger. Reported:

- time to alert, in event time: from the injected change's first line to the end of the minute
  whose batch raised the alert (the new template: the batch that reads it; the surge: its window
  closes ``lateness_s`` after its end); plus the stage's wall time per one-minute batch on Spark
  (``apply`` on a real minute of events: the driver and executor cost a stream pays on top);
- false alerts per hour of replay after learning: alerts other than the injected ones, split into
  those on blocks LogHub labels anomalous (a real incident, not false) and the rest;
- the baseline rule beside: an exponentially weighted mean of each pair's per-minute counts
  (weight 0.05, quiet minutes counting 0) with a surge at ``ratio`` times the mean plus 6
  standard deviations, the usual "rate above its average" alarm.

    .venv/bin/python bench/patterns.py [--data ../shared/data] [--burst 1000]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

from _common import ROOT

MIN = 60_000_000


def _lines(data: Path) -> tuple[list[str], Path, str]:
    big = data / "HDFS" / "raw" / "HDFS_dev_sample.log.gz"
    if big.exists():
        return gzip.decompress(big.read_bytes()).decode().splitlines(), big.with_name(
            "HDFS_dev_sample.anomaly_label.csv"), "LogHub HDFS 2% block sample"
    print(f"[{big} absent: the bundled 600-block sample instead]")
    small = ROOT / "data" / "samples"
    return (gzip.decompress((small / "HDFS_blocks600.log.gz").read_bytes()).decode().splitlines(),
            small / "HDFS_blocks600.anomaly_label.csv.gz", "bundled 600-block HDFS sample")


def _labels(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()
    return dict(line.strip().split(",")[:2] for line in text.splitlines() if line.startswith("blk_"))


def baseline_rule(groups, learn_us: int, ratio: float, min_count: int) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    """(host, template, window) the mean + 6 sd rule alerts on, after learning."""
    by_pair: dict[tuple[str, str], dict[int, int]] = {}
    start = min(g.first_us for g in groups)
    for g in groups:
        by_pair.setdefault((g.host, g.template_id), {})[g.window] = g.count
    first_w, last_w = start // MIN, max(g.window for g in groups)
    out = []
    for (host, tid), counts in by_pair.items():
        mean = var = 0.0
        for w in range(first_w, last_w + 1):
            c = counts.get(w, 0)
            if c and w * MIN >= start + learn_us and c >= min_count and c >= ratio * mean \
                    and c > mean + 6 * math.sqrt(max(var, mean, 1.0)):
                out.append((host, tid, w))
            diff = c - mean
            mean, var = mean + 0.05 * diff, 0.95 * (var + diff * 0.05 * diff)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("LOGAD_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--burst", type=int, default=1000)
    a = ap.parse_args()

    from pyspark.sql import functions as F

    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_table
    from logad.patterns import PatternRules, PatternStage, PatternState
    from logad.spark_session import get_spark

    lines, label_file, what = _lines(Path(a.data))
    labels = _labels(label_file)
    ts = [line[:13] for line in lines if re.match(r"\d{6} \d{6}", line)]
    first, last = min(ts), max(ts)
    rules = PatternRules()

    def at(hours: float) -> str:  # "yymmdd HHMMSS", hours after the first line
        import datetime as dt

        t = dt.datetime.strptime(first, "%y%m%d %H%M%S") + dt.timedelta(hours=hours)
        return t.strftime("%y%m%d %H%M%S")

    burst_at, new_at = at(rules.learn_s / 3600 + 4), at(rules.learn_s / 3600 + 5)
    tpl = "INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_{} terminating"
    burst = [f"{burst_at[:11]}{i % 60:02d} 148 {tpl.format(8_000_000 + i)}" for i in range(a.burst)]
    new = [f"{new_at[:12]}{i} 99 ERROR dfs.DataNode: Disk failure on /mnt/hadoop/dfs/data{i}: No space left on device"
           for i in range(3)]
    spark = get_spark("bench-patterns", master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        files = {f"{tmp}/dn1.log": "dn1", f"{tmp}/dn3.log": "dn3"}
        Path(f"{tmp}/dn1.log").write_text("\n".join(sorted(lines + burst)) + "\n")
        Path(f"{tmp}/dn3.log").write_text("\n".join(new) + "\n")
        wh = Warehouse(f"{tmp}/wh")
        t0 = time.perf_counter()
        ingest_files(spark, wh, files, raw=False)
        ingest_s = time.perf_counter() - t0
        events = read_table(spark, wh.table("events")).persist()
        stage = PatternStage(spark, Warehouse(f"{tmp}/state"), rules)
        groups, untimed = stage.groups(events)
        # the stage's cost per one-minute batch, on a busy minute of real events (median of 5)
        busiest = events.groupBy(F.date_trunc("minute", "ts").alias("m")).count().orderBy(F.desc("count")).first()
        minute = events.where(F.date_trunc("minute", "ts") == busiest["m"]).persist()
        costs = []
        for i in range(5):
            t = time.perf_counter()
            stage.apply(minute, i, "bench").count()
            costs.append(time.perf_counter() - t)
        batch_s = sorted(costs)[2]

        state = PatternState(rules)
        by_window: dict[int, list] = {}
        for g in groups:
            by_window.setdefault(g.window, []).append(g)
        alerts = []
        for w in range(min(by_window), max(by_window) + 3):
            for x in state.update(by_window.get(w, [])):
                alerts.append((w, x))
        texts = {r["template_id"]: r["text"] for r in spark.read.format("delta").load(wh.table("templates")).collect()}
        offsets = {(r["topic"], r["partition"], r["offset"]): r["content"] for r in events.select(
            "topic", "partition", "offset", "content").collect()}
    import datetime as dt

    def us(stamp: str) -> int:
        return int(dt.datetime.strptime(stamp, "%y%m%d %H%M%S").replace(tzinfo=dt.UTC).timestamp() * 1_000_000)

    def blocks(x: dict) -> set[str]:
        return {b for ln in x["lines"] for b in re.findall(r"blk_-?\d+", offsets.get(tuple(ln[1:]), "") or "")}

    hit_new = [(w, x) for w, x in alerts if x["kind"] == "new_template" and "Disk failure" in texts.get(x["template_id"], "")]
    hit_burst = [(w, x) for w, x in alerts if x["kind"] == "rate_surge" and x["host"] == "dn1"
                 and x["window_start_us"] == us(burst_at[:11] + "00")]
    injected = {id(x) for _, x in hit_new + hit_burst}
    others = [x for _, x in alerts if id(x) not in injected]
    incident = [x for x in others if any(labels.get(b) == "Anomaly" for b in blocks(x))]
    hours = (us(last) - us(first) - rules.learn_s * 1_000_000) / 3.6e9
    ttl_new = ((hit_new[0][0] + 1) * MIN - us(new_at)) / 1e6 if hit_new else None
    ttl_burst = ((hit_burst[0][0] + 1) * MIN - us(burst_at[:11] + "00")) / 1e6 if hit_burst else None
    base = baseline_rule(groups, int(rules.learn_s * 1_000_000), rules.ratio, rules.min_count)
    base_hit = any(h == "dn1" and w * MIN == us(burst_at[:11] + "00") for h, _, w in base)
    result = {
        "bench": "patterns", "data": what, "lines": len(lines), "burst_lines": a.burst, "untimed": untimed,
        "replay_hours_after_learning": round(hours, 2), "ingest_s": round(ingest_s, 1),
        "stage_batch_s": round(batch_s, 2), "busiest_minute_events": int(busiest["count"]),
        "new_template_found": bool(hit_new), "time_to_alert_new_s": ttl_new,
        "rate_surge_found": bool(hit_burst), "time_to_alert_surge_s": ttl_burst,
        "other_alerts": len(others), "other_alerts_on_anomalous_blocks": len(incident),
        "false_alerts_per_hour": round((len(others) - len(incident)) / hours, 3) if hours > 0 else None,
        "other_alerts_by_kind": {k: sum(x["kind"] == k for x in others) for k in ("new_template", "rate_surge")},
        "baseline_mean_rule_surges": len(base), "baseline_mean_rule_found_burst": base_hit,
        "baseline_mean_rule_false_per_hour": round((len(base) - int(base_hit)) / hours, 3) if hours > 0 else None,
    }
    print(f"{what}: {len(lines):,} lines; {hours:.1f} h replayed after {rules.learn_s / 3600:.0f} h of history")
    print(f"  new template  found {bool(hit_new)}, {ttl_new} s of event time after its first line")
    print(f"  rate surge    found {bool(hit_burst)}, {ttl_burst} s after the burst began ({a.burst} lines in a minute)")
    print(f"  other alerts  {len(others)} ({len(incident)} on blocks LogHub labels anomalous): "
          f"{result['false_alerts_per_hour']} false alerts per hour")
    print(f"  baseline (mean + 6 sd per minute): {len(base)} surges, burst found {base_hit}, "
          f"{result['baseline_mean_rule_false_per_hour']} false per hour")
    print(f"  stage cost: {batch_s:.2f} s per one-minute batch of {busiest['count']} events (median of 5)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
