"""logad's own JVM module (``jvm/`` in the repository): the per-line work Spark runs at JVM speed.

Today it holds :class:`logad.jvm.Mask`, the default masking rules as one call per line (see
:mod:`logad.templates.masking`), called from Spark SQL with the built-in ``java_method``: the
module has no dependencies, so it builds against the JDK alone and works on any Spark 4.x.

Maven builds it from the repository into ``jvm/target/logad-jvm.jar`` on first use (``make``
does it with the virtual environment; :func:`jar` does it when the jar is missing or older than
its sources). Where ``mvn`` is not on the PATH, Apache Maven itself is fetched once from Maven
Central into logad's cache (checked against its published SHA-512). ``$LOGAD_JVM_JAR`` names a
jar built elsewhere (a cluster's library folder); without a jar logad runs the same rules as
Spark regexes, slower, and says so once.

    python -m logad.jvm build      # build (or rebuild) the jar, print its path
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path

from logad.errors import JarsError

log = logging.getLogger(__name__)

MAVEN_VERSION = "3.9.16"
SOURCES = Path(__file__).resolve().parents[2] / "jvm"  # in a checkout: <repo>/jvm
JAR_NAME = "logad-jvm.jar"
MASK_CLASS = "logad.jvm.Mask"


def source_dir() -> Path | None:
    """The module's sources (``<repo>/jvm``), None when logad was installed without them."""
    return SOURCES if (SOURCES / "pom.xml").is_file() else None


def _built() -> Path:
    """Where Maven leaves the jar in a checkout."""
    return SOURCES / "target" / JAR_NAME


def _newest_source(src: Path) -> float:
    files = [src / "pom.xml", *(p for p in (src / "src").rglob("*") if p.is_file())]
    return max(p.stat().st_mtime for p in files)


def maven() -> str:
    """A ``mvn`` to run: the one on the PATH, else Apache Maven fetched once into logad's cache."""
    found = shutil.which("mvn")
    if found:
        return found
    from logad.jars import MAVEN_CENTRAL, cache_dir

    home = cache_dir() / "maven" / f"apache-maven-{MAVEN_VERSION}"
    mvn = home / "bin" / "mvn"
    if mvn.is_file():
        return str(mvn)
    name = f"apache-maven-{MAVEN_VERSION}-bin.tar.gz"
    url = f"{MAVEN_CENTRAL}org/apache/maven/apache-maven/{MAVEN_VERSION}/{name}"
    log.info("fetching Apache Maven %s from %s (first use only)", MAVEN_VERSION, url)
    try:
        data = urllib.request.urlopen(url, timeout=120).read()
        expected = urllib.request.urlopen(url + ".sha512", timeout=60).read().decode().split()[0]
    except OSError as e:
        raise JarsError(f"cannot fetch Apache Maven from {url} ({e}): install Maven (mvn on the PATH) "
                        f"or set LOGAD_JVM_JAR to a built {JAR_NAME}") from e
    if hashlib.sha512(data).hexdigest() != expected.lower():
        raise JarsError(f"{url}: SHA-512 does not match {url}.sha512; not using it")
    home.parent.mkdir(parents=True, exist_ok=True)
    tmp = home.parent / f".{name}.part"
    tmp.write_bytes(data)
    with tarfile.open(tmp) as tar:
        tar.extractall(home.parent, filter="data")
    tmp.unlink()
    mvn.chmod(0o755)
    return str(mvn)


def build(force: bool = False) -> Path:
    """Build the jar with Maven when it is missing, older than its sources, or ``force``; its path.

    Raises:
        JarsError: no sources (an install without the repository), or Maven failed.
    """
    src = source_dir()
    if src is None:
        raise JarsError(f"logad's JVM sources are not here ({SOURCES}); set LOGAD_JVM_JAR to a built {JAR_NAME}")
    out = _built()
    if not force and out.is_file() and out.stat().st_mtime >= _newest_source(src):
        return out
    import fcntl

    from logad.jars import cache_dir

    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "jvm-build.lock", "w") as lock:  # one build at a time on this machine
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and out.is_file() and out.stat().st_mtime >= _newest_source(src):
            return out
        cmd = [maven(), "-q", "-B", "-f", str(src / "pom.xml"), "package", "-DskipTests"]
        log.info("building logad's JVM module: %s", " ".join(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            raise JarsError(f"building {src} with Maven failed (exit {done.returncode}):\n"
                            f"{(done.stdout + done.stderr)[-3000:]}")
    return out


def jar(build_missing: bool = True) -> Path | None:
    """The jar to put on Spark's classpath: ``$LOGAD_JVM_JAR``, else the checkout's build (made or
    refreshed here when ``build_missing``); None when there is none (logged, not raised: logad
    then runs the regexes)."""
    explicit = os.environ.get("LOGAD_JVM_JAR")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise JarsError(f"LOGAD_JVM_JAR={explicit}: no such file")
        return path
    if source_dir() is None:
        return None
    if not build_missing:
        return _built() if _built().is_file() else None
    try:
        return build()
    except JarsError as e:
        log.warning("%s; masking runs as Spark regexes (slower, same result)", e)
        return None


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m logad.jvm", description="Build logad's JVM module.")
    ap.add_argument("command", choices=["build"])
    ap.add_argument("--force", action="store_true", help="rebuild even when the jar is up to date")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(build(force=args.force))


if __name__ == "__main__":
    main()
