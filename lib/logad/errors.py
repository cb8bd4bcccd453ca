"""The one exception hierarchy of logad.

Every error a user can fix by changing a setting is a :class:`LogadError` whose message names the
setting. Errors raised inside Spark (a data source on an executor, a ``foreachBatch`` function)
reach the driver wrapped in Py4J and Spark exceptions; :func:`explain` digs the logad message back
out so the CLI and the jobs print one clear line instead of a stack.
"""

from __future__ import annotations

import re


class LogadError(Exception):
    """Base class: something the user can act on. The message says what and how.

    ``exit_code``: what the command line exits with (2: a setting to fix)."""

    exit_code = 2


class ConfigError(LogadError):
    """A configuration value is missing or invalid."""


class BrokerError(LogadError):
    """The local broker cannot be started, stopped or reached."""


class KafkaSourceError(LogadError):
    """Reading from Kafka failed: unreachable broker, missing topic, bad offsets, data loss."""


class HadoopError(LogadError):
    """The local Hadoop (HDFS and YARN) cannot be started, stopped or reached."""


class JarsError(LogadError):
    """The JVM jars (Kafka connector, delta-spark, the broker) cannot be resolved."""


class DeltaError(LogadError):
    """Reading or writing a Delta table failed."""


class CheckpointError(LogadError):
    """A streaming checkpoint is unreadable or belongs to another query."""


class ShipError(LogadError):
    """The shipper could not deliver records."""


class TrainingFailed(LogadError):
    """Training lost its executors more often than ``spark.logad.train.maxAttempts`` allows. The
    checkpoint keeps the last finished epoch: the same command again resumes there (exit 3)."""

    exit_code = 3


class ClusterError(LogadError):
    """The lab's standalone Spark cluster did not start."""


class StopRequested(LogadError):
    """A micro-batch refused because the query is stopping (nothing written; replayed on restart).

    Raised inside ``foreachBatch``, so it reaches the driver wrapped in Spark's exception;
    :func:`explain` gives it back its type, and the query runner ends quietly on it.
    """


_CLASSES = {c.__name__: c for c in (LogadError, ConfigError, BrokerError, KafkaSourceError,
                                    JarsError, HadoopError, DeltaError, CheckpointError, ShipError, ClusterError, TrainingFailed,
                                    StopRequested)}
_WRAPPED = re.compile(r"logad\.errors\.(\w+): (.+?)(?:\n|$)")


def explain(exc: BaseException) -> LogadError | None:
    """Return the logad error hidden inside ``exc`` (a Py4J or Spark error), if there is one.

    Example:
        >>> explain(RuntimeError("... logad.errors.ConfigError: bad x\\n  at ..."))
        ConfigError('bad x')
    """
    if isinstance(exc, LogadError):
        return exc
    match = _WRAPPED.search(str(exc))
    if match is None:
        return None
    return _CLASSES.get(match.group(1), LogadError)(match.group(2).strip())
