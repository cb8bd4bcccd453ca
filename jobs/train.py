"""Train a model from a pinned version of the ``sessions`` table, across Spark executors
(petastorm -> torch DataLoader, TorchDistributor; gloo on CPU, NCCL with ``--use-gpu``).

    ./submit.sh --master yarn train -- --warehouse hdfs:///logad --system hdfs --num-processes 4 --use-gpu

Exits 2 with one line naming the setting to fix when a setting is wrong, 1 on other failures.
"""

from __future__ import annotations

import sys

from logad.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
