"""What the command groups share: defaults read from the config dataclasses and the library's
signatures (declared once, there), the Kafka and Spark options, and the interval type."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from typing import Any

# where the CLI keeps its local state when no --warehouse is given
WAREHOUSE = ".logad/warehouse"


def default(owner: Any, name: str) -> Any:
    """The default of field ``name`` of a config dataclass, or of parameter ``name`` of a
    function or class: the CLI shows and uses the library's own default."""
    if dataclasses.is_dataclass(owner):
        for f in dataclasses.fields(owner):
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:
                    return f.default_factory()
                raise KeyError(f"{getattr(owner, '__name__', owner)}.{name} has no default")
        raise KeyError(f"{getattr(owner, '__name__', owner)} has no field {name}")
    param = inspect.signature(owner).parameters[name]
    if param.default is inspect.Parameter.empty:
        raise KeyError(f"{owner.__qualname__}({name}) has no default")
    return param.default


def bootstrap_default() -> str:
    from logad.config import Broker

    return f"{default(Broker, 'host')}:{default(Broker, 'port')}"


def kafka_args(p: argparse.ArgumentParser, help: str = "kafka.bootstrap.servers") -> None:
    boot = bootstrap_default()
    p.add_argument("--bootstrap", default=boot, help=f"{help} (default {boot})")
    p.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a Kafka client setting with the Java client's name, e.g. "
                        "security.protocol=SASL_SSL (repeatable); Spark gets it as kafka.KEY")


def spark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--warehouse", default=WAREHOUSE, help=f"root of tables and checkpoints (default {WAREHOUSE})")
    p.add_argument("--master", default=None, help="Spark master for a local session")


_TRIGGER = re.compile(r"\s*\d+\s+(millisecond|second|minute|hour)s?\s*", re.IGNORECASE)


def trigger(value: str) -> str:
    """A micro-batch interval Spark's ``processingTime`` accepts (``5 seconds``, ``500
    milliseconds``, ``1 minute``), checked here so a typo is one line, not a JVM stack."""
    if not _TRIGGER.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an interval: a whole number and a unit, e.g. '5 seconds', "
            "'500 milliseconds', '1 minute', '0 seconds' (back to back)")
    return value.strip()


def stream_args(p: argparse.ArgumentParser, start: Any, once_help: str = "process what is there, then stop") -> None:
    """--trigger, --query-name and --once of a streaming command; defaults from ``start``'s signature."""
    every = default(start, "trigger")
    name = default(start, "query_name")
    p.add_argument("--trigger", type=trigger, default=every, help=f"micro-batch interval (default '{every}')")
    p.add_argument("--query-name", default=name,
                   help=f"the query's name (default {name}); its checkpoint is <warehouse>/checkpoints/<name>")
    p.add_argument("--once", action="store_true", help=once_help)


def pairs(items: list[str], flag: str, example: str) -> dict[str, str]:
    """``["A=B", ...]`` -> ``{"A": "B"}`` (split at the last ``=``), a clear error otherwise."""
    from logad.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{flag} {item!r}: use {example}")
        out[key] = value
    return out


def reject_share_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--max-reject-share``: a ``--once`` run that rejects more than that exits 3, loudly."""
    p.add_argument("--max-reject-share", type=float, default=0.01, metavar="SHARE",
                   help=f"with --once, exit 3 when more than this share of the rows read were rejected "
                        f"({what}; default 0.01)")


def rejects_exit(warehouse: Any, a: argparse.Namespace, ran: Any, since: int, what: str) -> int:
    """The exit code of a streaming command after its run: 3, with the loud line printed, when a
    ``--once`` run rejected more than ``--max-reject-share`` of what it read (its own rows in
    ``rejects`` after version ``since``); else 0."""
    from logad.ingest import check_rejects, rejects_written

    if not a.once:
        return 0
    loud = check_rejects(rejects_written(warehouse, a.query_name, since), ran, what, a.max_reject_share)
    if loud:
        print(f"ERROR: {loud}")
        return 3
    return 0
