"""Streaming checkpoints: check one before a query starts, so a broken one gets a clear error.

Spark's own message for a damaged checkpoint is a deep JVM stack. This reads the files Spark will
read (``metadata``, ``offsets/<n>``, ``commits/<n>``) and says which one is broken and what to do.
"""

from __future__ import annotations

import json
import re

from logad.errors import CheckpointError
from logad.io import fs

_BATCH = re.compile(r"^\d+$")


def _source_offset_ok(value: object) -> bool:
    """A Kafka source's offsets (``{topic: {partition: offset}}``) must be whole numbers; other
    sources' offsets (Delta's) are not of that shape and pass."""
    if not isinstance(value, dict) or not value or not all(isinstance(v, dict) for v in value.values()):
        return True
    return all(isinstance(o, int) and not isinstance(o, bool) and p.lstrip("-").isdigit()
               for parts in value.values() for p, o in parts.items())


def validate(checkpoint: str, setting: str = "--query-name") -> str | None:
    """Check the checkpoint at ``checkpoint``; return its query id (None for a new one).

    Raises:
        CheckpointError: naming the broken file and the setting to change.
    """
    root = checkpoint
    if not fs.exists(root):
        return None
    if not fs.is_dir(root):
        raise CheckpointError(f"the checkpoint location {checkpoint} is a file, not a folder: move it "
                              f"aside or run the query under a new {setting}")

    def broken(path: str, why: str) -> CheckpointError:
        return CheckpointError(
            f"the checkpoint at {checkpoint} is damaged: {path} {why}. Move the folder aside to "
            "start over from --starting-offsets (records may be read again), or run the query "
            f"under a new {setting} (a new checkpoint)")

    query_id = None
    if fs.exists(fs.join(root, "metadata")):
        text = fs.read_bytes(fs.join(root, "metadata")).decode("utf-8", "replace")
        try:
            query_id = json.loads(text.splitlines()[0])["id"]
        except (ValueError, IndexError, KeyError, TypeError):
            raise broken("metadata", "is not the JSON Spark writes") from None
    for log_dir in ("offsets", "commits"):
        for base_name in fs.listdir(fs.join(root, log_dir)):
            if not _BATCH.match(base_name):
                continue
            lines = fs.read_bytes(fs.join(root, log_dir, base_name)).decode("utf-8", "replace").splitlines()
            if not lines or not re.fullmatch(r"v\d+", lines[0]):
                raise broken(f"{log_dir}/{base_name}", "has no version header")
            for n, line in enumerate(lines[1:]):
                if line.strip() and line.strip() != "-":
                    try:
                        value = json.loads(line)
                    except ValueError:
                        raise broken(f"{log_dir}/{base_name}", "holds a line that is not JSON") from None
                    if log_dir == "offsets" and n > 0 and not _source_offset_ok(value):
                        raise broken(f"{log_dir}/{base_name}",
                                     f"holds a Kafka offset that is not a whole number: {line.strip()[:120]}")
    return query_id
