"""The model registry on storage: ``<models>/<name>/v<N>/`` holds ``model.json`` (written last, by
``logad train``) and the artifact: ``model.pt`` for a sequence model, the Spark ML folder ``model``
for a count detector, ``detector.json`` for a detector of normal (:mod:`logad.models.detectors`); ``<models>/<name>/promoted.json`` names the version the stream scores with.
The versions of one name may be different detectors (``logad retrain --model att_gru,tree``
registers both and promotes the better), so a name is the detector *slot* a stream serves.

Promotion is one atomic file replace, so a running ``logad score`` sees the old or the new
version, never half of one; it checks the file at every micro-batch.

Example:
    >>> promote("/data/logad/models", "att_gru", 3)  # doctest: +SKIP
    >>> resolve("/data/logad/models", "att_gru", "promoted")  # doctest: +SKIP
    (3, PosixPath('/data/logad/models/att_gru/v3/model.pt'))
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from logad.errors import LogadError
from logad.models.detectors import DETECTORS

PROMOTED = "promoted.json"

# a sequence model's file, then each Spark-side detector's (a count detector's Spark ML folder, a
# detector of normal's JSON)
ARTIFACTS = ("model.pt", *dict.fromkeys(d.artifact for d in DETECTORS.values()))


def versions(models_dir: str | Path, name: str) -> list[int]:
    """The registered versions of a model, oldest first (folders with a model.json and an artifact)."""
    root = Path(models_dir) / name
    return sorted(int(p.name[1:]) for p in root.glob("v*") if p.name[1:].isdigit() and (p / "model.json").exists()
                  and any((p / a).exists() for a in ARTIFACTS))


def artifact(models_dir: str | Path, name: str, version: int) -> Path:
    """The artifact of a version: ``model.pt`` (sequence model), ``model/`` (count detector) or
    ``detector.json`` (detector of normal)."""
    root = Path(models_dir) / name / f"v{version}"
    for a in ARTIFACTS:
        if (root / a).exists():
            return root / a
    raise LogadError(f"no model artifact in {root} (neither {' nor '.join(ARTIFACTS)})")


def info(models_dir: str | Path, name: str, version: int) -> dict[str, Any]:
    """A version's ``model.json``."""
    path = Path(models_dir) / name / f"v{version}" / "model.json"
    if not path.exists():
        raise LogadError(f"no model {name} v{version} under {models_dir} (no {path})")
    return dict(json.loads(path.read_text()))


def promoted(models_dir: str | Path, name: str) -> int | None:
    """The promoted version, or None."""
    path = Path(models_dir) / name / PROMOTED
    if not path.exists():
        return None
    try:
        return int(json.loads(path.read_text())["version"])
    except (ValueError, KeyError, TypeError) as e:
        raise LogadError(f"{path} is damaged ({e}); promote a version again") from e


def promote(models_dir: str | Path, name: str, version: int, reason: str = "") -> Path:
    """Make ``version`` the one the stream scores with (atomic replace)."""
    if version not in versions(models_dir, name):
        raise LogadError(f"no model {name} v{version} under {models_dir}; versions: "
                         f"{versions(models_dir, name) or 'none'}")
    path = Path(models_dir) / name / PROMOTED
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": version, "reason": reason,
                               "promoted_at": dt.datetime.now(dt.UTC).isoformat()}))
    os.replace(tmp, path)
    return path


def resolve(models_dir: str | Path, name: str, which: str | int = "promoted") -> tuple[int, Path]:
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
