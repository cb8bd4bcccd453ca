"""The Spark lab: a real standalone cluster (master + 2 workers on 127.0.0.1), real applications,
injected faults, and ground truth checked three ways: what the lab injected, what Spark's event
log reports, what the executor logs show. Plus the committed sample corpus through the pipeline
(files -> events -> Task workflows -> labels) and through the shipper into a real broker."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from test_ship import consume

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "spark_lab"
RATES = {"exception": 0.06, "kill": 0.03, "executor_lost": 0.03, "oom": 0.03, "slow": 0.04,
         "fetch_failure": 1.0, "corrupt_record": 0.25}


def test_a_plan_decides_the_same_faults_from_the_same_seed():
    from logad.errors import ConfigError
    from logad.lab.faults import FaultPlan

    a, b, c = FaultPlan(3, RATES), FaultPlan(3, RATES), FaultPlan(4, RATES)
    keys = [(app, step, p) for app in range(3) for step in ("x.scan", "y.groups") for p in range(200)]
    da, db, dc = ([plan.task_fault(*k) for k in keys] for plan in (a, b, c))
    assert da == db and da != dc
    got = Counter(da)
    assert 0.05 * len(keys) < got["exception"] < 0.08 * len(keys)  # the rate, roughly
    for app in range(3):  # at most one executor-killing fault per step of an app
        for step in ("x.scan", "y.groups"):
            assert sum(a.task_fault(app, step, p) in ("executor_lost", "oom") for p in range(200)) <= 1
    with pytest.raises(ConfigError, match="unknown fault kind 'disk'"):
        FaultPlan(0, {"disk": 0.1})
    with pytest.raises(ConfigError, match="add up to more than 1"):
        FaultPlan(0, {"exception": 0.7, "slow": 0.5})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One lab application with high fault rates, through the CLI."""
    from logad.cli import main

    out = tmp_path_factory.mktemp("lab") / "corpus"
    argv = ["lab", "run", "--out", str(out), "--apps", "1", "--seed", "11"]
    for kind, rate in RATES.items():
        argv += ["--rate", f"{kind}={rate}"]
    assert main(argv) == 0
    return out


def _truth(corpus: Path) -> list[dict[str, str]]:
    from logad.lab.corpus import read_truth

    return read_truth(corpus)


def test_the_lab_injects_what_its_plan_says(corpus):
    from logad.lab.faults import FaultPlan

    manifest = json.loads((corpus / "manifest.json").read_text())
    plan = FaultPlan.from_json(manifest["plan"])
    records = [json.loads(x) for f in (corpus / "faults").glob("*.jsonl") for x in f.read_text().splitlines()]
    gated = {(r["step"], r["partition"], r["fault"]) for r in records if r["fault"] in
             ("exception", "kill", "executor_lost", "oom", "slow")}
    assert gated, "no fault was injected"
    steps = {s for s, _, _ in gated} | {"etl_join.orders", "aggregate.groups", "shuffle_reuse.map"}
    expected = {(s, p, plan.task_fault(0, s, p)) for s in steps for p in range(12)
                if plan.task_fault(0, s, p) and not (s.endswith(".map") and plan.task_fault(0, s, p) == "oom")}
    # every injection is the plan's; a planned one can only be missing when its first attempt died
    # with an executor another fault killed before its gate ran
    assert gated <= expected
    rows = _truth(corpus)
    collateral = sum(r["status"] == "ExecutorLostFailure" and r["fault"] == "none" for r in rows)
    assert len(expected - gated) <= collateral, expected - gated
    assert any(r["fault"] == "fetch_failure" and r["detail"] for r in records) == plan.app_fault(0, "fetch_failure")


