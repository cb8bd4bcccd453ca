"""Stream the ``events`` table into the ``sessions`` table (Task workflows, blocks, windows), or,
with ``backfill`` first, cut the whole table again in one batch job.

Stops between micro-batches on SIGTERM or Ctrl-C, like ingest.

    ./submit.sh --master yarn sessions -- --warehouse hdfs:///logad --system spark --system hdfs
    ./submit.sh --master yarn sessions -- backfill --warehouse hdfs:///logad --system hdfs

Exits 2 with one line naming the setting to fix when a setting is wrong, 1 on other failures.
"""

from __future__ import annotations

import sys

from logad.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(["sessions", *(args if args[:1] == ["backfill"] else ["run", *args])]))
