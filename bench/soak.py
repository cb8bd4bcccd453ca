"""Soak: the shipper and the ingest stream under steady mixed load, killed again and again.

A writer appends real LogHub lines (HDFS, Spark, BGL samples from data/samples) to a log file at a
steady rate, with poison lines among them (invalid UTF-8, lines over the 64 KiB ingest limit,
impossible and out-of-range times); a second producer sends Filebeat-style JSON records with
wrong types straight to Kafka. ``logad ship`` tails the file and ``logad ingest`` streams Kafka
into Delta. During the run both get SIGKILL ``--kills`` times each (restarted at once) and the
broker is restarted once. Then everything drains and the tables are counted against what was
written, by a sequence number every line carries.

Prints figures and one JSON line:
  lines_in, kafka_records, lost, repeated_by_shipper (records the shipper sent twice: those in
  flight at a kill, at-least-once by design), table_duplicates (rows for one Kafka record more
  than once: exactly-once from Kafka to the tables), rejected by reason, the longest stretch
  without a committed ingest batch while the stream was meant to run (stream_down_max_s) and
  the longest restart (kill to the next committed batch), and the longest gap with no kill in it
  (down_without_kill_max_s: the broker restart, or a stall). Target: lost 0, table_duplicates 0,
  the stream never down longer than one restart.

Usage:  python bench/soak.py [--minutes 10] [--kills 10] [--rate 300]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, free_port

SAMPLES = ROOT / "data" / "samples"
LOGAD = str(Path(sys.executable).parent / "logad")
SEQ = re.compile(rb"seq=(\d+)")


def real_lines() -> list[bytes]:
    out: list[bytes] = []
    for name in ("HDFS_first20000.log.gz", "Spark_2k.log.gz", "BGL_2k.log.gz"):
        out += gzip.decompress((SAMPLES / name).read_bytes()).splitlines()[:5000]
    return out


def poison(seq: int, rnd: random.Random) -> bytes:
    kind = rnd.randrange(5)
    if kind == 0:
        return b"\xff\xfe bad utf-8 seq=%d" % seq
    if kind == 1:
        return b"081109 203518 143 INFO dfs.DataNode: seq=%d " % seq + b"x" * 70_000
    if kind == 2:
        return b"081109 253518 143 INFO dfs.DataNode: hour 25 seq=%d" % seq
    if kind == 3:
        return b"9999-12-31T23:59:59-14:00 ERROR beyond every calendar seq=%d" % seq
    return b"- 99999999999 2005.06.03 R02 2005-06-03-15.42.50.999999 R02 RAS KERNEL INFO year 5138 seq=%d" % seq


class Proc:
    """A logad command kept running: restarted when killed, its stderr kept in a file."""

    def __init__(self, name: str, cmd: list[str], logdir: Path) -> None:
        self.name, self.cmd, self.logdir = name, cmd, logdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        err = (self.logdir / f"{self.name}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=err)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(300)
            except subprocess.TimeoutExpired:
                self.kill()


def batch_times(logdir: Path) -> list[float]:
    """Wall-clock times (1 s resolution: the CLI logs HH:MM:SS) of every committed ingest batch."""
    import datetime as dt

    now = time.time()
    today = dt.datetime.fromtimestamp(now).date()
    times = []
    for p in sorted(logdir.glob("ingest-*.log")):
        for line in p.read_text(errors="replace").splitlines():
            if " ingest batch " in line:
                try:
                    clock = dt.datetime.strptime(line[:8], "%H:%M:%S").time()
                except ValueError:
                    continue
                t = dt.datetime.combine(today, clock).timestamp()
                times.append(t - 86400 if t > now + 60 else t)  # a run that crossed midnight
    return sorted(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs of each of ship and ingest")
    ap.add_argument("--rate", type=int, default=300, help="lines written per second")
    ap.add_argument("--poison-every", type=int, default=100, help="one poison line per N lines")
    ap.add_argument("--dir", default="/tmp/logad-soak")
    a = ap.parse_args()

    from logad.config import Broker
    from logad.io import broker as broker_io

    work = Path(a.dir)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    logdir = work / "logs"
    logdir.mkdir(parents=True)
    broker = Broker(port=free_port(), state_dir=str(work / "broker"))
    broker_io.start(broker)
    log_file, wh = work / "app.log", work / "wh"
    log_file.touch()
    rnd = random.Random(7)
    lines = real_lines()
    written: list[int] = []  # seq of every line written (to the file or to Kafka directly)
    stop_writing = threading.Event()

    def writer() -> None:
        seq, period = 0, 1.0 / a.rate
        with log_file.open("ab", buffering=0) as f:
            nxt = time.monotonic()
            while not stop_writing.is_set():
                chunk = []
                for _ in range(max(1, a.rate // 20)):
                    line = (poison(seq, rnd) if seq % a.poison_every == a.poison_every - 1
                            else lines[seq % len(lines)] + b" seq=%d" % seq)
                    chunk.append(line + b"\n")
                    written.append(seq)
                    seq += 1
                f.write(b"".join(chunk))
                nxt += period * len(chunk)
                time.sleep(max(0.0, nxt - time.monotonic()))

    direct: list[int] = []

    def envelopes() -> None:  # Filebeat-style JSON with wrong types, straight to Kafka
        from confluent_kafka import Producer

        from logad.io.broker import create_topics
        from logad.produce import send

        create_topics(broker.bootstrap, {"logs.beats": 1})
        p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
        seq = 10**9
        while not stop_writing.is_set():
            offset = rnd.choice(['"abc"', "1e30", "12.5", "true", "18446744073709551616", str(seq)])
            msg = json.dumps(lines[seq % len(lines)].decode(errors="replace") + f" seq={seq}")
            record = '{"message": ' + msg + ', "host": {"name": "beat1"}, "log": {"offset": ' + offset + "}}"
            send(p, "logs.beats", record.encode())
            direct.append(seq)
            seq += 1
            p.poll(0)
            time.sleep(0.5)
        p.flush(60)

    ship = Proc("ship", [LOGAD, "ship", str(log_file), "--bootstrap", broker.bootstrap, "--host", "soak1",
                         "--registry", str(work / "registry.json"), "--poll-interval", "0.2"], logdir)
    ingest_cmd = [LOGAD, "ingest", "--bootstrap", broker.bootstrap, "--subscribe-pattern", r"logs\..*",
                  "--warehouse", str(wh), "--master", "local[2]", "--trigger", "1 second",
                  "--max-offsets-per-trigger", "20000"]
    ingest = Proc("ingest", ingest_cmd, logdir)
    threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=envelopes, daemon=True)]
    for t in threads:
        t.start()
    ship.start()
    ingest.start()
    t0 = time.monotonic()
    duration = a.minutes * 60
    events = sorted([("ship", t0 + duration * (i + 0.5) / a.kills) for i in range(a.kills)]
                    + [("ingest", t0 + duration * (i + 0.75) / a.kills) for i in range(a.kills)]
                    + [("broker", t0 + duration * 0.5)], key=lambda e: e[1])
    restarts: list[float] = []
    for what, at in events:
        time.sleep(max(0.0, at - time.monotonic()))
        if what == "broker":
            print(f"{time.monotonic() - t0:6.0f}s  broker restart", flush=True)
            broker_io.stop(broker)
            broker_io.start(broker)
            continue
        proc = ship if what == "ship" else ingest
        print(f"{time.monotonic() - t0:6.0f}s  SIGKILL {what}", flush=True)
        killed_at = time.time()
        proc.kill()
        proc.start()
        if what == "ingest":
            restarts.append(killed_at)
    time.sleep(max(0.0, t0 + duration - time.monotonic()))
    stop_writing.set()
    for t in threads:
        t.join(60)
    # drain: the shipper reaches the end of the file, then ingest catches up and stops
    size = log_file.stat().st_size
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        reg = json.loads((work / "registry.json").read_text()) if (work / "registry.json").exists() else {}
        if any(f["offset"] >= size for f in reg.get("files", {}).values()):
            break
        time.sleep(1)
    ship.stop()
    ingest.stop()
    down_end = time.time()
    subprocess.run([*ingest_cmd, "--once"], check=True, stdout=subprocess.DEVNULL,
                   stderr=(logdir / "ingest-final.log").open("wb"))

    from logad.io.delta import read_table
    from logad.spark_session import get_spark

    spark = get_spark("soak-count", master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")

    def seqs(table: str, column: str) -> tuple[list[int], int]:
        df = read_table(spark, str(wh / "tables" / table))
        rows = df.select("topic", "partition", "offset", column).collect()
        coords = Counter((r.topic, r.partition, r.offset) for r in rows)
        found = []
        for r in rows:
            raw = r[column] if isinstance(r[column], bytes | bytearray) else (r[column] or "").encode()
            m = SEQ.search(raw)
            if m:
                found.append(int(m.group(1)))
        return found, sum(c - 1 for c in coords.values())

    ev, ev_dup = seqs("events", "line")
    rj, rj_dup = seqs("rejects", "value")
    reasons = Counter(r.reason for r in read_table(spark, str(wh / "tables" / "rejects"))
                      .select("reason").collect())
    got = Counter(ev) + Counter(rj)
    expected = set(written) | set(direct)
    lost = len(expected - set(got))
    repeated = sum(c - 1 for c in got.values())
    kafka_records = len(ev) + len(rj)
    # downtime: the longest gap between committed batches while the stream ran, and per restart
    times = [t for t in batch_times(logdir) if t <= down_end]
    gaps = [(b - a, a, b) for a, b in zip(times, times[1:], strict=False)]
    restart_s = [next((t for t in times if t > k), down_end) - k for k in restarts]
    # a gap with no kill in it: the broker restart, or a stall the stream should not have
    calm = [g for g, a_, b_ in gaps if not any(a_ - 1 <= k <= b_ + 1 for k in restarts)]
    spark.stop()
    broker_io.stop(broker)
    result = {"bench": "soak", "minutes": a.minutes, "kills_each": a.kills, "broker_restarts": 1,
              "lines_in": len(expected), "kafka_records": kafka_records, "lost": lost,
              "repeated_by_shipper": repeated, "table_duplicates": ev_dup + rj_dup,
              "rejected": dict(reasons), "batches": len(times),
              "stream_down_max_s": round(max((g for g, _, _ in gaps), default=0), 1),
              "restart_s": [round(r, 1) for r in restart_s],
              "restart_max_s": round(max(restart_s, default=0), 1),
              "down_without_kill_max_s": round(max(calm, default=0), 1), "ship_starts": ship.starts,
              "ingest_starts": ingest.starts}
    print(f"lines in {result['lines_in']:,}  in the tables {len(got):,} distinct  lost {lost}  "
          f"repeated by the shipper {repeated}  table duplicates {result['table_duplicates']}")
    print(f"rejected by reason: {dict(reasons)}")
    print(f"stream down at most {result['stream_down_max_s']} s (one kill and its restart); slowest restart "
          f"{result['restart_max_s']} s; longest gap between batches with no kill in it "
          f"{result['down_without_kill_max_s']} s (the broker restart is in one)")
    print(json.dumps(result))
    os.environ.get("LOGAD_SOAK_KEEP") or subprocess.run(["rm", "-rf", str(work / "broker")], check=False)


if __name__ == "__main__":
    main()