def test_labels_agree_with_what_spark_reports_and_the_logs_show(corpus):
    rows = _truth(corpus)
    events = [json.loads(x) for f in (corpus / "eventlogs").glob("*.json.gz")
              for x in gzip.decompress(f.read_bytes()).decode().splitlines()]
    task_ends = {e["Task Info"]["Task ID"] for e in events if e["Event"] == "SparkListenerTaskEnd"}
    assert {int(r["tid"]) for r in rows if r["status"] != "Unknown"} == task_ends
    faults = Counter(r["fault"] for r in rows)
    # the driver killed every attempt whose gate asked for it. Which reason Spark then reports is a
    # race: a speculative copy that succeeds while the killed Python worker is still dying
    # overwrites it with "another attempt succeeded" (seen for both kills of one run: the driver
    # log said "killed TID 22: True" 3 s before), and an executor lost first makes it
    # ExecutorLostFailure; the per-row checks below accept exactly those.
    driver = "".join(gzip.decompress(p.read_bytes()).decode(errors="replace")
                     for p in (corpus / "logs" / "driver").glob("*.log.gz"))
    killed = {int(t) for t in re.findall(r"killed TID (\d+): True", driver)}
    asked = {int(r["tid"]) for r in rows if r["fault"] == "kill"}
    assert asked and asked <= killed, (asked, killed)
    for kind in ("exception", "kill", "fetch_failure"):
        assert faults[kind] >= 1, faults
    # every injected exception that ran on a live executor failed the attempt with it
    assert any(r["fault"] == "exception" and r["status"] == "ExceptionFailure" for r in rows), faults
    for r in rows:
        fault, status, end = r["fault"], r["status"], r["log_end"]
        if status == "Unknown":
            # no TaskEnd in the event log: the application stopped with the attempt still in
            # flight (seen on a loaded machine: a corrupt_record attempt as another file's fourth
            # failure aborted the job); the truth labels what Spark never ended as an anomaly
            assert r["label"] == "Anomaly" and int(r["tid"]) not in task_ends, r
            continue
        if status == "ExecutorLostFailure" and fault != "executor_lost":
            continue  # its executor went down (another task's fault) before its own fault played out
        # a speculative copy of a slow attempt finished first and Spark killed this one before its
        # fault played out (seen with oom: the allocation loop ran 6.7 s, the copy won). When the
        # copy's success is the stage's last, Spark says "Stage cancelled: Stage finished" and the
        # executor may log no end for the killed attempt (seen: tid 78 of a cache_broadcast stage,
        # its speculative copy tid 90 succeeded)
        copy_won = any(o["app_id"] == r["app_id"] and o["stage_id"] == r["stage_id"]
                       and o["partition"] == r["partition"] and o["status"] == "Success"
                       and o["speculative"] == "True" for o in rows)
        preempted = status == "TaskKilled" and (
            (r["detail"] == "another attempt succeeded" and end == "killed")
            or (r["detail"] == "Stage cancelled: Stage finished" and end in ("killed", "none") and copy_won))
        if fault == "exception":
            assert (status == "ExceptionFailure" and end == "exception") or preempted, r
        elif fault == "corrupt_record":
            # or cancelled: the job aborted (another file's fourth failure) as this one raised
            assert (status == "ExceptionFailure" and "ValueError" in r["detail"]) or \
                (status == "TaskKilled" and "cancel" in r["detail"]) or preempted, r
        elif fault == "kill":
            # our kill, or a speculative copy's win if it came first (the Python worker takes
            # a few seconds to die)
            assert status == "TaskKilled" and end == "killed", r
            assert r["detail"] in ("lab: injected kill", "another attempt succeeded"), r
        elif fault == "executor_lost":
            assert status == "ExecutorLostFailure" and end in ("none", "missing"), r
        elif fault == "oom":
            assert (status == "ExceptionFailure" and "OutOfMemoryError" in r["detail"]) or \
                status == "ExecutorLostFailure" or preempted, r
        elif fault == "slow":
            assert status in ("Success", "TaskKilled"), r
            assert status == "TaskKilled" or int(r["finish_ms"]) - int(r["launch_ms"]) >= 8000, r
        elif fault == "fetch_failure":
            assert status == "FetchFailed", r
        # Spark's end reason and the executor's own log agree
        if status == "Success":
            assert end == "finished", r
        if status == "ExceptionFailure" and end != "missing":
            assert end == "exception", r
        assert r["label"] == ("Normal" if fault == "none" and status == "Success" else r["label"])
        if fault != "none" or status in ("ExceptionFailure", "ExecutorLostFailure", "FetchFailed"):
            assert r["label"] == "Anomaly", r
    # speculation ran (workers are separate hosts): a slow attempt's copy
    assert any(r["speculative"] == "True" for r in rows) or not faults["slow"]
    # three workers' worth of files: executors of both workers and the driver
    assert {r["worker"] for r in rows} == {"worker-1", "worker-2"}
    assert list((corpus / "logs" / "driver").glob("*.log.gz"))


