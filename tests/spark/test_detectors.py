"""The detector seam on real HDFS blocks: a count detector (Spark ML decision tree) is trained by
``logad train``, registered beside the sequence models, served by the scoring query with the same
scores table and ``explain``, picked by ``logad retrain`` when it beats ATT-GRU on the held-out
sessions, and swapped live with a sequence model in one registry slot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    from logad.config import Warehouse
    from logad.ingest import ingest_files
    from logad.io.delta import read_table, write_table
    from logad.sessions.labels import load_labels
    from logad.sessions.rules import rules_for
    from logad.sessions.spark import read_labels, sessionize

    wh = Warehouse(str(tmp_path_factory.mktemp("detectors") / "wh"))
    ingest_files(spark, wh, {str(SAMPLES / "HDFS_blocks600.log.gz"): "dn1"})
    load_labels(spark, wh, "hdfs", str(SAMPLES / "HDFS_blocks600.anomaly_label.csv.gz"))
    write_table(sessionize(read_table(spark, wh.table("events")), [rules_for("hdfs")], read_labels(spark, wh)),
                wh.table("sessions"))
    return wh


def _test_part(spark, wh, summary):
    from logad.models.retrain import _data_version, _parts

    uri, version = _data_version(summary["data_version"])
    return _parts(spark, uri, version, summary["job"]).where("part = 'test'").drop("part")


def test_a_tree_is_trained_registered_served_and_explained(spark, warehouse, capsys):
    from logad.cli import main
    from logad.ingest import run
    from logad.io.delta import read_table
    from logad.live_scoring import ScoreStage, start_scoring
    from logad.models.fit import metrics
    from logad.models.registry import promoted, resolve
    from logad.models.retrain import evaluate_version

    wh = warehouse
    assert main(["train", "--warehouse", wh.root, "--model", "tree", "--name", "hdfs", "--promote"]) == 0
    out = capsys.readouterr().out
    models = Path(wh.root) / "models"
    assert "hdfs v1 (tree)" in out and "promoted" in out
    version, path = resolve(models, "hdfs", "promoted")
    assert (version, path) == (1, str(models / "hdfs" / "v1" / "model")) and Path(path).is_dir()  # Spark ML's folder
    summary = json.loads((Path(path).parent / "model.json").read_text())
    assert summary["kind"] == "tree" and summary["job"]["model"] == "tree" and promoted(models, "hdfs") == 1
    m = summary["metrics"]
    assert m["test_sessions"] >= 100 and m["test_anomalies"] >= 20 and m["test_f1"] >= 0.9, m
    # the scoring stage serves it as it was evaluated: the same test sessions, the same figures
    served = evaluate_version(spark, wh, models, "hdfs", 1, _test_part(spark, wh, summary))
    for k in ("precision", "recall", "f1", "auc"):
        assert served[k] == pytest.approx(m[f"test_{k}"]), (k, served, m)
    # the streaming query: every session scored once by the tree, its figures against the labels
    stage = ScoreStage(spark, wh, "hdfs", "promoted")
    run(start_scoring(spark, wh, stage, trigger="1 second"), once=True, settle_s=0)
    stage.close()
    scores = read_table(spark, wh.table("scores")).join(
        read_table(spark, wh.table("sessions")).select("session_id", "label"), "session_id").toPandas()
    assert len(scores) == 600 and set(scores["model"]) == {"hdfs"} and set(scores["model_version"]) == {1}
    assert metrics(scores["label"].to_numpy(), scores["score"].to_numpy(), summary["threshold"])["f1"] >= 0.9
    # explain: the lines whose template moves the score most are marked, with that impact
    hit = scores[(scores["label"] == 1) & scores["is_anomaly"]].iloc[0]
    assert main(["explain", hit["session_id"], "--warehouse", wh.root]) == 0
    shown = capsys.readouterr().out
    marked = [line for line in shown.splitlines() if line.startswith(">> ")]
    assert "ANOMALY" in shown and "hdfs v1" in shown and marked, shown
    row = read_table(spark, wh.table("sessions")).where(f"session_id = '{hit['session_id']}'").first().asDict()
    top = stage.current.detector.top_events(spark, [row], 5)[0]
    assert sorted(float(line.split()[1]) for line in marked) == pytest.approx(sorted(imp for _, _, imp in top), abs=6e-4)


def test_count_detector_top_events_are_the_lines_the_decision_rests_on(spark, warehouse):
    from logad.io.delta import read_table
    from logad.live_scoring import load_version
    from logad.models.registry import resolve

    models = Path(warehouse.root) / "models"
    if not (models / "hdfs" / "v1").exists():
        pytest.skip("needs the trained tree")
    _, path = resolve(models, "hdfs", 1)
    det = load_version(spark, models, "hdfs", 1, path, broadcast=False).detector
    rows = [r.asDict() for r in read_table(spark, warehouse.table("sessions")).where("label = 1")
            .orderBy("session_id").limit(20).collect()]
    base = {r["session_id"]: s for r, s in zip(rows, det.scores(
        spark.createDataFrame([(r["session_id"], r["template_ids"]) for r in rows], "session_id string, "
                              "template_ids array<string>")).toPandas()["score"], strict=True)}
    tops = det.top_events(spark, rows, 3)
    for row, top in zip(rows, tops, strict=True):
        ids = row["template_ids"]
        assert 0 < len(top) <= 3 and len({ids[i] for i, _, _ in top}) == len(top)  # one line per template
        impacts = [imp for _, _, imp in top]
        assert impacts == sorted(impacts, reverse=True)
        i, _, imp = top[0]
        assert i == ids.index(ids[i])  # the template's first line
        # the impact is what leaving that template out does to the score
        left = det.scores(spark.createDataFrame([([t for t in ids if t != ids[i]],)], "template_ids array<string>"))
        assert base[row["session_id"]] - left.first()["score"] == pytest.approx(imp)
    assert any(top[0][2] > 0 for top in tops)


def test_retrain_picks_the_better_detector_and_the_stream_swaps_kinds(spark, warehouse, capsys):
    from logad.cli import main
    from logad.io.delta import read_table
    from logad.live_scoring import ScoreStage
    from logad.models import registry

    wh = warehouse
    models = Path(wh.root) / "models"
    assert main(["retrain", "--warehouse", wh.root, "--model", "att_gru,tree", "--name", "slot", "--unit", "session",
                 "--epochs", "4", "--batch-size", "64", "--num-processes", "1"]) == 0
    out = capsys.readouterr().out
    report = json.loads(next((models / "slot").glob("v*/retrain.json")).read_text())
    by_kind = {c["kind"]: c for c in report["candidates"]}
    assert set(by_kind) == {"att_gru", "tree"} and {c["version"] for c in by_kind.values()} == {1, 2}
    best = max(report["candidates"], key=lambda c: c["metrics"]["f1"])
    assert report["decision"] == "promoted" and report["kind"] == best["kind"]
    assert registry.promoted(models, "slot") == best["version"]
    # every held-out session is scored, also those the stream already wrote to scores (the first
    # test's query scored all 600): an evaluation is not the stream's once-per-session write
    assert all(c["metrics"]["sessions"] == report["held_out"]["sessions"] for c in report["candidates"])
    assert "best of att_gru, tree" in out and "candidate tree" in out and "candidate att_gru" in out
    # one slot, two kinds: the running stage follows a promotion from one to the other
    other = next(c for c in report["candidates"] if c is not best)
    stage = ScoreStage(spark, wh, "slot", "promoted", once_per_session=False)
    sessions = read_table(spark, wh.table("sessions")).orderBy("session_id").limit(50)
    try:
        first = stage.apply(sessions, 0, "t").select("session_id", "model_version", "score").toPandas()
        registry.promote(models, "slot", other["version"], "test: swap kinds")
        second = stage.apply(sessions, 1, "t").select("session_id", "model_version", "score").toPandas()
    finally:
        stage.close()
    assert set(first["model_version"]) == {best["version"]} and set(second["model_version"]) == {other["version"]}
    assert stage.swaps[-1] == (1, best["version"], other["version"]) and stage.current.kind == other["kind"]
    assert len(first) == len(second) == 50 and not (first.sort_values("session_id")["score"].to_numpy()
                                                   == second.sort_values("session_id")["score"].to_numpy()).all()
