"""Stream Kafka records into the ``raw_logs``, ``events`` and ``rejects`` Delta tables.

Stops between micro-batches on SIGTERM or Ctrl-C (see ``logad.ingest.run``).

    ./submit.sh --master yarn ingest -- --bootstrap broker1:9092 --warehouse hdfs:///logad

Exits 2 with one line naming the setting to fix when a setting is wrong, 1 on other failures.
"""

from __future__ import annotations

import sys

from logad.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
