"""Labelled sequences for training and evaluation, from files (until the ``sessions`` table is
built, and for the published session files).

- :func:`block_sessions`: raw HDFS lines -> one template-id sequence per block, templates mined
  with our masking + Drain, in line order (what the sessions stage will do in Spark).
- :func:`read_labels`: LogHub's ``BlockId,Label`` files (``Normal`` / ``Anomaly``).
- :func:`read_ait`: the AIT ``BlockId,<event ids>`` session files and their template list.

Example:
    >>> seqs, texts = block_sessions(open("HDFS.log"))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Iterable
from pathlib import Path

from logad.errors import LogadError
from logad.parse.formats import BLOCK_ID, content_of

BLOCK = re.compile(BLOCK_ID)


def _open_text(path: str | Path) -> Iterable[str]:
    path = Path(path)
    if not path.exists():
        raise LogadError(f"no file at {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def block_sessions(lines: Iterable[str], parser: str = "drain") -> tuple[dict[str, list[str]], dict[str, str]]:
    """Block id -> template ids in line order, and template id -> text (final templates)."""
    from logad.templates import make_miner, template_id
    from logad.templates.masking import DEFAULT_RULES, mask

    miner = make_miner(parser)
    raw: dict[str, list[str]] = {}
    for line in lines:
        content = content_of("hdfs", line.rstrip("\r\n"))  # the ingest parser's regex
        if content is None:
            continue
        masked = mask(content, DEFAULT_RULES)
        miner.add(masked)
        for block in dict.fromkeys(BLOCK.findall(content)):
            raw.setdefault(block, []).append(masked)
    cache: dict[str, str] = {}
    texts: dict[str, str] = {}

    def tid(masked: str) -> str:
        if masked not in cache:
            text = miner.match(masked) or masked
            cache[masked] = template_id(text)
            texts[cache[masked]] = text
        return cache[masked]

    return {b: [tid(x) for x in seq] for b, seq in raw.items()}, texts


def read_labels(path: str | Path) -> dict[str, int]:
    """``BlockId,Label`` -> block id -> 1 (Anomaly) or 0 (Normal)."""
    out: dict[str, int] = {}
    for row in csv.DictReader(_open_text(path)):
        label = row.get("Label", "")
        if label not in ("Normal", "Anomaly"):
            raise LogadError(f"{path}: label {label!r} for {row.get('BlockId')} is neither Normal nor Anomaly")
        out[row["BlockId"]] = int(label == "Anomaly")
    return out


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
