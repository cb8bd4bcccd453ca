"""Scoring speed: the Spark pandas UDF (Iterator form) vs the model called directly in one process.

A small ATT-GRU is trained for a few epochs on windows of the bundled HDFS_blocks600 sessions (the
speed of scoring does not depend on how good it is), saved as an artifact, and --windows windows
of 10 events (the sessions' own windows, repeated) are scored:

- ceiling: the model called directly in this process, batches of 4096, torch on both cores;
- UDF: :func:`logad.models.inference.score_inputs` over a cached DataFrame of the same windows,
  Spark ``local[2]``, written to the ``noop`` sink; the first run (Python workers start, the
  model loads) is reported apart from the warm runs.

    .venv/bin/python bench/score.py [--windows 200000]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import ROOT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()

    import logging

    import numpy as np
    import torch

    from logad.models.evaluate import _windows, hdfs_block_sessions
    from logad.models.fit import Example, TrainConfig, encode, fit, save_artifact
    from logad.models.sequence import ModelConfig
    from logad.models.vectors import train_vectors

    logging.basicConfig(level=logging.WARNING)
    raw = ROOT / "data" / "samples"
    seqs, texts, labels = hdfs_block_sessions(raw / "HDFS_blocks600.log.gz",
                                              raw / "HDFS_blocks600.anomaly_label.csv.gz")
    tv = train_vectors(texts, dim=32)
    sessions = [([tv.index(t) for t in seqs[b]], labels[b]) for b in sorted(seqs) if b in labels]
    wins = [Example(w, y) for w, y in _windows(sessions, 10)[0]]
    config = ModelConfig(vocab_size=tv.size)
    result = fit(config, TrainConfig(epochs=2, batch_size=512), wins, wins[:500], torch.from_numpy(tv.matrix))
    tmp = Path(tempfile.mkdtemp(prefix="bench-score-"))
    artifact = save_artifact(tmp / "model.pt", result, template_ids=tv.ids, vectors=tv.matrix, metrics_={})
    batch = [wins[i % len(wins)] for i in range(a.windows)]
    x, lengths, _, _ = encode(batch, config, 10)
    x = torch.nn.functional.pad(x, (0, 10 - x.shape[1]))

    torch.set_num_threads(2)
    model = result.model.eval()
    started = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(x), 4096):
            model(x[s:s + 4096], lengths[s:s + 4096])
    ceiling = a.windows / (time.perf_counter() - started)

    from logad.models.inference import score_inputs
    from logad.spark_session import get_spark

    spark = get_spark("bench-score", master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    xs, ns = x.numpy().astype(np.int32), lengths.numpy().astype(np.int32)
    rows = [(f"s{i}", 0, 0, xs[i].tolist(), int(ns[i]), [1] * 10) for i in range(a.windows)]
    df = spark.createDataFrame(rows, "session_id string, label int, window int, x array<int>, length int, "
                                     "repeats array<int>").repartition(2).cache()
    df.count()
    times = []
    for _ in range(a.runs):
        started = time.perf_counter()
        score_inputs(df, str(artifact)).write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - started)
    first, warm = a.windows / times[0], a.windows / min(times[1:] or times)
    out = {"bench": "score", "windows": a.windows, "ceiling_windows_per_s": round(ceiling),
           "udf_first_windows_per_s": round(first), "udf_warm_windows_per_s": round(warm),
           "udf_warm_vs_ceiling": round(warm / ceiling, 2)}
    print(f"{'path':<58}{'windows/s':>12}{'vs ceiling':>12}")
    print(f"{'model called directly, one process, 2 threads (ceiling)':<58}{out['ceiling_windows_per_s']:>12,}{1.0:>12}")
    print(f"{'pandas UDF, local[2], first run (workers start, model loads)':<58}"
          f"{out['udf_first_windows_per_s']:>12,}{first / ceiling:>12.2f}")
    print(f"{'pandas UDF, local[2], warm':<58}{out['udf_warm_windows_per_s']:>12,}{out['udf_warm_vs_ceiling']:>12}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
