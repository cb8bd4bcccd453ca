"""Training speed: time to the target F1 on HDFS, and windows/s with 1 vs 2 TorchDistributor processes.

Data: the HDFS dev set of ``logad evaluate --protocol hdfs-blocks`` (5,917 blocks, 171 abnormal,
split by block 60/20/20 with the seed) when ``--data`` (default ``$LOGAD_DATA`` or ``../shared/data``)
has it; otherwise the bundled ``data/samples/HDFS_blocks600`` (600 blocks, 171 abnormal), and the
output says so.

- to target: ATT-GRU on whole blocks in one process; seconds until the validation F1 first
  reaches ``--target``, and the test F1 (unseen blocks) of the best epoch.
- throughput: the same model on sliding windows (10 events, batch 2048, the paper's), trained
  for ``--epochs-throughput`` epochs by TorchDistributor with 1 and with 2 processes (gloo, one
  thread each); windows/s from the epochs' own timings; the ratio 2p / 1p.

    .venv/bin/python bench/train.py [--target 0.98] [--epochs 30]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import ROOT


def load_split(data: Path, seed: int):  # type: ignore[no-untyped-def]
    """Whole HDFS blocks through the product's ingest and sessionizer, split 60/20/20 by block:
    the dev sample when ``data`` has it, else the bundled HDFS_blocks600 sample."""
    import random

    from logad.models.evaluate import Split, hdfs_block_sessions

    raw = data / "HDFS" / "raw"
    if (raw / "HDFS_dev_sample.log.gz").exists():
        files, name = (raw / "HDFS_dev_sample.log.gz", raw / "HDFS_dev_sample.anomaly_label.csv"), "HDFS dev set"
    else:
        print(f"HDFS dev set not found under {data}: using the bundled HDFS_blocks600 sample instead")
        samples = ROOT / "data" / "samples"
        files = (samples / "HDFS_blocks600.log.gz", samples / "HDFS_blocks600.anomaly_label.csv.gz")
        name = "HDFS_blocks600"
    seqs, texts, labels = hdfs_block_sessions(*files)
    blocks = sorted(b for b in seqs if b in labels)
    random.Random(seed).shuffle(blocks)
    a, b = int(0.6 * len(blocks)), int(0.8 * len(blocks))

    def part(bs: list[str]) -> list[tuple[list[str], int]]:
        return [(seqs[x], labels[x]) for x in bs]

    return Split(part(blocks[:a]), part(blocks[a:b]), part(blocks[b:]), texts, name), name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("LOGAD_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--epochs-throughput", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import logging

    import torch

    from logad.models.evaluate import _windows
    from logad.models.fit import Example, TrainConfig, fit, metrics, predict
    from logad.models.sequence import ModelConfig
    from logad.models.vectors import train_vectors

    logging.basicConfig(level=logging.WARNING)
    split, name = load_split(Path(a.data), a.seed)
    tv = train_vectors(split.templates, dim=32, seed=a.seed)

    def ex(part: list[tuple[list[str], int]]) -> list[Example]:
        return [Example([tv.index(t) for t in s], y) for s, y in part]

    train, valid, test = ex(split.train), ex(split.valid), ex(split.test)
    config = ModelConfig(vocab_size=tv.size)
    torch.set_num_threads(2)
    started = time.perf_counter()
    result = fit(config, TrainConfig(epochs=a.epochs, batch_size=128, patience=a.epochs, seed=a.seed),
                 train, valid, vectors=torch.from_numpy(tv.matrix))
    wall = time.perf_counter() - started
    elapsed, reached = 0.0, None
    for h in result.history:
        elapsed += h["seconds"]
        if reached is None and h["val_f1"] >= a.target:
            reached = (h["epoch"] + 1, elapsed)
    test_m = metrics([e.label for e in test], predict(result.model, test), result.threshold)

    from logad.models.distributed import train_with_distributor
    from logad.spark_session import get_spark

    spark = get_spark("bench-train", master="local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    wins = [Example(w, y) for w, y in _windows([(e.events, e.label) for e in train], config.window)[0]]
    small_valid = [Example(w, y) for w, y in _windows([(e.events, e.label) for e in valid], config.window)[0]][:500]
    rates = {}
    for procs in (1, 2):
        r = train_with_distributor(spark, config, TrainConfig(epochs=a.epochs_throughput, batch_size=2048,
                                                              patience=99, seed=a.seed),
                                   wins, small_valid, tv.matrix, num_processes=procs)
        secs = sum(h["seconds"] for h in r.history)
        rates[procs] = sum(h["examples"] for h in r.history) / secs

    out = {
        "bench": "train", "data": name, "train_sessions": len(train), "test_sessions": len(test),
        "target_f1": a.target, "epochs": len(result.history), "fit_seconds": round(wall, 1),
        "epochs_to_target": reached[0] if reached else None,
        "seconds_to_target": round(reached[1], 1) if reached else None,
        "best_epoch": result.best_epoch + 1, "best_val_f1": round(max(h["val_f1"] for h in result.history), 4),
        "test_precision": round(test_m["precision"], 4), "test_recall": round(test_m["recall"], 4),
        "test_f1": round(test_m["f1"], 4), "test_auc": round(test_m["auc"], 4),
        "train_windows": len(wins), "windows_per_s_1p": round(rates[1]), "windows_per_s_2p": round(rates[2]),
        "ratio_2p_over_1p": round(rates[2] / rates[1], 2),
    }
    print(f"{name}: {len(train)} train / {len(valid)} valid / {len(test)} test blocks")
    print(f"ATT-GRU, whole blocks, 1 process: target val F1 {a.target}: "
          + (f"epoch {reached[0]}, {reached[1]:.1f} s" if reached else f"not reached in {len(result.history)} epochs")
          + f"; best val F1 {out['best_val_f1']} (epoch {out['best_epoch']}); "
          f"test P {out['test_precision']} R {out['test_recall']} F1 {out['test_f1']} AUC {out['test_auc']}")
    print(f"{'windows/s':<28}{'1 process':>12}{'2 processes':>14}{'ratio':>8}")
    print(f"{'TorchDistributor (gloo)':<28}{out['windows_per_s_1p']:>12,}{out['windows_per_s_2p']:>14,}"
          f"{out['ratio_2p_over_1p']:>8}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