def test_spark_labels_itself_from_the_lab_event_logs_as_the_truth_says(spark, corpus, tmp_path):
    """``logad sessions labels --spark-event-logs``: no injection record read, only Spark's event
    logs (the lab's gzip copies). Every attempt gets the truth's label, except the injected faults
    Spark never sees (a slow attempt that still succeeded, a bad record a task skipped), and the
    executor logs' Task workflows find those labels."""
    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_small, read_table
    from logad.sessions.eventlogs import load_event_log_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import read_labels, sessionize

    rows = _truth(corpus)
    wh = Warehouse(str(tmp_path / "wh"))
    report = load_event_log_labels(spark, wh, str(corpus / "eventlogs"))
    assert report.rejects == 0 and report.attempts == len(rows) and report.applications == 1
    got = {r["key"]: r["label"] for r in read_small(spark, wh.table("labels")).to_pylist()}
    unseen = Counter()
    for r in rows:
        y = got[f"{r['app_id']}|TID {r['tid']}"]
        if y != (r["label"] == "Anomaly"):
            # only what Spark could not know: an injected fault the attempt survived
            assert y == 0 and r["fault"] != "none" and r["status"] in ("Success", "TaskKilled"), r
            unseen[r["fault"]] += 1
    assert sum(unseen.values()) <= sum(r["fault"] in ("slow", "corrupt_record", "kill") for r in rows)
    files = {str(p): p.parent.name for p in corpus.glob("logs/worker-*/*.log.gz")}
    ingest_files(spark, wh, files)
    sessions = sessionize(read_table(spark, wh.table("events")), [rules_for("spark")], read_labels(spark, wh))
    s = sessions.toPandas()
    assert len(s) and (s["label_source"] == "spark:eventlog").all()
    truth = {r["session_key"]: int(r["label"] == "Anomaly") for r in rows if r["session_key"]}
    exact = sum(int(row["label"]) == truth[f"{Path(row['key'].split('|')[1]).name.split('.log')[0]}|{row['name']}"]
                for _, row in s.iterrows())
    assert len(s) - exact <= sum(unseen.values())
    # the evaluation protocol's own path (spark-lab --labels eventlog) reads the same labels
    from logad.models.evaluate import lab_workflows

    flows, _ = lab_workflows(corpus, eventlog=True)
    assert len(flows) == len(s) and sum(y != t for _, _, y, _, t in flows) == len(s) - exact


def test_tasks_really_interleave_in_the_executor_logs(corpus):
    from logad.lab.corpus import interleaving

    stats = json.loads((corpus / "manifest.json").read_text())["stats"]
    assert stats["workflows_in_logs"] >= 200
    assert stats["interleaved_workflows"] > 0.5 * stats["workflows_in_logs"]
    assert stats["mean_open_tasks_at_start"] > 1.3
    # by hand: a task's lines with another task's lines between them, in one executor log. Not
    # every task has that (the first task of an executor, or one on an executor the lab killed
    # early, may run alone), so look through the logs for one, as a reader of the log would.
    start = re.compile(r"Running task \S+ in stage \S+ \(TID (\d+)\)")
    tid_of = re.compile(r"\(TID (\d+)\)")
    found = None
    for path in sorted((corpus / "logs").glob("worker-*/*.log.gz")):
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
        finish = {m.group(1): i for i, x in enumerate(lines) if "Finished task" in x for m in [tid_of.search(x)] if m}
        for i, x in enumerate(lines):
            m = start.search(x)
            if m and m.group(1) in finish:
                between = {t.group(1) for y in lines[i + 1:finish[m.group(1)]] for t in [tid_of.search(y)] if t}
                if between - {m.group(1)}:
                    found = (path, m.group(1))
                    break
        if found:
            break
    assert found, "no task in any executor log has another task's lines between its start and finish"
    path = found[0]
    assert interleaving(path)[1] > 0


