"""``logad lab``: real Spark runs with injected faults -> a labelled corpus of executor logs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from logad.cli.common import default, kafka_args


def add(sub: Any) -> None:
    from logad.lab.corpus import LabConfig, replay

    lab = sub.add_parser("lab", help="the Spark lab: real Spark runs with injected faults -> a labelled "
                         "corpus of executor logs").add_subparsers(dest="action", required=True)
    for name, what in (("run", "run lab applications on a standalone cluster on 127.0.0.1"),
                       ("corpus", "a labelled corpus of a chosen size, reproducible from --seed")):
        lr = lab.add_parser(name, help=what)
        lr.add_argument("--out", required=True, help="an empty folder for the corpus")
        lr.add_argument("--apps", type=int, default=default(LabConfig, "apps"),
                        help="applications (~280 task attempts each)")
        lr.add_argument("--seed", type=int, default=default(LabConfig, "seed"))
        lr.add_argument("--rate", action="append", metavar="KIND=P",
                        help="fault rate, repeatable: exception, kill, executor_lost, oom, slow "
                             "(per task), fetch_failure (per app), corrupt_record (per input file)")
        if name == "run":
            lr.add_argument("--workers", type=int, default=default(LabConfig, "workers"))
            lr.add_argument("--cores", type=int, default=default(LabConfig, "worker_cores"), help="cores per worker")
            lr.add_argument("--executor-cores", type=int, default=default(LabConfig, "executor_cores"))
            lr.add_argument("--partitions", type=int, default=default(LabConfig, "partitions"),
                            help="partitions per stage")
            lr.add_argument("--workloads", help="comma-separated; default all: "
                            + ", ".join(default(LabConfig, "workloads")))
        lr.set_defaults(func=cmd_lab)
    ls_ = lab.add_parser("stats", help="a corpus's statistics: tasks, fault mix, lines, interleaving")
    ls_.add_argument("corpus")
    ls_.set_defaults(func=cmd_lab_stats)
    lp = lab.add_parser("replay", help="ship a corpus's logs into Kafka, one host per worker")
    lp.add_argument("corpus")
    kafka_args(lp)
    lp.add_argument("--topic-prefix", default=default(replay, "topic_prefix"))
    lp.set_defaults(func=cmd_lab_replay)


def cmd_lab(a: argparse.Namespace) -> int:
    import json

    from logad.errors import ConfigError
    from logad.lab.corpus import LabConfig, run_lab
    from logad.lab.faults import DEFAULT_RATES

    rates = dict(DEFAULT_RATES)
    for item in a.rate or []:
        kind, _, value = item.partition("=")
        try:
            rates[kind] = float(value)
        except ValueError:
            raise ConfigError(f"--rate takes KIND=PROBABILITY, got {item!r}") from None
    kw: dict[str, Any] = {}
    if a.action == "run":
        kw = {"workers": a.workers, "worker_cores": a.cores, "executor_cores": a.executor_cores,
              "partitions": a.partitions}
        if a.workloads:
            kw["workloads"] = tuple(w.strip() for w in a.workloads.split(",") if w.strip())
    manifest = run_lab(LabConfig(a.out, apps=a.apps, seed=a.seed, rates=rates, **kw))
    print(json.dumps({"out": a.out, "apps": manifest["apps"], "seconds": manifest["seconds"],
                      **manifest["stats"]}, indent=1))
    return 0


def cmd_lab_stats(a: argparse.Namespace) -> int:
    import json

    from logad.lab.corpus import corpus_stats, read_truth

    rows = read_truth(a.corpus)
    print(json.dumps(corpus_stats(Path(a.corpus), rows), indent=1))
    return 0


def cmd_lab_replay(a: argparse.Namespace) -> int:
    import json

    from logad.io.kafka import parse_options
    from logad.lab.corpus import replay

    sent = replay(a.corpus, a.bootstrap, topic_prefix=a.topic_prefix, client=parse_options(a.kafka_option))
    print(json.dumps(sent, indent=1))
    return 0
