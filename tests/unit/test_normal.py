"""The detectors of normal without Spark: the threshold rule, each score, the explanations, the
artifact, and the seam's table (every entry loads, its artifact is one the registry finds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logad.errors import ConfigError, LogadError
from logad.models.normal import LengthDetector, NoveltyDetector, PCADetector, threshold_at_rate


def test_threshold_at_rate_is_the_lowest_score_that_at_most_that_share_reaches():
    scores = np.arange(100, dtype=float)  # 0..99
    t = threshold_at_rate(scores, 0.05)
    assert t == 95.0 and np.mean(scores >= t) == 0.05
    assert threshold_at_rate(scores, 0.049) == 96.0
    # ties: most history scores 0 (no rare template); the threshold is above the ties
    tied = np.array([0.0] * 97 + [3.0, 3.0, 5.0])
    assert threshold_at_rate(tied, 0.05) == 3.0 and threshold_at_rate(tied, 0.02) == 5.0
    top = threshold_at_rate(np.array([1.0] * 10), 0.1)  # all tied: nothing in history alarms
    assert top > 1.0 and not np.any(np.array([1.0] * 10) >= top)
    with pytest.raises(LogadError, match="no held-out sessions"):
        threshold_at_rate([], 0.01)


def test_novelty_ranks_never_seen_above_rare_above_common():
    det = NoveltyDetector("novelty", {"sessions": 1000, "support": {"a": 1000, "b": 900, "r": 3},
                                      "templates": ["a", "b", "r"]})
    s = det.score_lists([["a", "b"], ["a", "r"], ["a", "new"], []])
    assert s[0] < s[1] < s[2] and s[3] == 0.0
    assert s[2] == pytest.approx(-math.log10(0.5 / 1001))
    w = det.weights(["a", "new", "new"])
    assert set(w) == {"a", "new"} and w["new"] > w["a"] and sum(w.values()) == pytest.approx(1.0)
    top = det.top_events(None, [{"template_ids": ["a", "b", "new", "a"]}], 2)[0]
    assert top[0][0] == 2 and top[0][2] == pytest.approx(s[2] - det.score_lists([["a", "b"]])[0])


def test_length_is_two_sided_in_robust_units():
    det = LengthDetector("length", {"median": math.log1p(20), "scale": 0.5, "templates": ["a"]})
    short, usual, long_ = det.score_lists([["a"] * 3, ["a"] * 20, ["a"] * 200])
    assert usual == 0.0 and short > 2 and long_ > 2
    assert short == pytest.approx(abs(math.log1p(3) - math.log1p(20)) / 0.5)
    # the template with most lines of a swollen session weighs most, and leaving it out helps most
    top = det.top_events(None, [{"template_ids": ["a"] * 5 + ["x"] * 195}], 2)[0]
    assert top[0][0] == 5 and top[0][2] > 0


def test_pca_scores_the_residual_outside_the_subspace_and_names_its_templates():
    # one normal direction: a and b move together; c and anything unseen lie outside it
    d = np.array([1.0, 1.0, 0.0, 0.0]) / math.sqrt(2)
    det = PCADetector("pca", {"templates": ["a", "b", "c"], "columns": ["a", "b", "c"], "idf": [1.0] * 4,
                              "mean": [0.0] * 4, "components": [d.tolist()]})
    along, off, new = det.score_lists([["a", "b"], ["a", "b", "c"], ["a", "b", "zz"]])
    assert along == pytest.approx(0.0, abs=1e-12) and off == pytest.approx(1.0) and new == pytest.approx(1.0)
    assert det.weights(["a", "b", "c"])["c"] == pytest.approx(1.0)
    top = det.top_events(None, [{"template_ids": ["a", "b", "c", "c"]}], 1)[0]
    assert top == [(2, pytest.approx(1.0), pytest.approx(4.0))]  # two c lines: residual 2, squared 4
    assert len(det.score_lists([])) == 0


def test_a_detector_file_round_trips_and_a_wrong_one_is_refused(tmp_path):
    det = NoveltyDetector("novelty", {"sessions": 4, "support": {"a": 4}, "templates": ["a"]}, threshold=1.5)
    det.save(tmp_path / "v1" / "detector.json")
    back = NoveltyDetector.load(None, tmp_path / "v1" / "detector.json", 1.5, "novelty")
    assert isinstance(back, NoveltyDetector) and back.state == det.state and back.threshold == 1.5
    with pytest.raises(LogadError, match="holds a novelty detector, not pca"):
        NoveltyDetector.load(None, tmp_path / "v1" / "detector.json", 1.0, "pca")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(LogadError, match="not a detector file"):
        NoveltyDetector.load(None, tmp_path / "bad.json")


def test_every_detector_of_the_seam_loads_and_its_artifact_is_found_by_the_registry():
    from logad.models.detectors import DETECTORS, UNSUPERVISED, detector_class, supervised
    from logad.models.registry import ARTIFACTS

    for kind, spec in DETECTORS.items():
        cls = detector_class(kind)
        for method in ("train", "load", "save", "scores", "session_scores", "top_events"):
            assert callable(getattr(cls, method, None)), (kind, method)
        assert spec.artifact in ARTIFACTS
    assert set(UNSUPERVISED) == {"novelty", "length", "pca", "nextevent"} and supervised("att_gru") and supervised("tree")


def test_a_supervised_model_without_labels_is_refused_with_the_choices():
    from logad.models.train_job import TrainJob

    with pytest.raises(ConfigError, match="att_gru learns from labels; with labels none use one of novelty"):
        TrainJob(model="att_gru", labels="none")
    with pytest.raises(ConfigError, match="false_alarm_rate"):
        TrainJob(model="pca", false_alarm_rate=0)
    assert TrainJob(model="pca", labels="none").false_alarm_rate == 0.01
