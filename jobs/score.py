"""Score closed sessions as they arrive: the ``scores`` Delta table and JSON alerts on a Kafka
topic, with the promoted model (swapped at a batch boundary when another version is promoted).

    ./submit.sh --master yarn score -- --warehouse hdfs:///logad --bootstrap kafka1:9092

Exits 2 with one line naming the setting to fix when a setting is wrong, 1 on other failures.
"""

from __future__ import annotations

import sys

from logad.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
