"""Sequence models on CPU: shapes, a forward/backward pass for every kind, attention weights sum
to one over the real events, padding does not change a score, a tiny model learns a separable
toy task, template vectors for unseen templates, windows and collapsed repeats."""

from __future__ import annotations

import pytest
import torch

from conftest import SMALL, toy
from logad.errors import ConfigError
from logad.models import KINDS, ModelConfig, SequenceClassifier
from logad.models.vectors import UNKNOWN, train_vectors, words
from logad.models.windows import collapse, pad, sliding


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("repeats,counts", [(False, False), (True, False), (False, True), (True, True)])
def test_every_kind_runs_forward_and_backward(kind, repeats, counts):
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, vocab_size=20, embed_dim=16, hidden=8, fc=8, repeats=repeats,
                      heads=1 if repeats else 4, freeze_embeddings=False, counts=counts)
    model = SequenceClassifier(cfg)
    x, lengths = pad([[2, 3, 4], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [2]])  # (3, 10)
    runs = torch.randint(1, 5, x.shape)
    logits, loss = model(x, lengths, runs if repeats else None, targets=torch.tensor([0, 1, 0]))
    assert logits.shape == (3, 2)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("kind", ["att_gru", "att_lstm"])
def test_attention_weights_sum_to_one_over_the_real_events(kind):
    model = SequenceClassifier(ModelConfig(kind=kind, vocab_size=30, embed_dim=8, hidden=8))
    x, lengths = pad([[2, 3, 4], list(range(2, 12)), [7]])
    alpha = model.weights(x, lengths)  # (B, T)
    assert torch.allclose(alpha.sum(dim=1), torch.ones(3))
    assert (alpha[0, 3:] == 0).all() and (alpha[2, 1:] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("counts", [False, True])
def test_padding_does_not_change_a_score(kind, counts):
    torch.manual_seed(1)
    model = SequenceClassifier(ModelConfig(kind=kind, vocab_size=30, embed_dim=8, hidden=8, heads=2,
                                           counts=counts)).eval()
    seqs = [[2, 3, 4, 5], list(range(2, 14)), [9, 9]]
    x, lengths = pad(seqs)
    together, _ = model(x, lengths)
    for i, s in enumerate(seqs):
        alone, _ = model(*pad([s]))
        assert torch.allclose(together[i], alone[0], atol=1e-5), (kind, i)


def test_a_tiny_att_gru_learns_a_separable_task():
    """Windows holding template 7 are abnormal: the model must find it anywhere in the window."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(2, 7, (512, 10), generator=gen)  # (N, T) normal events 2..6
    y = torch.randint(0, 2, (512,), generator=gen)
    where = torch.randint(0, 10, (512,), generator=gen)
    x[y == 1, where[y == 1]] = 7
    model = SequenceClassifier(ModelConfig(vocab_size=8, embed_dim=8, hidden=16, fc=16, dropout=0.0,
                                           freeze_embeddings=False))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        _, loss = model(x, targets=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits, _ = model(x)
    assert (logits.argmax(1) == y).float().mean() >= 0.97
    alpha = model.weights(x[y == 1][:50])
    top = alpha.argmax(1)
    assert (x[y == 1][:50][torch.arange(50), top] == 7).float().mean() >= 0.8, "attention finds the event"


def test_counts_see_how_often_a_template_occurs_and_unseen_templates_count_as_unknown():
    """``counts=True``: the event-count vector reaches the output (the GRU alone would have to learn
    to count); a template index past the vocabulary (a vector appended at scoring, as
    :func:`logad.models.inference.load_cached` does) counts in slot 1, the unknown template's."""
    torch.manual_seed(0)
    with_counts = SequenceClassifier(ModelConfig(vocab_size=20, embed_dim=8, hidden=8, fc=8, counts=True)).eval()
    plain = SequenceClassifier(ModelConfig(vocab_size=20, embed_dim=8, hidden=8, fc=8)).eval()
    plain.load_state_dict({k: v for k, v in with_counts.state_dict().items() if not k.startswith("bag.")})
    seqs = [[2, 3, 3, 4], [2] + [3] * 15 + [4]]
    x, lengths = pad(seqs)
    with torch.no_grad():
        with_counts.bag.weight.zero_()  # the bag silenced: the same model as without counts
        assert torch.allclose(with_counts(x, lengths)[0], plain(x, lengths)[0], atol=1e-6)
        with_counts.bag.weight[:, 3] = 1.0  # only template 3's count: 2 against 15 moves the logits
        moved = with_counts(x, lengths)[0] - plain(x, lengths)[0]
        assert not torch.allclose(moved[0], moved[1], atol=1e-3)
        with_counts.bag.weight.normal_()
        weight = with_counts.embed.weight.detach()
        with_counts.embed = torch.nn.Embedding.from_pretrained(torch.cat([weight, weight[1:2]]), padding_idx=0)
        unseen, _ = with_counts(torch.tensor([[2, 20, 4]]))  # index 20: appended, same vector as 1
        unknown, _ = with_counts(torch.tensor([[2, 1, 4]]))
    assert torch.allclose(unseen, unknown, atol=1e-6)


def test_config_checks_itself():
    with pytest.raises(ConfigError, match="kind"):
        ModelConfig(kind="cnn")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(kind="transformer_gru", embed_dim=10, heads=4)
    with pytest.raises(ConfigError, match="template vectors"):
        SequenceClassifier(ModelConfig(vocab_size=5, embed_dim=4), torch.zeros(6, 4))


def test_template_vectors_give_unseen_templates_a_vector_from_their_words():
    templates = {"a": "Receiving block <*> src: <*> dest: <*>", "b": "Received block <*> of size <*>",
                 "c": "Deleting block <*> file <*>", "d": "PacketResponder <*> for block <*> terminating"}
    tv = train_vectors(templates, dim=8, seed=3)
    assert tv.matrix.shape == (6, 8) and tv.index("a") == 2
    assert tv.index("never-seen") == UNKNOWN and tv.unseen == 1
    row = tv.add("e", "Deleting block <*> src: <*>")
    assert row == 6 and tv.matrix.shape == (7, 8) and abs(tv.matrix[row]).sum() > 0
    again = train_vectors(templates, dim=8, seed=3)
    assert (again.matrix == tv.matrix[:6]).all(), "deterministic for a seed"
    assert words("PacketResponder <*> for blockMap terminating") == [
        "packet", "responder", "for", "block", "map", "terminating"]


def test_windows_and_collapsed_repeats():
    assert collapse([5, 5, 5, 22, 11, 11, 5]) == ([5, 22, 11, 5], [3, 1, 2, 1])
    assert collapse([]) == ([], [])
    assert sliding([1, 2, 3, 4, 5], 3) == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert sliding([1, 2], 3) == [[1, 2]]
    x, n = pad([[3, 4], [], [1, 2, 3]])
    assert x.tolist() == [[3, 4, 0], [0, 0, 0], [1, 2, 3]] and n.tolist() == [2, 1, 3]


def test_metrics_compute_f1_from_precision_and_recall():
    from logad.models.fit import metrics

    m = metrics([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.2, 0.7, 0.1, 0.3])
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(7 / 9)  # 7 of the 9 (pos, neg) pairs ranked right


def test_the_threshold_sits_in_the_middle_of_the_best_f1_gap_not_at_its_edge():
    import numpy as np

    from logad.models.fit import best_threshold, metrics

    # validation: normals up to 0.05, anomalies from 0.9; any cut in (0.05, 0.9] gives F1 1.0
    labels = [0, 0, 0, 0, 1, 1, 1]
    scores = np.array([0.001, 0.01, 0.02, 0.05, 0.9, 0.95, 0.999])
    cut = best_threshold(labels, scores)
    assert metrics(labels, scores, cut)["f1"] == 1.0
    assert 0.05 < cut < 0.9
    # the middle in log-odds: an unseen normal at 0.2 and an unseen anomaly at 0.7 both land right
    assert 0.2 < cut < 0.7
    # the old rule (the lowest score with the best F1: the lowest anomaly's, 0.9) missed 0.7
    assert metrics([0, 1], np.array([0.2, 0.7]), cut)["f1"] == 1.0
    # scores that are not probabilities: the plain middle
    assert best_threshold([0, 0, 1, 1], np.array([1.0, 2.0, 6.0, 8.0])) == pytest.approx(4.0)
    # no perfect cut: still the best F1 there is
    noisy = np.array([0.1, 0.6, 0.4, 0.8])
    assert metrics([0, 0, 1, 1], noisy, best_threshold([0, 0, 1, 1], noisy))["f1"] == pytest.approx(0.8)


def test_among_epochs_with_the_same_validation_f1_the_lower_validation_loss_is_kept():
    from logad.models.fit import TrainConfig, fit

    train, valid = toy(400), toy(100, seed=1)
    result = fit(ModelConfig(**SMALL), TrainConfig(epochs=12, batch_size=64, lr=1e-2, patience=20), train, valid)
    h = result.history
    best = h[result.best_epoch]
    assert best["val_f1"] == max(r["val_f1"] for r in h)
    tied = [r for r in h if r["val_f1"] == best["val_f1"]]
    assert len(tied) > 1, "the toy task should reach its best F1 more than once"
    assert best["val_loss"] == min(r["val_loss"] for r in tied)
    assert result.best_epoch > tied[0]["epoch"]  # not frozen at the first epoch that reached it


def test_fit_learns_stops_early_and_resumes_to_the_same_weights(tmp_path):
    from logad.models.fit import TrainConfig, fit, metrics, predict

    train, valid = toy(400), toy(100, seed=1)
    cfg = ModelConfig(**SMALL)
    full = fit(cfg, TrainConfig(epochs=6, batch_size=64, lr=1e-2, patience=10), train, valid)
    assert metrics([e.label for e in valid], predict(full.model, valid))["f1"] >= 0.9
    assert len(full.history) == 6
    # the same run interrupted after 3 epochs and resumed from its checkpoint
    ck = str(tmp_path / "ck.pt")
    fit(cfg, TrainConfig(epochs=3, batch_size=64, lr=1e-2, patience=10, checkpoint=ck), train, valid)
    resumed = fit(cfg, TrainConfig(epochs=6, batch_size=64, lr=1e-2, patience=10, checkpoint=ck), train, valid)
    assert [round(h["loss"], 6) for h in resumed.history] == [round(h["loss"], 6) for h in full.history]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # patience: a model that cannot improve stops early
    stuck = fit(ModelConfig(**{**SMALL, "freeze_embeddings": True}), TrainConfig(epochs=50, lr=1e-9, patience=2),
                train[:40], valid[:20])
    assert len(stuck.history) <= 4


def test_an_artifact_reloads_and_scores_identically_and_bad_files_are_clear_errors(tmp_path):
    import numpy as np

    from logad.errors import LogadError
    from logad.models.fit import TrainConfig, fit, load_artifact, predict, save_artifact

    train, valid = toy(200), toy(50, seed=1)
    result = fit(ModelConfig(**SMALL), TrainConfig(epochs=2, batch_size=64, lr=1e-2), train, valid)
    path = save_artifact(tmp_path / "m" / "model.pt", result, template_ids=[f"t{i}" for i in range(6)],
                         vectors=np.zeros((8, 8)), metrics_={"f1": 1.0}, data_version=3)
    model, meta = load_artifact(path)
    assert np.array_equal(predict(model, valid), predict(result.model, valid))
    assert meta["data_version"] == "3" and meta["template_ids"][0] == "t0" and meta["threshold"] == result.threshold
    with pytest.raises(LogadError, match="no model artifact"):
        load_artifact(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a model")
    with pytest.raises(LogadError, match="cannot be read"):
        load_artifact(tmp_path / "corrupt.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden"] = 32  # weights of another shape
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(LogadError, match="does not match its config"):
        load_artifact(tmp_path / "shape.pt")


def test_the_petastorm_reader_seed_is_never_petastorms_no_seed():
    """petastorm reads seed 0 as "no seed" and then shuffles with numpy's global generator in its
    ventilator thread, racing the shuffling buffer's draws in the training thread."""
    from logad.models.train_job import reader_seed

    seeds = [reader_seed(s, r) for s in range(5) for r in range(8)]
    assert 0 not in seeds and len(set(seeds)) == len(seeds)


def test_a_lost_executor_is_told_apart_from_a_rank_error():
    """The driver's error after a YARN container was killed mid-training (Spark 4.0's text, from
    tests/e2e/test_yarn.py) is retried; a rank's own Python error is not."""
    from logad.models.distributed import executor_lost

    spark_text = (
        "An error occurred while calling o321.collectToPython.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Could not recover from a "
        "failed barrier ResultStage. Most recent failure reason: Stage failed because barrier task "
        "ResultTask(42, 0) finished unsuccessfully.\n"
        "ExecutorLostFailure (executor 1 exited caused by one of the running tasks) Reason: Container from "
        "a bad node: container_1796337908894_0003_01_000002 on host: localhost. Exit status: 137.\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2935)")
    lost = executor_lost(RuntimeError(spark_text))
    assert lost is not None and lost.startswith("ExecutorLostFailure (executor 1 exited")
    assert "Exit status: 137" in lost
    rank_error = ("Job aborted due to stage failure: Task 0 in stage 3.0 failed 1 times: "
                  "org.apache.spark.api.python.PythonException: Traceback ...\nConfigError: checkpoint x is for "
                  "another model config")
    assert executor_lost(RuntimeError(rank_error)) is None
