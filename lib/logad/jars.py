"""JVM artifacts from Maven: Spark's Kafka connector and delta-spark, and the Apache Kafka broker.

One mechanism for both: Apache Ivy (the resolver Spark itself uses for ``spark.jars.packages``,
shipped inside pyspark) resolves a set of Maven coordinates once into a cache folder
(``$LOGAD_CACHE``, else ``$XDG_CACHE_HOME/logad``, else ``~/.cache/logad``), and later calls read
the list of jars back from there without touching the network. Jars that pyspark already ships
(Scala, Hadoop's client, slf4j...) are left out of the connectors, so the classpath holds one
copy of each.

The versions are pinned together here: the connectors match the installed pyspark and
delta-spark, the broker is one Apache Kafka 4.x release. A cluster does not use this module: it
gets the same coordinates from ``spark.jars.packages`` in ``conf/spark-defaults.conf``, a mirror,
or its platform.

Where Maven cannot be reached, :func:`resolve` raises :class:`~logad.errors.JarsError` with one
line naming what to set: a mirror (``spark.jars.repositories`` or ``$LOGAD_MAVEN_REPOS``), an Ivy
settings file (``spark.jars.ivySettings`` or ``$LOGAD_IVY_SETTINGS``), or jars already on the
classpath (``spark.jars``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from xml.sax.saxutils import quoteattr

from logad.errors import JarsError

log = logging.getLogger(__name__)

MAVEN_CENTRAL = "https://repo1.maven.org/maven2/"
SCALA = "2.13"
# Apache Kafka for the local broker (KRaft, no ZooKeeper). Its slf4j 1.x API needs the log4j2
# binding of the same line, or the broker logs nothing.
KAFKA_VERSION = "4.1.1"
BROKER = (f"org.apache.kafka:kafka_{SCALA}:{KAFKA_VERSION}",
          "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3")


def connectors() -> tuple[str, ...]:
    """The Kafka connector and delta-spark coordinates matching the installed Python packages.

    Example:
        >>> connectors()  # doctest: +SKIP
        ('org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.0', 'io.delta:delta-spark_2.13:4.0.0')
    """
    spark = metadata.version("pyspark")
    delta = metadata.version("delta-spark")
    return (f"org.apache.spark:spark-sql-kafka-0-10_{SCALA}:{spark}",
            f"io.delta:delta-spark_{SCALA}:{delta}")


def cache_dir() -> Path:
    """Where resolved jars and Ivy's cache live, shared by every checkout on this machine."""
    explicit = os.environ.get("LOGAD_CACHE")
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "logad"


def ivy_home() -> Path:
    """Ivy's home (``spark.jars.ivy``): spark-submit's own resolution shares the cache."""
    return cache_dir() / "ivy2"


def spark_jars_dir() -> Path:
    """The jars pyspark ships (``$SPARK_HOME/jars`` of the pip install)."""
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _ivy_jar() -> Path:
    found = sorted(spark_jars_dir().glob("ivy-*.jar"))
    if not found:
        raise JarsError(f"no Ivy jar in {spark_jars_dir()}: reinstall pyspark (pip install pyspark)")
    return found[-1]


def repositories(extra: str | None = None) -> list[str]:
    """Maven repositories to try, in order: ``extra`` (comma-separated, as in
    ``spark.jars.repositories``), ``$LOGAD_MAVEN_REPOS``, then Maven Central."""
    listed = ",".join(x for x in (extra, os.environ.get("LOGAD_MAVEN_REPOS")) if x)
    repos = [r.strip() for r in listed.split(",") if r.strip()]
    return [*repos, MAVEN_CENTRAL]


