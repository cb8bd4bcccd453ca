"""The SparkSession factory and the engine choice (native connectors vs embedded path).

logad runs the same code on a cluster that has Spark's Kafka connector and delta-spark on its
classpath ("native") and on a bare machine that has only PyPI packages ("embedded": logad's Python
Kafka source and delta-rs commits). The choice is made once per session, from the classpath and the
``spark.logad.engine`` setting (``auto``, ``native`` or ``embedded``), stored in the session's
conf and logged. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from logad.config import ENGINES
from logad.errors import ConfigError

if TYPE_CHECKING:
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

ENGINE_KEY = "spark.logad.engine"
_RESOLVED = "spark.logad.resolved.{}"
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
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
        "spark.python.worker.reuse": "true",
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


def get_spark(app_name: str = "logad", master: str | None = None,
              engine: str | None = None, conf: dict[str, str] | None = None) -> SparkSession:
    """Return the active SparkSession, or start one, and decide its engine.

    Args:
        app_name: the application name shown in the Spark UI and the cluster manager.
        master: a master URL for a session started here; ``None`` keeps what spark-submit or
            the environment say (``local[*]`` when nothing does).
        engine: ``auto``, ``native`` or ``embedded``; ``None`` reads ``spark.logad.engine``.
        conf: extra settings for a session started here (ignored when one is active).

    Example:
        >>> spark = get_spark("demo", master="local[2]")  # doctest: +SKIP
        >>> engines(spark).kafka  # doctest: +SKIP
        'embedded'
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        submitted = SparkConf()  # what spark-submit / spark-defaults.conf already set
        builder = SparkSession.builder.appName(app_name)
        if master:
            builder = builder.master(master)
        effective_master = master or submitted.get("spark.master", "local[*]")
        local = effective_master.startswith("local")
        if local:
            # Python data sources are planned in workers started from the PYSPARK_PYTHON
            # environment variable (spark.pyspark.python does not reach them): make it this
            # interpreter, which has logad, unless the user chose one.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        wanted = dict(local_defaults()) if local else {}
        wanted.update(conf or {})
        chosen = (engine or wanted.get(ENGINE_KEY) or submitted.get(ENGINE_KEY, "auto")).lower()
        if local and chosen != "embedded":
            wanted.update(connector_conf(submitted, wanted))
        for key, value in wanted.items():
            if not submitted.contains(key) or key in (conf or {}):
                builder = builder.config(key, value)
        if engine:
            builder = builder.config(ENGINE_KEY, engine)
        spark = builder.getOrCreate()
    elif engine:
        spark.conf.set(ENGINE_KEY, engine)
    engines(spark)
    return spark


@dataclass(frozen=True)
class Engines:
    """Which implementation each I/O component uses in one session."""

    kafka: str
    delta: str


def engines(spark: SparkSession) -> Engines:
    """The session's engine choice, decided (and logged) on first call, then fixed."""
    kafka = spark.conf.get(_RESOLVED.format("kafka"), None)
    delta = spark.conf.get(_RESOLVED.format("delta"), None)
    if kafka and delta:
        return Engines(kafka, delta)
    wanted = (spark.conf.get(ENGINE_KEY, "auto") or "auto").strip().lower()
    if wanted not in ENGINES:
        raise ConfigError(f"{ENGINE_KEY}={wanted!r}: use one of {', '.join(ENGINES)}")
    has_kafka = _on_classpath(spark, KAFKA_CLASS)
    has_delta = _on_classpath(spark, DELTA_CLASS)
    if wanted == "native":
        missing = [c for c, ok in ((KAFKA_CLASS, has_kafka), (DELTA_CLASS, has_delta)) if not ok]
        if missing:
            raise ConfigError(
                f"{ENGINE_KEY}=native but {', '.join(missing)} is not on the classpath: add the "
                "spark.jars.packages line of conf/spark-defaults.conf (needs Maven Central or a "
                f"mirror), or set {ENGINE_KEY}=embedded")
    if wanted == "embedded":
        has_kafka = has_delta = False
    choice = Engines("native" if has_kafka else "embedded", "native" if has_delta else "embedded")
    if choice.delta == "native" and DELTA_EXTENSION not in (spark.conf.get("spark.sql.extensions", "") or ""):
        log.warning("delta-spark is on the classpath but spark.sql.extensions lacks %s; "
                    "Delta SQL commands will not work (see conf/spark-defaults.conf)", DELTA_EXTENSION)
    spark.conf.set(_RESOLVED.format("kafka"), choice.kafka)
    spark.conf.set(_RESOLVED.format("delta"), choice.delta)
    log.info("logad engine (%s=%s): kafka=%s (%s %s), delta=%s (%s %s)", ENGINE_KEY, wanted,
             choice.kafka, KAFKA_CLASS, "found" if has_kafka else "absent",
             choice.delta, DELTA_CLASS, "found" if has_delta else "absent")
    return choice


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
