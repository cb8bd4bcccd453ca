"""Run logad live as one streaming query: Kafka -> raw_logs, events, templates -> sessions ->
scores + alerts, all in each micro-batch (``logad run``; see ``logad.pipeline``).

Stops between micro-batches on SIGTERM or Ctrl-C (see ``logad.ingest.run``).

    ./submit.sh --master yarn run -- --bootstrap broker1:9092 --warehouse hdfs:///logad --model hdfs

Exits 2 with one line naming the setting to fix when a setting is wrong, 1 on other failures.
"""

from __future__ import annotations

import sys

from logad.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
