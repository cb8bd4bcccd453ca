"""What a YARN job needs on the cluster's filesystem, staged once and reused by every submit.

- **Spark's jars** (``spark.yarn.archive``): without it, spark-submit zips and uploads the ~400 MB
  of ``$SPARK_HOME/jars`` for every application. Staged as
  ``<fs>/user/<user>/.logad/spark-<version>-jars.zip``.
- **The Python environment** (``--archives <uri>#environment``, as Spark's docs show for a packed
  virtualenv): the project's ``.venv`` as a tar (logad itself travels as ``--py-files``, so its
  editable install is left out), cached locally under the jar cache by the hash of what is
  installed, uploaded once as ``<fs>/user/<user>/.logad/envs/logad-env-<hash>.tar``. YARN
  localizes an archive once per NodeManager and user while its file is unchanged, so only the
  first job on a node pays for unpacking it.

The environment's ``bin/python`` links to the interpreter the venv was made from, so every node
needs Python at that path (the same image); a relocatable interpreter (conda-pack) lifts that.

Used by ``submit.sh`` (``python -m logad.yarn jars|env VENV``), which prints each URI it adds.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from logad.errors import ConfigError
from logad.io import fs

log = logging.getLogger(__name__)


def default_fs() -> str:
    """``fs.defaultFS`` of ``HADOOP_CONF_DIR``'s configuration (``hdfs://nn:8020``)."""
    if not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
        raise ConfigError("HADOOP_CONF_DIR is not set: point it at the cluster's Hadoop configuration "
                          "(for the local one: eval \"$(logad hadoop env)\")")
    return fs.default_filesystem()


def staging_root() -> str:
    return f"{default_fs()}/user/{getpass.getuser()}/.logad"


def _stage(local: Path, uri: str) -> str:
    """Upload ``local`` to ``uri`` unless a file of the same size is there."""
    if fs.exists(uri) and fs.size(uri) == local.stat().st_size:
        return uri
    log.warning("uploading %s (%.0f MB) to %s (once)", local.name, local.stat().st_size / 2**20, uri)
    tmp = f"{uri}.uploading"
    fs.delete(tmp)
    fs.mkdirs(fs.parent(uri))
    fs.put(local, tmp)
    fs.rename(tmp, uri, overwrite=True)
    return uri


def spark_jars() -> str:
    """The URI of Spark's jars on the cluster (``spark.yarn.archive``), staged once."""
    import pyspark

    from logad import jars

    version = pyspark.__version__
    local = jars.cache_dir() / "yarn" / f"spark-{version}-jars.zip"
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # jars are compressed already
            for jar in sorted(jars.spark_jars_dir().glob("*.jar")):
                z.write(jar, jar.name)
        tmp.replace(local)
    return _stage(local, f"{staging_root()}/spark-{version}-jars.zip")


def _installed(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
                         capture_output=True, text=True, check=True)
    return hashlib.sha256((sys.version + out.stdout).encode()).hexdigest()[:12]


def pack_env(venv: Path) -> Path:
    """``venv`` as a tar in the local cache (made once per set of installed packages)."""
    from logad import jars

    venv = venv.absolute()
    if not (venv / "bin" / "python").exists():
        raise ConfigError(f"{venv} is not a virtualenv (no bin/python): run 'make venv' first")
    local = jars.cache_dir() / "yarn" / f"logad-env-{_installed(venv)}.tar"
    if local.is_file():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    log.warning("packing %s into %s (once per set of installed packages)", venv, local)

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name
        if "__pycache__" in name or "__editable__" in name or name.endswith(".pyc") \
                or "/logad-" in name and ".dist-info" in name:
            return None
        return info

    tmp = local.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as t:  # uncompressed: YARN unpacks it on local disks
        for child in sorted(venv.iterdir()):
            t.add(child, child.name, filter=keep)
    tmp.replace(local)
    return local


def env_archive(venv: Path) -> str:
    """The URI of the packed ``venv`` on the cluster, packed and staged once."""
    local = pack_env(venv)
    return _stage(local, f"{staging_root()}/envs/{local.name}")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["jars"]:
        print(spark_jars())
    elif argv[:1] == ["env"] and len(argv) == 2:
        print(env_archive(Path(argv[1])))
    else:
        print("usage: python -m logad.yarn jars | env VENV", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
