"""Stream the ``events`` table into the ``sessions`` table (Task workflows, blocks, windows).

Stops between micro-batches on SIGTERM or Ctrl-C, like ingest.

    ./submit.sh --master yarn sessions -- --warehouse hdfs:///logad --system spark --system hdfs

Exits 2 with one line naming the setting to fix when a setting is wrong, 1 on other failures.
"""

from __future__ import annotations

import sys

from logad.cli import main

if __name__ == "__main__":
    sys.exit(main(["sessions", "run", *sys.argv[1:]]))
