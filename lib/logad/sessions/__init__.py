"""Sessions: interleaved events cut into HDFS blocks, Spark Task workflows, BGL windows, Hadoop
applications, streaming and batch with the same result (see :mod:`logad.sessions.split`)."""

from logad.sessions.rules import DEFAULTS, SessionRules, rules_for

__all__ = ["DEFAULTS", "SessionRules", "rules_for"]
