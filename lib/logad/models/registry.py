"""The model registry on storage: ``<models>/<name>/v<N>/`` holds ``model.json`` (written last, by
``logad train``) and the artifact: ``model.pt`` for a sequence model, the Spark ML folder ``model``
for a count detector, ``detector.json`` for a detector of normal (:mod:`logad.models.detectors`); ``<models>/<name>/promoted.json`` names the version the stream scores with.
The versions of one name may be different detectors (``logad retrain --model att_gru,tree``
registers both and promotes the better), so a name is the detector *slot* a stream serves.

Promotion is one atomic file replace, so a running ``logad score`` sees the old or the new
version, never half of one; it checks the file at every micro-batch.

``models_dir`` is a path or a URI of any Hadoop filesystem (``hdfs:///logad/models``): every
read and write goes through :mod:`logad.io.fs`.

Example:
    >>> promote("/data/logad/models", "att_gru", 3)  # doctest: +SKIP
    >>> resolve("/data/logad/models", "att_gru", "promoted")  # doctest: +SKIP
    (3, '/data/logad/models/att_gru/v3/model.pt')
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from logad.errors import LogadError
from logad.io import fs
from logad.models.detectors import DETECTORS

PROMOTED = "promoted.json"

# a sequence model's file, then each Spark-side detector's (a count detector's Spark ML folder, a
# detector of normal's JSON)
ARTIFACTS = ("model.pt", *dict.fromkeys(d.artifact for d in DETECTORS.values()))


def versions(models_dir: str | Path, name: str) -> list[int]:
    """The registered versions of a model, oldest first (folders with a model.json and an artifact)."""
    root = fs.join(str(models_dir), name)
    found = []
    for v in fs.listdir(root):
        if v.startswith("v") and v[1:].isdigit():
            inside = set(fs.listdir(fs.join(root, v)))
            if "model.json" in inside and inside & set(ARTIFACTS):
                found.append(int(v[1:]))
    return sorted(found)


def artifact(models_dir: str | Path, name: str, version: int) -> str:
    """The artifact of a version: ``model.pt`` (sequence model), ``model/`` (count detector) or
    ``detector.json`` (detector of normal)."""
    root = fs.join(str(models_dir), name, f"v{version}")
    inside = set(fs.listdir(root))
    for a in ARTIFACTS:
        if a in inside:
            return fs.join(root, a)
    raise LogadError(f"no model artifact in {root} (neither {' nor '.join(ARTIFACTS)})")


def info(models_dir: str | Path, name: str, version: int) -> dict[str, Any]:
    """A version's ``model.json``."""
    path = fs.join(str(models_dir), name, f"v{version}", "model.json")
    if not fs.exists(path):
        raise LogadError(f"no model {name} v{version} under {models_dir} (no {path})")
    return dict(json.loads(fs.read_text(path)))


def promoted(models_dir: str | Path, name: str) -> int | None:
    """The promoted version, or None."""
    path = fs.join(str(models_dir), name, PROMOTED)
    if not fs.exists(path):
        return None
    try:
        return int(json.loads(fs.read_text(path))["version"])
    except (ValueError, KeyError, TypeError) as e:
        raise LogadError(f"{path} is damaged ({e}); promote a version again") from e


def promote(models_dir: str | Path, name: str, version: int, reason: str = "") -> str:
    """Make ``version`` the one the stream scores with (atomic replace)."""
    if version not in versions(models_dir, name):
        raise LogadError(f"no model {name} v{version} under {models_dir}; versions: "
                         f"{versions(models_dir, name) or 'none'}")
    path = fs.join(str(models_dir), name, PROMOTED)
    fs.write_text(path, json.dumps({"version": version, "reason": reason,
                                    "promoted_at": dt.datetime.now(dt.UTC).isoformat()}))
    return path


def resolve(models_dir: str | Path, name: str, which: str | int = "promoted") -> tuple[int, str]:
    """``promoted``, ``latest`` or a version number -> (version, artifact path)."""
    if which == "promoted":
        v = promoted(models_dir, name)
        if v is None:
            raise LogadError(f"no promoted {name} model under {models_dir}: run 'logad promote "
                             f"--model {name} --version N' (or 'logad train --promote')")
    elif which == "latest":
        vs = versions(models_dir, name)
        if not vs:
            raise LogadError(f"no {name} model under {models_dir}: run 'logad train' first")
        v = vs[-1]
    else:
        v = int(which)
    return v, artifact(models_dir, name, v)


__all__ = ["ARTIFACTS", "artifact", "info", "promote", "promoted", "resolve", "versions"]
