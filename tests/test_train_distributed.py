"""TorchDistributor on the test session: two real training processes (gloo), DDP keeps every
rank's parameters identical, and the result learns."""

from __future__ import annotations

from test_models import SMALL, toy

from logad.models import ModelConfig
from logad.models.train import TrainConfig, metrics, predict


def test_two_processes_end_with_the_same_parameters_and_learn(spark):
    from logad.models.distributed import train_with_distributor

    train, valid = toy(400), toy(100, seed=1)
    result = train_with_distributor(spark, ModelConfig(**SMALL), TrainConfig(epochs=6, batch_size=64, lr=1e-2),
                                    train, valid, num_processes=2)
    digests = result.digests  # type: ignore[attr-defined]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert metrics([e.label for e in valid], predict(result.model, valid))["f1"] >= 0.9
