"""The SparkSession factory, with Spark's Kafka connector and delta-spark on the classpath.

A session logad starts on this machine (``local[*]``, ``local-cluster``) gets the two connectors
as ``spark.jars`` (resolved once by :mod:`logad.jars`), Delta's SQL extension and catalog, and
the local defaults below. A session that spark-submit or a platform started keeps its own
configuration (``spark.jars.packages`` in ``conf/spark-defaults.conf``, or Databricks' runtime),
and :func:`require_connectors` says in one line what is missing. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from logad.errors import ConfigError

if TYPE_CHECKING:
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_CHECKED = "spark.logad.connectors.checked"
KAFKA_CLASS = "org.apache.spark.sql.kafka010.KafkaSourceProvider"
DELTA_CLASS = "org.apache.spark.sql.delta.sources.DeltaDataSource"
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"


def local_defaults() -> dict[str, str]:
    """Settings for a session logad starts itself on this machine (``local[*]``).

    Applied only where neither spark-submit nor ``spark-defaults.conf`` set the key already, so
    a cluster's configuration always wins.
    """
    return {
        "spark.sql.session.timeZone": "UTC",
        # The header parser's generated code is large; 1g (the default) is tight for it.
        "spark.driver.memory": "2g",
        # Let the JIT compile it too: HotSpot leaves methods over 8,000 bytes of bytecode to the
        # interpreter, and the parser's generated methods are that big (measured 2x slower).
        "spark.driver.extraJavaOptions": "-XX:-DontCompileHugeMethods",
        # and in executor JVMs of their own (local-cluster), which run the parser too
        "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
        "spark.python.worker.reuse": "true",
        # Delta rebuilds a table's snapshot after each commit with a 50-partition shuffle; on a
        # few local cores that shuffle was most of a micro-batch's write (bench/kafka_to_delta.py:
        # 1.5-1.8 s -> 0.55 s per 100,000 records).
        "spark.databricks.delta.snapshotPartitions": str(max(2, os.cpu_count() or 2)),
    }


def connector_conf(submitted: SparkConf, wanted: dict[str, str]) -> dict[str, str]:
    """``spark.jars`` with Spark's Kafka connector and delta-spark (resolved once into the cache
    by :mod:`logad.jars`), and Delta's SQL extension and catalog, for a session started here.

    Nothing where the user already names jars or packages (``spark.jars.packages``,
    ``spark.jars``): theirs win, as on a cluster.
    """
    def given(key: str) -> str | None:
        return wanted.get(key) or submitted.get(key, None)

    if given("spark.jars.packages") or given("spark.jars"):
        return {}
    from logad import jars

    found = jars.resolve(jars.connectors(), purpose="spark-connectors",
                         repos=given("spark.jars.repositories"),
                         ivy_settings=given("spark.jars.ivySettings"))
    return {"spark.jars": ",".join(found),
            "spark.sql.extensions": DELTA_EXTENSION,
            "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog"}


def jvm_conf(submitted: SparkConf, wanted: dict[str, str]) -> dict[str, str]:
    """``spark.jars`` plus logad's JVM module (:mod:`logad.jvm`, built by Maven on first use) for
    a session started here; nothing when there is no jar (masking then runs as regexes)."""
    from logad import jvm

    path = jvm.jar()
    if path is None:
        return {}
    current = wanted.get("spark.jars") or submitted.get("spark.jars", "") or ""
    if str(path) in current.split(","):
        return {}
    return {"spark.jars": ",".join(filter(None, [current, str(path)]))}


def get_spark(app_name: str = "logad", master: str | None = None,
              conf: dict[str, str] | None = None) -> SparkSession:
    """Return the active SparkSession, or start one, with the Kafka and Delta connectors.

    Args:
        app_name: the application name shown in the Spark UI and the cluster manager.
        master: a master URL for a session started here; ``None`` keeps what spark-submit or
            the environment say (``local[*]`` when nothing does).
        conf: extra settings for a session started here (ignored when one is active).

    Example:
        >>> spark = get_spark("demo", master="local[2]")  # doctest: +SKIP
        >>> spark.read.format("delta").load("/w/tables/events")  # doctest: +SKIP
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        submitted = SparkConf()  # what spark-submit / spark-defaults.conf already set
        builder = SparkSession.builder.appName(app_name)
        if master:
            builder = builder.master(master)
        # a driver in a YARN container (cluster deploy mode) may not see spark.master yet: it is
        # never local there, and its connectors came with spark-submit
        in_cluster = submitted.get("spark.submit.deployMode", "client") == "cluster" or "CONTAINER_ID" in os.environ
        effective_master = master or submitted.get("spark.master", None) or ("yarn" if in_cluster else "local[*]")
        local = effective_master.startswith("local") and not in_cluster
        if local:
            # Python data sources are planned in workers started from the PYSPARK_PYTHON
            # environment variable (spark.pyspark.python does not reach them): make it this
            # interpreter, which has logad, unless the user chose one.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        wanted = dict(local_defaults()) if local else {}
        wanted.update(conf or {})
        if local:
            wanted.update(connector_conf(submitted, wanted))
            wanted.update(jvm_conf(submitted, wanted))
        for key, value in wanted.items():
            if not submitted.contains(key) or key in (conf or {}):
                builder = builder.config(key, value)
        spark = builder.getOrCreate()
    require_connectors(spark)
    return spark


def require_connectors(spark: SparkSession) -> None:
    """Check once per session that Spark's Kafka source and delta-spark are on the classpath.

    Raises:
        ConfigError: naming the missing classes and the settings that bring them.
    """
    if spark.conf.get(_CHECKED, None) == "true":
        return
    missing = [c for c in (KAFKA_CLASS, DELTA_CLASS) if not _on_classpath(spark, c)]
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)} not on the classpath: add the spark.jars.packages line of "
            "conf/spark-defaults.conf (Maven Central or a mirror via spark.jars.repositories), or "
            "the jars with spark.jars")
    if DELTA_EXTENSION not in (spark.conf.get("spark.sql.extensions", "") or ""):
        log.warning("spark.sql.extensions lacks %s; Delta SQL commands (MERGE) will not work "
                    "(see conf/spark-defaults.conf)", DELTA_EXTENSION)
    spark.conf.set(_CHECKED, "true")


def _on_classpath(spark: SparkSession, class_name: str) -> bool:
    try:
        jvm = spark.sparkContext._jvm
    except Exception:  # Spark Connect has no sparkContext
        jvm = None
    if jvm is None:  # Spark Connect (e.g. Databricks serverless): the platform ships both.
        return True
    try:
        loader = jvm.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(class_name, False, loader)
        return True
    except Exception:  # Py4JJavaError(ClassNotFoundException): absent, which is an answer.
        return False