def resolve(coordinates: Sequence[str], *, purpose: str, repos: str | None = None,
            ivy_settings: str | None = None, skip_shipped: bool = True) -> list[str]:
    """The jars of ``coordinates`` (``group:artifact:version``) and their dependencies.

    Resolved from Maven into the cache on first use (logged as a download), read back from it
    afterwards. ``skip_shipped`` leaves out artifacts pyspark already ships.

    Raises:
        JarsError: a coordinate is malformed, or Maven (or the mirror) cannot be reached.
    """
    for c in coordinates:
        if len(c.split(":")) != 3 or not all(c.split(":")):
            raise JarsError(f"Maven coordinate {c!r} is not group:artifact:version")
    settings = ivy_settings or os.environ.get("LOGAD_IVY_SETTINGS")
    repo_list = repositories(repos)
    key = hashlib.sha1("\n".join([*sorted(coordinates), *repo_list, settings or "",
                                  str(skip_shipped)]).encode()).hexdigest()[:12]
    dest = cache_dir() / "jars" / f"{purpose}-{key}"
    manifest = dest / "jars.txt"
    if manifest.is_file():
        jars = [line for line in manifest.read_text().splitlines() if line]
        if jars and all(os.path.isfile(j) for j in jars):
            return jars
    log.warning("downloading %s jars from Maven (first use only; cached in %s): %s",
                purpose, dest, ", ".join(coordinates))
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="logad-ivy-") as tmp:
        module = Path(tmp) / "ivy.xml"
        module.write_text(_module_xml(coordinates))
        cmd = ["java", "-jar", str(_ivy_jar()), "-ivy", str(module),
               "-cache", str(ivy_home() / "cache"), "-confs", "default", "-types", "jar", "bundle",
               "-retrieve", str(dest / "[organisation]__[artifact]-[revision](-[classifier]).[ext]")]
        if settings:
            cmd[3:3] = ["-settings", settings]
        else:
            generated = Path(tmp) / "ivysettings.xml"
            generated.write_text(_settings_xml(repo_list))
            cmd[3:3] = ["-settings", str(generated)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except FileNotFoundError as e:
            raise JarsError("java is not on PATH: install Java 17 (Spark and Kafka run on the JVM)") from e
        except subprocess.TimeoutExpired as e:
            raise JarsError(_unreachable(purpose, "no answer in 600 s")) from e
    if out.returncode != 0:
        raise JarsError(_unreachable(purpose, _first_problem(out.stdout + out.stderr)))
    shipped = {_artifact(p.name) for p in spark_jars_dir().glob("*.jar")} if skip_shipped else set()
    jars = sorted(str(p) for p in dest.glob("*.jar")
                  if _artifact(p.name.split("__", 1)[-1]) not in shipped)
    manifest.write_text("\n".join(jars) + "\n")
    log.info("%s: %d jars in %s", purpose, len(jars), dest)
    return jars


def _module_xml(coordinates: Sequence[str]) -> str:
    deps = "\n".join(
        f'    <dependency org={quoteattr(g)} name={quoteattr(a)} rev={quoteattr(v)} '
        'conf="default->runtime(*),master(*)"/>'
        for g, a, v in (c.split(":") for c in coordinates))
    return ('<ivy-module version="2.0">\n  <info organisation="logad" module="resolve"/>\n'
            f"  <dependencies>\n{deps}\n  </dependencies>\n</ivy-module>\n")


def _settings_xml(repos: Sequence[str]) -> str:
    resolvers = "\n".join(
        f'      <ibiblio name="repo{i}" m2compatible="true" root={quoteattr(r)}/>'
        for i, r in enumerate(repos))
    return ('<ivysettings>\n  <settings defaultResolver="chain"/>\n  <resolvers>\n'
            f'    <chain name="chain" returnFirst="true">\n{resolvers}\n    </chain>\n'
            "  </resolvers>\n</ivysettings>\n")


def _artifact(filename: str) -> str:
    """``kafka-clients-3.9.0.jar`` -> ``kafka-clients`` (the name without version)."""
    stem = filename[:-4] if filename.endswith(".jar") else filename
    parts = stem.split("-")
    for i, part in enumerate(parts):
        if part[:1].isdigit():
            return "-".join(parts[:i])
    return stem


def _first_problem(output: str) -> str:
    for line in output.splitlines():
        text = line.strip(" \t:")
        if "not found" in text or "UNRESOLVED" in text or "unknown host" in text.lower() \
                or "Connection" in text or "error" in text.lower():
            if text and not set(text) <= set(":"):
                return text
    lines = [x.strip() for x in output.splitlines() if x.strip()]
    return lines[-1] if lines else "no output"


def _unreachable(purpose: str, why: str) -> str:
    return (f"cannot download the {purpose} jars from Maven ({why}): set spark.jars.repositories "
            "(or LOGAD_MAVEN_REPOS) to a mirror, spark.jars.ivySettings (or LOGAD_IVY_SETTINGS) to "
            "an Ivy settings file, or put the jars on the classpath with spark.jars")
