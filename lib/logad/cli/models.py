"""``logad train``, ``retrain``, ``promote``, ``evaluate``: models from the ``sessions`` table,
their promotion, and the evaluation protocols."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logad.cli.common import default, spark_args

if TYPE_CHECKING:
    from logad.models.train_job import TrainJob


def add(sub: Any) -> None:
    from logad.models.evaluate import ALL_MODELS, PROTOCOLS, UNLABELLED_MODELS, evaluate
    from logad.models.retrain import METRICS
    from logad.models.train_job import TrainJob

    tr = sub.add_parser("train", help="train a model from a pinned sessions version across Spark (TorchDistributor)")
    spark_args(tr)
    train_args(tr)
    tr.add_argument("--promote", action="store_true", help="promote the new version (what 'logad score' uses)")
    tr.set_defaults(func=cmd_train)

    rt = sub.add_parser("retrain", help="train a candidate on the latest sessions, compare it with the promoted "
                        "model on the same held-out sessions, promote if not worse; recorded in MLflow")
    spark_args(rt)
    train_args(rt, pinned=False)
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
    pr.add_argument("--model", default=default(TrainJob, "model"), help="the registry entry (train's --name)")
    pr.add_argument("--version", type=int, required=True)
    pr.add_argument("--models-dir", help="default <warehouse>/models")
    pr.add_argument("--reason", default="logad promote")
    pr.set_defaults(func=cmd_promote)

    v = sub.add_parser("evaluate", help="P, R, F1, ROC-AUC of the models and baselines on a protocol")
    v.add_argument("--protocol", choices=list(PROTOCOLS), default="hdfs-blocks",
                   help="hdfs-blocks: the product's commands end to end (ingest, labels, default sessions, the "
                        "training job, the scoring UDF), the figure an operator gets; bgl-chrono, spark-lab*: the "
                        "product's ingest and sessionizer, models fitted in process (their splits are by time and "
                        "by application); hdfs-paper: the papers' balanced setting on already-sessionized files")
    v.add_argument("--data", help="hdfs-*, bgl-*: the shared data folder with HDFS/, BGL/ (default $LOGAD_DATA or "
                   "../shared/data); spark-lab*: a lab corpus (default the committed data/samples/spark_lab)")
    v.add_argument("--models", help="comma-separated (default: " + ",".join(ALL_MODELS) + "; with --labels none: "
                   + ",".join(UNLABELLED_MODELS) + ")")
    v.add_argument("--labels", choices=["use", "none", "eventlog"], default=default(evaluate, "labels"),
                   help="none (hdfs-blocks): the detectors that learn normal without labels, beside the supervised "
                        "ATT-GRU and tree; labels only score the unseen test blocks. eventlog (spark-lab*): train "
                        "on Spark's own event-log labels, test on the lab's truth")
    v.add_argument("--false-alarm-rate", type=float, default=default(evaluate, "false_alarm_rate"),
                   help="the detectors of normal: the share of held-out (validation) blocks that alarms")
    v.add_argument("--seeds", default=",".join(map(str, default(evaluate, "seeds"))),
                   help="comma-separated; mean and spread over them")
    v.add_argument("--epochs", type=int, default=default(evaluate, "epochs"))
    v.add_argument("--batch-size", type=int, default=default(evaluate, "batch_size"),
                   help="the paper's 2048 gives a few steps per epoch on these data sizes")
    v.add_argument("--unit", choices=["session", "window"], default=default(evaluate, "unit"))
    v.add_argument("--repeats", action="store_true", help="collapse repeated events (count as input)")
    v.add_argument("--counts", action="store_true",
                   help="sequence models: the session's event-count vector beside the GRU (see logad train)")
    v.add_argument("--patience", type=int, default=default(evaluate, "patience"),
                   help="hdfs-blocks: the training job's early-stopping patience (epochs)")
    v.add_argument("--paper-attention", action="store_true",
                   help="y = alpha x exactly as the paper writes it (default scales by the length)")
    v.set_defaults(func=cmd_evaluate)


def train_args(tr: argparse.ArgumentParser, pinned: bool = True) -> None:
    """The arguments of a training job (``logad train``, ``logad retrain``), defaults from TrainJob."""
    from logad.models import KINDS
    from logad.models.detectors import DETECTORS, UNSUPERVISED
    from logad.models.train_job import TrainJob

    def d(name: str) -> Any:
        return default(TrainJob, name)

    tr.add_argument("--system", default=d("system"), help=f"sessions of this system (default {d('system')})")
    tr.add_argument("--table", default=d("table"))
    if pinned:
        tr.add_argument("--version", type=int, help="the sessions table version (default the latest, recorded)")
    kinds = ", ".join(KINDS + tuple(DETECTORS))
    if pinned:
        tr.add_argument("--model", choices=list(KINDS + tuple(DETECTORS)), default=d("model"),
                        help="a sequence model; a count detector (tree, logreg: Spark ML on the sessions' template "
                        f"counts; no epochs); or a detector of normal that needs no labels ({', '.join(UNSUPERVISED)}: "
                        "docs/models.md)")
    else:
        tr.add_argument("--model", default=d("model"), type=_kinds,
                        help=f"one detector or several, comma-separated ({kinds}): each is trained and the best on "
                        "the held-out sessions is the candidate")
    tr.add_argument("--name", help="the registry entry <models-dir>/<name> the version goes to, the name 'logad "
                    "score --model' serves (default the model kind; for several kinds, the system)")
    tr.add_argument("--unit", choices=["window", "session"], default=d("unit"),
                    help="sliding windows (the paper's) or whole sessions")
    tr.add_argument("--window", type=int, default=d("window"))
    tr.add_argument("--split", choices=["session", "time"], default=d("split"),
                    help="by session hash (unseen sessions in test) or chronological (earliest trains)")
    tr.add_argument("--train-fraction", type=float, default=d("train_fraction"))
    tr.add_argument("--valid-fraction", type=float, default=d("valid_fraction"))
    tr.add_argument("--seed", type=int, default=d("seed"))
    tr.add_argument("--epochs", type=int, default=d("epochs"))
    tr.add_argument("--batch-size", type=int, default=d("batch_size"), help="global; each process takes its share")
    tr.add_argument("--lr", type=float, default=d("lr"))
    tr.add_argument("--patience", type=int, default=d("patience"),
                    help="epochs without a better validation F1 (or a lower validation loss at that F1)")
    tr.add_argument("--embed-dim", type=int, default=d("embed_dim"))
    tr.add_argument("--repeats", action="store_true", default=d("repeats"),
                    help="collapse repeated events (count as input)")
    tr.add_argument("--counts", action="store_true", default=d("counts"),
                    help="sequence models: add the session's event-count vector (log1p of each template's "
                         "count) to the classifier beside the GRU (experimental: on HDFS blocks inside the "
                         "noise of training, docs/models.md)")
    tr.add_argument("--max-len", type=int, default=d("max_len"))
    tr.add_argument("--num-processes", type=int, default=d("num_processes"), help="TorchDistributor processes")
    tr.add_argument("--use-gpu", action="store_true", default=d("use_gpu"), help="one GPU per process (NCCL)")
    tr.add_argument("--label-source", action="append", help="keep sessions labelled by this source (repeatable)")
    tr.add_argument("--labels", choices=["use", "none"], default=d("labels"),
                    help=f"none: read no label at all (only {', '.join(UNSUPERVISED)}; they never fit on labels, "
                    "'use' only reports test metrics where labels exist)")
    tr.add_argument("--false-alarm-rate", type=float, default=d("false_alarm_rate"),
                    help=f"{', '.join(UNSUPERVISED)}: the threshold is the score this share of the held-out "
                    "history sessions reaches")
    tr.add_argument("--models-dir", help="where versioned models go (default <warehouse>/models; a path or a "
                    "Hadoop filesystem URI such as hdfs:///logad/models)")
    tr.add_argument("--scratch", help="a folder every training process reads and writes with Python: "
                    "petastorm's cache and the resume checkpoint (default the models folder when it is local, "
                    "else <tmp>/logad-scratch, which only a one-node cluster shares)")
    tr.add_argument("--no-resume", action="store_true", help="ignore a checkpoint of an interrupted run")


def _kinds(text: str) -> tuple[str, ...]:
    from logad.models import KINDS
    from logad.models.detectors import DETECTORS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS + tuple(DETECTORS)]
    if not kinds or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: use one or more of {', '.join(KINDS + tuple(DETECTORS))}")
    return kinds


def train_job(a: argparse.Namespace) -> TrainJob:
    from logad.models.train_job import TrainJob

    kinds = a.model if isinstance(a.model, tuple) else (a.model,)
    return TrainJob(system=a.system, table=a.table, version=a.version, model=kinds[0], name=a.name, unit=a.unit,
                    window=a.window, split=a.split, train_fraction=a.train_fraction,
                    valid_fraction=a.valid_fraction, seed=a.seed, epochs=a.epochs, batch_size=a.batch_size,
                    lr=a.lr, patience=a.patience, embed_dim=a.embed_dim, repeats=a.repeats, counts=a.counts,
                    max_len=a.max_len,
                    num_processes=a.num_processes, use_gpu=a.use_gpu, label_sources=tuple(a.label_source or ()),
                    labels=a.labels, false_alarm_rate=a.false_alarm_rate, models_dir=a.models_dir,
                    scratch=a.scratch, resume=not a.no_resume)


def cmd_train(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.models.train_job import run_train
    from logad.spark_session import get_spark

    job = train_job(a)
    spark = get_spark("logad-train", master=a.master)
    s = run_train(spark, Warehouse(a.warehouse), job)
    m = s["metrics"]
    print(f"{s['model']} v{s['version']} ({s['kind']}): {s['artifact']}")
    epoch = f"best epoch {s['best_epoch'] + 1}  " if s["history"] else ""
    print(f"  data {s['data_version']}  code {s['code_version']}  {epoch}"
          f"threshold {s['threshold']:.4f}  {s['seconds']:.0f} s")
    if a.promote:
        from logad.models.registry import promote

        promote(Warehouse(a.warehouse).models(job.models_dir), s["model"], s["version"], "logad train --promote")
        print(f"  promoted: {s['model']} v{s['version']} is what 'logad score' uses now")
    if "valid_alarm_rate" in m:
        print(f"  no label read: alarms on {m['valid_alarm_rate']:.2%} of the held-out history "
              f"(--false-alarm-rate {s['job']['false_alarm_rate']}), {m['test_alarm_rate']:.2%} of the test sessions")
    for part in ("valid", "test", "prefix"):
        if f"{part}_f1" in m:
            print(f"  {part:<6} P {m[part + '_precision']:.4f}  R {m[part + '_recall']:.4f}  "
                  f"F1 {m[part + '_f1']:.4f}  AUC {m[part + '_auc']:.4f}  "
                  f"({m[part + '_sessions']:.0f} sessions, {m[part + '_anomalies']:.0f} abnormal)")
    return 0


def cmd_retrain(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.models.retrain import PromotionRule, run_retrain
    from logad.spark_session import get_spark

    job = train_job(a)
    spark = get_spark("logad-retrain", master=a.master)
    rule = PromotionRule.from_conf(spark, a.metric, a.max_drop)
    kinds = a.model if isinstance(a.model, tuple) else (a.model,)
    r = run_retrain(spark, Warehouse(a.warehouse), job, rule, a.mlflow_uri, a.experiment, a.registered_model,
                    kinds=kinds)
    h = r["held_out"]
    print(f"{r['model']} v{r['candidate_version']} {r['decision'].upper()}: {r['reason']}")
    print(f"  held-out: {h['sessions']} {r['system']} sessions ({h['abnormal']} abnormal) neither model trained on")
    rows = ([(f"candidate {c['kind']}", c["version"], c["metrics"]) for c in r["candidates"]]
            + ([(f"current {r['current_kind']}", r["current_version"], r["current_metrics"])] if r["current_metrics"] else []))
    for who, v, m in rows:
        if m:
            print(f"  {who:<20} v{v}: P {m['precision']:.4f}  R {m['recall']:.4f}  F1 {m['f1']:.4f}  "
                  f"AUC {m['auc']:.4f}")
    ml = r["mlflow"]
    print(f"  MLflow: {ml['tracking_uri']} run {ml['run_id']}, {ml['registered_model']} "
          f"version {ml['registered_version']}{' (alias champion)' if r['decision'] == 'promoted' else ''}")
    return 0


def cmd_promote(a: argparse.Namespace) -> int:
    from logad.config import Warehouse
    from logad.models.registry import info, promote

    root = Warehouse(a.warehouse).models(a.models_dir)
    path = promote(root, a.model, a.version, a.reason)
    m = info(root, a.model, a.version).get("metrics", {})
    print(f"{a.model} v{a.version} promoted ({path}); test F1 {m.get('test_f1', float('nan')):.4f}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from logad.models.evaluate import evaluate, table, to_json

    data = a.data
    if data is None:
        data = (str(Path(__file__).resolve().parents[3] / "data" / "samples" / "spark_lab")
                if a.protocol.startswith("spark-lab") else os.environ.get("LOGAD_DATA", "../shared/data"))
    result = evaluate(a.protocol, data, [m.strip() for m in (a.models or "").split(",") if m.strip()] or None,
                      [int(s) for s in a.seeds.split(",")], a.epochs, a.unit, a.repeats,
                      batch_size=a.batch_size, attention_scale=not a.paper_attention, counts=a.counts,
                      patience=a.patience, labels=a.labels, false_alarm_rate=a.false_alarm_rate)
    print(table(result))
    print(to_json(result))
    return 0
