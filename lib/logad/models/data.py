"""The published HDFS session files of the ``hdfs-paper`` protocol: AIT's ``BlockId,<event ids>``
sessions and their template list (already parsed and sessionized by their authors; every
protocol built from raw logs goes through the product's own path instead,
:func:`logad.models.evaluate.pipeline_sessions`).

Example:
    >>> sessions = read_ait("ait_hdfs_loghub_train.txt")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

from logad.errors import LogadError


def _open_text(path: str | Path) -> Iterable[str]:
    path = Path(path)
    if not path.exists():
        raise LogadError(f"no file at {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def read_ait(path: str | Path) -> dict[str, list[str]]:
    """An AIT session file (``BlockId,<space-separated event ids>``) -> block -> event ids."""
    out: dict[str, list[str]] = {}
    for n, line in enumerate(_open_text(path), 1):
        line = line.strip()
        if not line:
            continue
        block, sep, events = line.partition(",")
        if not sep:
            raise LogadError(f"{path}:{n}: expected 'BlockId,<event ids>'")
        out[block] = events.split()
    return out


def read_ait_templates(path: str | Path) -> dict[str, str]:
    """The AIT template list: event id k (1-based line number) -> template text."""
    return {str(k): line.strip() for k, line in enumerate(_open_text(path), 1) if line.strip()}