def test_the_committed_sample_cuts_into_labelled_task_workflows(spark, tmp_path):
    """The sample corpus through the pipeline: every Task workflow gets its lab label."""
    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_table
    from logad.lab.corpus import read_truth
    from logad.sessions.labels import load_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import read_labels, sessionize

    wh = Warehouse(str(tmp_path / "wh"))
    files = {str(p): p.parent.name for p in SAMPLE.glob("logs/worker-*/*.log.gz")}
    counts = ingest_files(spark, wh, files)
    assert counts["events"] > 3000
    truth = {r["session_key"]: r for r in read_truth(SAMPLE) if r["session_key"]}
    assert load_labels(spark, wh, "spark", str(SAMPLE / "truth.csv.gz")) == len(truth)
    sessions = sessionize(read_table(spark, wh.table("events")), [rules_for("spark")],
                          read_labels(spark, wh)).toPandas()
    assert len(sessions) >= 0.95 * sum(r["log_end"] != "missing" for r in truth.values())
    assert (sessions["label_source"] == "spark:truth.csv.gz").all()
    for _, s in sessions.iterrows():
        key = f"{Path(s['key'].split('|')[1]).name.split('.log')[0]}|{s['name']}"
        assert s["label"] == int(truth[key]["label"] == "Anomaly"), key
    assert sessions["label"].sum() == sum(r["label"] == "Anomaly" and r["log_end"] != "missing"
                                          for r in truth.values())
    # the quiet anomalies are there: anomalous workflows without a WARN/ERROR line
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    assert manifest["stats"]["anomalous_without_warn_error"] >= 1


def test_the_sample_replays_into_kafka_as_many_hosts(broker, tmp_path):
    from logad.lab.corpus import read_truth, replay

    sent = replay(SAMPLE, broker.bootstrap, topic_prefix="lab", staging=tmp_path)
    assert set(sent) == {"lab.worker-1", "lab.worker-2", "lab.driver"} and all(sent.values())
    records = consume(broker.bootstrap, "lab.worker-2")
    assert len(records) == sent["lab.worker-2"]
    assert all(k.startswith("worker-2|") for k, _ in records)
    row = next(r for r in read_truth(SAMPLE) if r["worker"] == "worker-2" and r["log_end"] == "finished")
    assert any(f"(TID {row['tid']})" in v and row["app_id"] in k for k, v in records)
    # stack traces travel with their line, as one record
    assert any(v.count("\n") > 3 and "ERROR Executor: Exception in task" in v for _, v in records)


def test_the_spark_lab_protocol_splits_by_application_and_cuts_prefixes(spark):
    from logad.models.evaluate import evaluate, lab_workflows, spark_lab

    flows, texts = lab_workflows(SAMPLE)
    apps = {a for a, *_ in flows}
    assert len(apps) == 3 and sum(y for _, _, y, _, _ in flows) >= 40 and len(texts) > 50
    assert all(y == truth for _, _, y, _, truth in flows)  # labelled by the truth itself
    whole, cut = spark_lab(SAMPLE, seed=0), spark_lab(SAMPLE, seed=0, prefix=True)
    assert len(whole.train) + len(whole.valid) + len(whole.test) == len(flows)
    # by application: each part holds the workflows of exactly one application here (1/1/1)
    sizes = sorted(len(p) for p in (whole.train, whole.valid, whole.test))
    per_app = sorted(sum(a == x for a, *_ in flows) for x in apps)
    assert sizes == per_app
    # the prefix protocol drops the error line and what follows, and only from workflows that have one
    assert sum(len(s) for s, _ in cut.test) < sum(len(s) for s, _ in whole.test)
    assert [y for _, y in cut.test] == [y for _, y in whole.test]
    result = evaluate("spark-lab", SAMPLE, ["tree"], [0], epochs=1)
    assert "split by application 1/1/1" in str(result["data"])
    tree = result["models"]["tree"]  # type: ignore[index]
    assert tree["f1"][0] > 0.6, tree  # the lab's labels are learnable from the logs
