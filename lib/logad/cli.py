"""The ``logad`` command line: the local broker, producing files into Kafka, ingest, the demo.

Handlers are configured here (and in jobs/), never in the library. A :class:`LogadError` ends the
command with its one-line message and exit code 2; anything else is a bug and shows its stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from logad.errors import LogadError, explain
from logad.ship.shipper import MAX_RECORD_BYTES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from logad.config import Warehouse
    from logad.models.job import TrainJob
    from logad.scoring import ScoreStage

log = logging.getLogger("logad")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "urllib3", "gensim", "petastorm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=9092,
                   help="base TCP port on 127.0.0.1: node i serves clients on PORT+i (default 9092)")
    p.add_argument("--nodes", type=int, default=1, choices=[1, 3],
                   help="1, or 3 for replication factor 3 with min.insync.replicas=2")
    p.add_argument("--state-dir", default=".logad/broker",
                   help="each node's log, data, pid and settings (default .logad/broker)")
    p.add_argument("--security", default="plaintext", choices=["plaintext", "sasl", "sasl_ssl"],
                   help="client listener: plaintext, SASL SCRAM-SHA-512, or SCRAM over TLS")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="a SCRAM user, created when the storage is formatted (repeatable)")


def _broker_cfg(a: argparse.Namespace):  # type: ignore[no-untyped-def]
    from logad.config import Broker
    from logad.errors import ConfigError

    users = []
    for item in a.user:
        name, sep, password = item.partition(":")
        if not sep:
            raise ConfigError(f"--user {item!r}: give NAME:PASSWORD")
        users.append((name, password))
    return Broker(port=a.port, nodes=a.nodes, state_dir=a.state_dir, security=a.security,
                  users=tuple(users))


def _kafka_args(p: argparse.ArgumentParser, help: str = "kafka.bootstrap.servers") -> None:
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help=f"{help} (default 127.0.0.1:9092)")
    p.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a Kafka client setting with the Java client's name, e.g. "
                        "security.protocol=SASL_SSL (repeatable); Spark gets it as kafka.KEY")


def cmd_broker(a: argparse.Namespace) -> int:
    import json

    from logad.io import broker

    cfg = _broker_cfg(a)
    if a.action == "start":
        st = broker.start(cfg)
        print(f"Kafka running: {cfg.nodes} node(s), bootstrap {st.bootstrap}, logs under {cfg.state_path}")
        opts = broker.client_options(cfg)
        if opts:
            print("client settings: " + " ".join(f"--kafka-option '{k}={v}'" for k, v in opts.items()))
    elif a.action == "stop":
        print("Kafka stopped" if broker.stop(cfg) else "no broker was running")
    else:
        st = broker.status(cfg)
        print(f"Kafka {'running' if st.running else 'not running'}: bootstrap {st.bootstrap}")
        for n in st.nodes:
            print(f"  node {n.node_id}: {'up' if n.running else 'down'} on port {n.port}"
                  + (f", pid {n.pid}" if n.pid else "") + f", log {n.log_file}")
        if a.verbose:
            print(json.dumps([n.__dict__ for n in st.nodes]))
        return 0 if st.running else 1
    return 0


def cmd_produce(a: argparse.Namespace) -> int:
    from logad.io.kafka import parse_options
    from logad.produce import produce_files

    n = produce_files(a.bootstrap, a.topic, a.files, partitions=a.partitions,
                      client=parse_options(a.kafka_option))
    print(f"produced {n} lines to {a.topic}")
    return 0


_TRIGGER = re.compile(r"\s*\d+\s+(millisecond|second|minute|hour)s?\s*", re.IGNORECASE)


def trigger(value: str) -> str:
    """A micro-batch interval Spark's ``processingTime`` accepts (``5 seconds``, ``500
    milliseconds``, ``1 minute``), checked here so a typo is one line, not a JVM stack."""
    if not _TRIGGER.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an interval: a whole number and a unit, e.g. '5 seconds', "
            "'500 milliseconds', '1 minute', '0 seconds' (back to back)")
    return value.strip()


def cmd_ship(a: argparse.Namespace) -> int:
    import socket
    import threading

    from logad.io.kafka import parse_options
    from logad.ship import ShipConfig, Shipper

    cfg = ShipConfig(
        paths=tuple(a.paths), bootstrap=a.bootstrap, host=a.host or socket.gethostname(),
        client=parse_options(a.kafka_option),
        topic_prefix=a.topic_prefix, single_topic=a.topic, partitions=a.partitions,
        registry=a.registry, include=tuple(a.include_lines), exclude=tuple(a.exclude_lines),
        multiline_pattern=a.multiline_pattern, multiline_negate=a.multiline_negate,
        poll_interval_s=a.poll_interval, max_record_bytes=a.max_record_bytes)
    stop = threading.Event()
    try:
        stats = Shipper(cfg).run(once=a.once, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        return 130
    print(f"shipped {stats.sent} records ({stats.lines} lines read, {stats.filtered} filtered, "
          f"{stats.truncated} truncated, {stats.refused} refused by Kafka) to {cfg.topic}")
    return 0


def cmd_ingest(a: argparse.Namespace) -> int:
    from logad.config import KafkaSource, Warehouse
    from logad.errors import ConfigError
    from logad.ingest import EVENTS, RAW_LOGS, REJECTS, run, start_ingest
    from logad.io.delta import table_summary
    from logad.io.kafka import parse_options
    from logad.parse.headers import Parser
    from logad.session import get_spark
    from logad.templates.stream import TEMPLATES

    formats = {}
    for item in a.format:
        topic, sep, name = item.rpartition("=")
        if not sep or not topic:
            raise ConfigError(f"--format {item!r}: use TOPIC_REGEX=FORMAT, e.g. 'logs\\.dn.*=hdfs'")
        formats[topic] = name
    parser = Parser(formats=formats, fallback_generic=not a.no_fallback,
                    max_line_bytes=a.max_line_bytes)
    spark = get_spark("logad-ingest", master=a.master)
    pattern = a.subscribe_pattern or (None if a.subscribe else r"logs\..*")
    source = KafkaSource(a.bootstrap, subscribe=a.subscribe, subscribe_pattern=pattern,
                         starting_offsets=a.starting_offsets,
                         max_offsets_per_trigger=a.max_offsets_per_trigger,
                         fail_on_data_loss=a.fail_on_data_loss == "true",
                         client=parse_options(a.kafka_option))
    warehouse = Warehouse(a.warehouse)
    query = start_ingest(spark, source, warehouse, parser=parser, trigger=a.trigger, query_name=a.query_name,
                         template_parser=a.templates)
    run(query, once=a.once)
    for name in (RAW_LOGS, EVENTS, REJECTS, TEMPLATES):
        print(table_summary(warehouse.table(name)))
    return 0


def cmd_lab(a: argparse.Namespace) -> int:
    import json
    from typing import Any

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

    sent = replay(a.corpus, a.bootstrap, topic_prefix=a.topic_prefix,
                  client=parse_options(a.kafka_option))
    print(json.dumps(sent, indent=1))
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from logad.models.evaluate import evaluate, table, to_json

    data = a.data
    if data is None:
        data = (str(Path(__file__).resolve().parents[2] / "data" / "samples" / "spark_lab")
                if a.protocol.startswith("spark-lab") else os.environ.get("LOGAD_DATA", "../shared/data"))
    result = evaluate(a.protocol, data, [m.strip() for m in a.models.split(",") if m.strip()],
                      [int(s) for s in a.seeds.split(",")], a.epochs, a.unit, a.repeats,
                      batch_size=a.batch_size, attention_scale=not a.paper_attention)
    print(table(result))
    print(to_json(result))
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.models.job import run_train
    from logad.session import get_spark

    job = _train_job(a)
    spark = get_spark("logad-train", master=a.master)
    s = run_train(spark, Warehouse(a.warehouse), job)
    m = s["metrics"]
    print(f"{s['model']} v{s['version']}: {s['artifact']}")
    print(f"  data {s['data_version']}  code {s['code_version']}  best epoch {s['best_epoch'] + 1}  "
          f"threshold {s['threshold']:.4f}  {s['seconds']:.0f} s")
    if a.promote:
        from logad.models.registry import promote

        promote(Path(s["artifact"]).parents[2], s["model"], s["version"], "logad train --promote")
        print(f"  promoted: {s['model']} v{s['version']} is what 'logad score' uses now")
    for part in ("valid", "test", "prefix"):
        if f"{part}_f1" in m:
            print(f"  {part:<6} P {m[part + '_precision']:.4f}  R {m[part + '_recall']:.4f}  "
                  f"F1 {m[part + '_f1']:.4f}  AUC {m[part + '_auc']:.4f}  "
                  f"({m[part + '_sessions']:.0f} sessions, {m[part + '_anomalies']:.0f} abnormal)")
    return 0


def _train_job(a: argparse.Namespace) -> TrainJob:
    from logad.models.job import TrainJob

    return TrainJob(system=a.system, table=a.table, version=a.version, model=a.model, unit=a.unit,
                    window=a.window, split=a.split, train_fraction=a.train_fraction,
                    valid_fraction=a.valid_fraction, seed=a.seed, epochs=a.epochs, batch_size=a.batch_size,
                    lr=a.lr, patience=a.patience, embed_dim=a.embed_dim, repeats=a.repeats, max_len=a.max_len,
                    num_processes=a.num_processes, use_gpu=a.use_gpu, label_sources=tuple(a.label_source or ()),
                    models_dir=a.models_dir, resume=not a.no_resume)


def cmd_retrain(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.models.retrain import PromotionRule, run_retrain
    from logad.session import get_spark

    job = _train_job(a)
    spark = get_spark("logad-retrain", master=a.master)
    rule = PromotionRule.from_conf(spark, a.metric, a.max_drop)
    r = run_retrain(spark, Warehouse(a.warehouse), job, rule, a.mlflow_uri, a.experiment, a.registered_model)
    h = r["held_out"]
    print(f"{r['model']} v{r['candidate_version']} {r['decision'].upper()}: {r['reason']}")
    print(f"  held-out: {h['sessions']} {r['system']} sessions ({h['abnormal']} abnormal) neither model trained on")
    for who, m in (("candidate", r["candidate_metrics"]), ("current", r["current_metrics"])):
        if m:
            v = r["candidate_version"] if who == "candidate" else r["current_version"]
            print(f"  {who:<9} v{v}: P {m['precision']:.4f}  R {m['recall']:.4f}  F1 {m['f1']:.4f}  "
                  f"AUC {m['auc']:.4f}")
    ml = r["mlflow"]
    print(f"  MLflow: {ml['tracking_uri']} run {ml['run_id']}, {ml['registered_model']} "
          f"version {ml['registered_version']}{' (alias champion)' if r['decision'] == 'promoted' else ''}")
    return 0


def cmd_promote(a: argparse.Namespace) -> int:
    from logad.models.registry import info, promote

    root = Path(a.models_dir or Path(a.warehouse) / "models")
    path = promote(root, a.model, a.version, a.reason)
    m = info(root, a.model, a.version).get("metrics", {})
    print(f"{a.model} v{a.version} promoted ({path}); test F1 {m.get('test_f1', float('nan')):.4f}")
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.ingest import run
    from logad.scoring import start_scoring
    from logad.session import get_spark

    spark = get_spark("logad-score", master=a.master)
    warehouse = Warehouse(a.warehouse)
    stage = _score_stage(spark, warehouse, a)
    try:
        run(start_scoring(spark, warehouse, stage, trigger=a.trigger, query_name=a.query_name), once=a.once)
    finally:
        stage.close()
    _print_scored(warehouse, stage)
    return 0


def _score_stage(spark: SparkSession, warehouse: Warehouse, a: argparse.Namespace) -> ScoreStage:
    """The ScoreStage of ``logad score`` and ``logad sessions run --score``."""
    from logad.io.kafka import parse_options
    from logad.scoring import ScoreStage

    which = a.model_version if a.model_version in ("promoted", "latest") else int(a.model_version)
    return ScoreStage(spark, warehouse, a.model, which, a.models_dir,
                      None if a.no_alerts else a.bootstrap, a.alerts_topic, a.top_k,
                      kafka_options=parse_options(a.kafka_option))


def _print_scored(warehouse: Warehouse, stage: ScoreStage) -> None:
    from logad.io.delta import table_summary
    from logad.scoring import SCORES

    print(table_summary(warehouse.table(SCORES)))
    print(f"{stage.alerts_sent} alerts sent" + (f" to {stage.alerts_topic}" if stage.alerts_topic else ""))


def cmd_explain(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.scoring import explain
    from logad.session import get_spark

    spark = get_spark("logad-explain", master=a.master)
    s, lines = explain(spark, Warehouse(a.warehouse), a.session_id, a.models_dir, a.top_k)
    color = sys.stdout.isatty()
    print(f"session {s['session_id']} ({s['system']} {s['key']}, hosts {', '.join(s['hosts'] or [])}) "
          f"{s['start_ts']} .. {s['end_ts']}")
    print(f"score {s['score']:.4f} (threshold {s['threshold']:.4f}) by {s['model']} v{s['model_version']}: "
          f"{'ANOMALY' if s['is_anomaly'] else 'normal'}; {s['unseen_templates']} templates unseen in training")
    for i, line, weight in lines:
        if weight is not None:
            mark = f">> {weight:5.3f} "
            text = f"\033[1;31m{line}\033[0m" if color else line
        else:
            mark, text = " " * 9, line
        print(f"{mark}{i:>4}  {text}")
    return 0


def cmd_templates_show(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.errors import DeltaError
    from logad.templates.stream import TEMPLATES

    uri = Warehouse(a.warehouse).table(TEMPLATES)
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri):
        raise DeltaError(f"no templates table at {uri}: run 'logad ingest' first (or check --warehouse)")
    rows = DeltaTable(uri).to_pyarrow_table().to_pylist()
    current = sorted((r for r in rows if a.all or not r["merged_into"]), key=lambda r: -r["count"])
    print(f"{len([r for r in rows if not r['merged_into']])} templates in use, "
          f"{len([r for r in rows if r['merged_into']])} merged into others ({rows[0]['parser'] if rows else '-'}); "
          f"{sum(r['count'] for r in rows):,} events")
    print(f"{'template_id':<17} {'count':>9}  {'first seen':<20} text")
    for r in current[: a.top]:
        first = r["first_seen"].strftime("%Y-%m-%d %H:%M:%S") if r["first_seen"] else "-"
        merged = f"  -> {r['merged_into']}" if r["merged_into"] else ""
        print(f"{r['template_id']:<17} {r['count']:>9,}  {first:<20} {r['text'][:a.width]}{merged}")
    return 0


def cmd_templates_evaluate(a: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from logad.errors import ConfigError
    from logad.templates.evaluate import SYSTEMS, averages, evaluate

    root = Path(a.data)
    if not root.is_dir():
        raise ConfigError(f"LogHub 2k data not found at {root}: pass --data DIR (a folder with "
                          "<System>/loghub2.0_corrected/ as in logpai/loghub-2.0's 2k_dataset)")
    systems = a.systems.split(",") if a.systems else SYSTEMS
    results = evaluate(root, a.parsers.split(","), systems, progress=log.info)
    metrics = ("ga", "pa", "fga", "fta")
    head = f"{'system':12s}" + "".join(f" {p + ' ' + m.upper():>15s}" for p in results for m in ("ga", "pa"))
    print(head)
    for system in systems:
        print(f"{system:12s}" + "".join(f" {results[p][system].ga:15.3f} {results[p][system].pa:15.3f}"
                                        for p in results))
    avg = {p: averages(r) for p, r in results.items()}
    print(f"{'average':12s}" + "".join(f" {avg[p]['ga']:15.3f} {avg[p]['pa']:15.3f}" for p in results))
    for p in results:
        print(f"{p:9s} average " + "  ".join(f"{m.upper()} {avg[p][m]:.3f}" for m in metrics))
    print(json.dumps({"bench": "templates_evaluate", "systems": list(systems), "average": avg,
                      "per_system": {p: {s: {m: round(getattr(v, m), 4) for m in metrics}
                                         for s, v in r.items()} for p, r in results.items()}}))
    return 0


def _session_rules(a: argparse.Namespace) -> list:  # type: ignore[type-arg]
    from logad.sessions.rules import DEFAULTS, rules_for

    overrides = {k: v for k, v in (("idle_s", a.idle_s), ("max_duration_s", a.max_duration_s),
                                   ("max_events", a.max_events), ("window_s", a.window_s),
                                   ("window_lines", a.window_lines), ("attach", a.attach),
                                   ("watermark", a.watermark)) if v is not None}
    return [rules_for(system, **overrides) for system in (a.system or DEFAULTS)]


def cmd_sessions_run(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.ingest import REJECTS, run
    from logad.io.delta import table_summary
    from logad.session import get_spark
    from logad.sessions.spark import SESSIONS, start_sessions

    spark = get_spark("logad-sessions", master=a.master)
    warehouse = Warehouse(a.warehouse)
    stage = _score_stage(spark, warehouse, a) if a.score else None
    try:
        run(start_sessions(spark, warehouse, _session_rules(a), trigger=a.trigger, query_name=a.query_name,
                           score=stage), once=a.once)
    finally:
        if stage is not None:
            stage.close()
    for name in (SESSIONS, REJECTS):
        print(table_summary(warehouse.table(name)))
    if stage is not None:
        _print_scored(warehouse, stage)
    return 0


def cmd_sessions_backfill(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.io.delta import read_table, table_summary, write_table
    from logad.session import get_spark
    from logad.sessions.spark import read_labels, sessionize

    spark = get_spark("logad-sessions-backfill", master=a.master)
    warehouse = Warehouse(a.warehouse)
    events = read_table(spark, warehouse.table("events"), a.version)
    out = sessionize(events, _session_rules(a), read_labels(spark, warehouse),
                     close_open=not a.closed_only)
    uri = warehouse.table(a.table)
    write_table(out, uri)
    print(table_summary(uri))
    return 0


def cmd_sessions_labels(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.session import get_spark
    from logad.sessions.labels import load_labels

    spark = get_spark("logad-labels", master=a.master)
    n = load_labels(spark, Warehouse(a.warehouse), a.system, a.file)
    print(f"{n} {a.system} labels loaded into {Warehouse(a.warehouse).table('labels')}")
    return 0


def cmd_sessions_show(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.io.delta import read_small
    from logad.session import get_spark

    spark = get_spark("logad-show", master=a.master)
    table = read_small(spark, Warehouse(a.warehouse).table(a.table))
    if table is None:
        from logad.errors import DeltaError

        raise DeltaError(f"no {a.table} table under {a.warehouse}: run 'logad sessions run' first")
    df = table.select(["system", "key", "name", "task", "start_ts", "end_ts", "n_events",
                       "close_reason", "label", "label_source", "label_event"]).to_pandas()
    print(f"{len(df):,} sessions; by system and close reason:")
    print(df.groupby(["system", "close_reason"]).size().to_string())
    print("labels:")
    print(df.groupby(["system", "label_source", "label"]).size().to_string())
    print(df.sort_values("start_ts").head(a.top).to_string(index=False))
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from logad.demo import run_demo

    run_demo(workdir=a.workdir, port=a.port)
    return 0


def train_args(tr: argparse.ArgumentParser, pinned: bool = True) -> None:
    """The arguments of a training job (``logad train``, ``logad retrain``)."""
    from logad.models.sequence import KINDS

    tr.add_argument("--system", default="hdfs", help="sessions of this system (default hdfs)")
    tr.add_argument("--table", default="sessions")
    if pinned:
        tr.add_argument("--version", type=int, help="the sessions table version (default the latest, recorded)")
    tr.add_argument("--model", choices=list(KINDS), default="att_gru")
    tr.add_argument("--unit", choices=["window", "session"], default="window",
                    help="sliding windows (the paper's) or whole sessions")
    tr.add_argument("--window", type=int, default=10)
    tr.add_argument("--split", choices=["session", "time"], default="session",
                    help="by session hash (unseen sessions in test) or chronological (earliest trains)")
    tr.add_argument("--train-fraction", type=float, default=0.6)
    tr.add_argument("--valid-fraction", type=float, default=0.2)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--batch-size", type=int, default=2048, help="global; each process takes its share")
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--patience", type=int, default=5,
                    help="epochs without a better validation F1 (or a lower validation loss at that F1)")
    tr.add_argument("--embed-dim", type=int, default=32)
    tr.add_argument("--repeats", action="store_true", help="collapse repeated events (count as input)")
    tr.add_argument("--max-len", type=int, default=512)
    tr.add_argument("--num-processes", type=int, default=2, help="TorchDistributor processes")
    tr.add_argument("--use-gpu", action="store_true", help="one GPU per process (NCCL)")
    tr.add_argument("--label-source", action="append", help="keep sessions labelled by this source (repeatable)")
    tr.add_argument("--models-dir", help="where versioned models go (default <warehouse>/models)")
    tr.add_argument("--no-resume", action="store_true", help="ignore a checkpoint of an interrupted run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logad", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("broker", help="start, stop or check the local Apache Kafka broker (KRaft)")
    b.add_argument("action", choices=["start", "stop", "status"])
    _broker_args(b)
    b.set_defaults(func=cmd_broker)

    p = sub.add_parser("produce", help="produce the lines of files (plain or .gz) into a topic")
    p.add_argument("files", nargs="+")
    p.add_argument("--topic", required=True)
    _kafka_args(p)
    p.add_argument("--partitions", type=int, default=1, help="partitions if the topic is created")
    p.set_defaults(func=cmd_produce)

    s = sub.add_parser("ship", help="tail log files into Kafka (Filebeat's role)")
    s.add_argument("paths", nargs="+", help="files and globs (quote globs)")
    _kafka_args(s)
    s.add_argument("--host", default=None, help="host name for the topic and key (default: this host)")
    s.add_argument("--topic-prefix", default="logs", help="topic per host: <prefix>.<host> (default logs)")
    s.add_argument("--topic", default=None, help="one topic for all hosts instead (key host|file)")
    s.add_argument("--partitions", type=int, default=1, help="partitions if the topic is created")
    s.add_argument("--registry", default=".logad/ship/registry.json", help="resume state")
    s.add_argument("--include-lines", action="append", default=[], metavar="REGEX",
                   help="ship only records matching one of these (repeatable)")
    s.add_argument("--exclude-lines", action="append", default=[], metavar="REGEX",
                   help="drop records matching any of these (repeatable)")
    s.add_argument("--multiline-pattern", default=None, metavar="REGEX",
                   help=r"a line matching this continues the previous record, e.g. '^\s+(at|\.\.\.) |^Caused by:'")
    s.add_argument("--multiline-negate", action="store_true",
                   help="a line NOT matching --multiline-pattern continues the previous record")
    s.add_argument("--max-record-bytes", type=int, default=MAX_RECORD_BYTES, metavar="N",
                   help=f"longer records are cut to N bytes at a character boundary and counted "
                        f"(default {MAX_RECORD_BYTES}: under Kafka's 1 MB message limits)")
    s.add_argument("--poll-interval", type=float, default=1.0, help="seconds between scans")
    s.add_argument("--once", action="store_true", help="ship what is there, then stop")
    s.set_defaults(func=cmd_ship)

    i = sub.add_parser("ingest", help="stream Kafka records into raw_logs, events and rejects")
    _kafka_args(i)
    group = i.add_mutually_exclusive_group()
    group.add_argument("--subscribe", help="comma-separated topics")
    group.add_argument("--subscribe-pattern", help=r"topic regex (default logs\..*, the shipper's topics)")
    i.add_argument("--starting-offsets", default="earliest", help="earliest, latest or Spark's JSON")
    i.add_argument("--max-offsets-per-trigger", type=int, default=None)
    i.add_argument("--fail-on-data-loss", choices=["true", "false"], default="true",
                   help="stop when records the checkpoint expects are gone (Spark's failOnDataLoss)")
    i.add_argument("--warehouse", default=".logad/warehouse", help="root of tables and checkpoints")
    i.add_argument("--query-name", default="ingest",
                   help="the query's name; its checkpoint is <warehouse>/checkpoints/<name>")
    i.add_argument("--trigger", type=trigger, default="5 seconds", help="micro-batch interval, e.g. '5 seconds'")
    i.add_argument("--once", action="store_true", help="process what is there, then stop")
    i.add_argument("--format", action="append", default=[], metavar="TOPIC_REGEX=FORMAT",
                   help="pin topics to a header format (hdfs, bgl, thunderbird, spark, hadoop, "
                        "syslog, generic); other topics are detected (repeatable)")
    i.add_argument("--no-fallback", action="store_true",
                   help="reject lines no format matches instead of keeping them as generic")
    i.add_argument("--max-line-bytes", type=int, default=64 * 1024, help="longer records are rejected")
    i.add_argument("--templates", choices=["drain", "swisslog"], default="drain",
                   help="template parser for events.template_id (a warehouse keeps the one it began with)")
    i.add_argument("--master", default=None, help="Spark master for a local session")
    i.set_defaults(func=cmd_ingest)

    t = sub.add_parser("templates", help="log template parsers").add_subparsers(dest="action", required=True)
    e = t.add_parser("evaluate", help="GA, PA, FGA, FTA on the LogHub 2k benchmark, ours vs drain3")
    e.add_argument("--data", default=os.environ.get("LOGAD_LOGHUB_2K", "../shared/data/loghub_2k"),
                   help="the 2k benchmark folder (default $LOGAD_LOGHUB_2K or ../shared/data/loghub_2k)")
    e.add_argument("--parsers", default="drain3,drain,swisslog")
    e.add_argument("--systems", default=None, help="comma-separated (default: all 16)")
    e.set_defaults(func=cmd_templates_evaluate)
    w = t.add_parser("show", help="the templates table of a warehouse, most frequent first")
    w.add_argument("--warehouse", default=".logad/warehouse", help="root of tables and checkpoints")
    w.add_argument("--top", type=int, default=30, help="how many to print")
    w.add_argument("--width", type=int, default=100, help="characters of template text to print")
    w.add_argument("--all", action="store_true", help="include templates merged into others")
    w.set_defaults(func=cmd_templates_show)

    ss = sub.add_parser("sessions", help="cut events into sessions: Spark Task workflows, HDFS blocks, "
                        "BGL windows, Hadoop applications").add_subparsers(dest="action", required=True)

    def spark_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--warehouse", default=".logad/warehouse", help="root of tables and checkpoints")
        p.add_argument("--master", default=None, help="Spark master for a local session")

    def rules_args(p: argparse.ArgumentParser) -> None:
        from logad.sessions.rules import DEFAULTS

        spark_args(p)
        p.add_argument("--system", action="append", choices=list(DEFAULTS),
                       help="systems to cut (repeatable; default all)")
        p.add_argument("--idle-s", type=float, help="close after this long without an event (event time)")
        p.add_argument("--max-duration-s", type=float, help="close this long after the first event")
        p.add_argument("--max-events", type=int, help="close at this many events")
        p.add_argument("--window-s", type=float, help="bgl/thunderbird: window length")
        p.add_argument("--window-lines", type=int, help="bgl/thunderbird: also cut every N lines")
        p.add_argument("--attach", choices=["hints", "paper"],
                       help="spark: where a line naming no task goes (default hints)")
        p.add_argument("--watermark", help="how late a line may come, e.g. '1 minute'")

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default="att_gru")
        p.add_argument("--model-version", default="promoted", help="promoted (default, swapped live), latest or N")
        p.add_argument("--models-dir", help="default <warehouse>/models")
        _kafka_args(p, help="Kafka for the alerts")
        p.add_argument("--alerts-topic", default="logad.alerts")
        p.add_argument("--no-alerts", action="store_true", help="only the scores table")
        p.add_argument("--top-k", type=int, default=5, help="events per alert, by attention weight")

    sr = ss.add_parser("run", help="stream events into the sessions table (stateful, event time)")
    rules_args(sr)
    sr.add_argument("--score", action="store_true",
                    help="also score the sessions each batch closes, in that batch (scores table + alerts; "
                         "the model options as for `logad score`): no second query between a session and its alert")
    model_args(sr)
    sr.add_argument("--trigger", type=trigger, default="5 seconds", help="micro-batch interval, e.g. '5 seconds'")
    sr.add_argument("--query-name", default="sessions",
                    help="names the checkpoint: one per query (e.g. one query per clock domain)")
    sr.add_argument("--once", action="store_true",
                    help="process what is there (and apply the final watermark), then stop")
    sr.set_defaults(func=cmd_sessions_run)
    sb = ss.add_parser("backfill", help="batch sessions from an events snapshot (same cutting as run)")
    rules_args(sb)
    sb.add_argument("--version", type=int, default=None, help="events table version (default latest)")
    sb.add_argument("--table", default="sessions_backfill", help="table to (over)write")
    sb.add_argument("--closed-only", action="store_true",
                    help="leave out sessions still open at the end (what the stream would hold)")
    sb.set_defaults(func=cmd_sessions_backfill)
    sl = ss.add_parser("labels", help="load a data set's ground-truth label file into the labels table")
    spark_args(sl)
    sl.add_argument("--system", required=True, choices=["hdfs", "hadoop"])
    sl.add_argument("file", help="HDFS anomaly_label.csv (BlockId,Label) or Hadoop labels CSV")
    sl.set_defaults(func=cmd_sessions_labels)
    sw = ss.add_parser("show", help="sessions by system, close reason and label")
    spark_args(sw)
    sw.add_argument("--table", default="sessions")
    sw.add_argument("--top", type=int, default=10)
    sw.set_defaults(func=cmd_sessions_show)

    tr = sub.add_parser("train", help="train a model from a pinned sessions version across Spark (TorchDistributor)")
    spark_args(tr)
    train_args(tr)
    tr.add_argument("--promote", action="store_true", help="promote the new version (what 'logad score' uses)")
    tr.set_defaults(func=cmd_train)

    rt = sub.add_parser("retrain", help="train a candidate on the latest sessions, compare it with the promoted "
                        "model on the same held-out sessions, promote if not worse; recorded in MLflow")
    spark_args(rt)
    train_args(rt, pinned=False)
    from logad.models.retrain import METRICS

    rt.add_argument("--metric", choices=list(METRICS),
                    help="compared on the held-out sessions (default spark.logad.retrain.metric, else f1)")
    rt.add_argument("--max-drop", type=float,
                    help="promote when candidate >= current - this (default spark.logad.retrain.maxDrop, else 0)")
    rt.add_argument("--mlflow-uri", help="MLflow tracking + registry URI (default $MLFLOW_TRACKING_URI, "
                    "else sqlite:///<models-dir>/mlflow.db)")
    rt.add_argument("--experiment", help="MLflow experiment (default logad-<model>-<system>)")
    rt.add_argument("--registered-model", help="MLflow registered model (default logad-<model>-<system>)")
    rt.set_defaults(func=cmd_retrain, version=None)

    pr = sub.add_parser("promote", help="make a model version the one the stream scores with")
    spark_args(pr)
    pr.add_argument("--model", default="att_gru")
    pr.add_argument("--version", type=int, required=True)
    pr.add_argument("--models-dir", help="default <warehouse>/models")
    pr.add_argument("--reason", default="logad promote")
    pr.set_defaults(func=cmd_promote)

    sc = sub.add_parser("score", help="score closed sessions as they arrive: scores table + alerts topic")
    spark_args(sc)
    model_args(sc)
    sc.add_argument("--trigger", type=trigger, default="5 seconds", help="micro-batch interval, e.g. '5 seconds'")
    sc.add_argument("--query-name", default="score")
    sc.add_argument("--once", action="store_true", help="score what is there now, then stop")
    sc.set_defaults(func=cmd_score)

    ex = sub.add_parser("explain", help="a scored session's raw lines, the ones that weighed most highlighted")
    spark_args(ex)
    ex.add_argument("session_id")
    ex.add_argument("--models-dir", help="default <warehouse>/models")
    ex.add_argument("--top-k", type=int, default=5)
    ex.set_defaults(func=cmd_explain)

    v = sub.add_parser("evaluate", help="P, R, F1, ROC-AUC of the models and baselines on a protocol")
    v.add_argument("--protocol", choices=["hdfs-blocks", "hdfs-paper", "bgl-chrono", "spark-lab", "spark-lab-prefix"],
                   default="hdfs-blocks")
    v.add_argument("--data", help="hdfs-*, bgl-*: the shared data folder with HDFS/, BGL/ (default $LOGAD_DATA or "
                   "../shared/data); spark-lab*: a lab corpus (default the committed data/samples/spark_lab)")
    v.add_argument("--models", default="pca,logreg,tree,att_gru,att_lstm,gru,lstm,transformer_gru")
    v.add_argument("--seeds", default="0,1,2", help="comma-separated; mean and spread over them")
    v.add_argument("--epochs", type=int, default=20)
    v.add_argument("--batch-size", type=int, default=128,
                   help="the paper's 2048 gives a few steps per epoch on these data sizes")
    v.add_argument("--unit", choices=["session", "window"], default="session")
    v.add_argument("--repeats", action="store_true", help="collapse repeated events (count as input)")
    v.add_argument("--paper-attention", action="store_true",
                   help="y = alpha x exactly as the paper writes it (default scales by the length)")
    v.set_defaults(func=cmd_evaluate)

    lab = sub.add_parser("lab", help="the Spark lab: real Spark runs with injected faults -> a labelled "
                         "corpus of executor logs").add_subparsers(dest="action", required=True)
    for name, what in (("run", "run lab applications on a standalone cluster on 127.0.0.1"),
                       ("corpus", "a labelled corpus of a chosen size, reproducible from --seed")):
        lr = lab.add_parser(name, help=what)
        lr.add_argument("--out", required=True, help="an empty folder for the corpus")
        lr.add_argument("--apps", type=int, default=2, help="applications (~280 task attempts each)")
        lr.add_argument("--seed", type=int, default=0)
        lr.add_argument("--rate", action="append", metavar="KIND=P",
                        help="fault rate, repeatable: exception, kill, executor_lost, oom, slow "
                             "(per task), fetch_failure (per app), corrupt_record (per input file)")
        if name == "run":
            lr.add_argument("--workers", type=int, default=2)
            lr.add_argument("--cores", type=int, default=2, help="cores per worker")
            lr.add_argument("--executor-cores", type=int, default=2)
            lr.add_argument("--partitions", type=int, default=12, help="partitions per stage")
            lr.add_argument("--workloads", help="comma-separated; default all: etl_join, aggregate, "
                            "cache_broadcast, skew, narrow_wide, shuffle_reuse, parse")
        lr.set_defaults(func=cmd_lab)
    ls_ = lab.add_parser("stats", help="a corpus's statistics: tasks, fault mix, lines, interleaving")
    ls_.add_argument("corpus")
    ls_.set_defaults(func=cmd_lab_stats)
    lp = lab.add_parser("replay", help="ship a corpus's logs into Kafka, one host per worker")
    lp.add_argument("corpus")
    _kafka_args(lp)
    lp.add_argument("--topic-prefix", default="logs")
    lp.set_defaults(func=cmd_lab_replay)

    d = sub.add_parser("demo", help="run the pipeline end to end on bundled real logs")
    d.add_argument("--workdir", default=".logad/demo", help="broker state, tables, checkpoints")
    d.add_argument("--port", type=int, default=19092, help="port of the demo's local broker")
    d.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except LogadError as e:
        print(f"logad: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        clear = explain(e)
        if clear is None:
            if args.verbose:
                raise
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
            print(f"logad: unexpected error: {type(e).__name__}: {first[:300]} (run with -v for the "
                  "traceback, and please report it)", file=sys.stderr)
            return 1
        print(f"logad: error: {clear}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
