"""TorchDistributor on the test session: two real training processes (gloo), DDP keeps every
rank's parameters identical, and the result learns."""

from __future__ import annotations

from conftest import SMALL, toy
from logad.models import ModelConfig
from logad.models.fit import TrainConfig, metrics, predict


def test_two_processes_end_with_the_same_parameters_and_learn(spark):
    from logad.models.distributed import train_with_distributor

    train, valid = toy(400), toy(100, seed=1)
    result = train_with_distributor(spark, ModelConfig(**SMALL), TrainConfig(epochs=6, batch_size=64, lr=1e-2),
                                    train, valid, num_processes=2)
    digests = result.digests  # type: ignore[attr-defined]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert metrics([e.label for e in valid], predict(result.model, valid))["f1"] >= 0.9


def test_rank_zeros_result_survives_a_rank_that_finishes_last(spark):
    """In local mode every torchrun process writes its return value to one output file, so the
    last rank to finish decides what the driver gets (a CI failure: ``None`` instead of rank 0's
    weights). Here rank 1 finishes two seconds after rank 0; the driver must still get rank 0's."""
    import pickle

    from pyspark.ml.torch.distributor import TorchDistributor

    def rank_one_finishes_last() -> bytes:
        import time

        import torch.distributed as dist

        from logad.models.distributed import rank0_result

        dist.init_process_group("gloo")
        try:
            rank = dist.get_rank()
            blob = rank0_result({"from_rank": rank, "world": dist.get_world_size()} if rank == 0 else None)
        finally:
            dist.destroy_process_group()
        if rank == 1:
            time.sleep(2)
        return blob

    blob = TorchDistributor(num_processes=2, local_mode=True, use_gpu=False).run(rank_one_finishes_last)
    assert pickle.loads(blob) == {"from_rank": 0, "world": 2}


def test_petastorm_shards_deal_every_training_row_to_exactly_one_rank(spark, tmp_path):
    """Each rank reads its shard of the training files; together the shards are every row once,
    and a rank reads the same rows in the same order every time (petastorm's shuffling buffer
    draws from numpy's global generator: unseeded, the same seed trained a different model on
    each run, F1 0.969 and 0.985 on the same HDFS split)."""
    from petastorm.spark import SparkDatasetConverter, make_spark_converter

    from logad.models.train_job import PetastormBatches, _deterministic_files

    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, f"file://{tmp_path}")
    rows = spark.createDataFrame([(f"s{i:03d}", 0, [i, 0], i, [1, 1], i % 2) for i in range(400)],
                                 "session_id string, window int, x array<int>, length int, repeats array<int>, label int")
    converter = make_spark_converter(_deterministic_files(rows, 8).select("x", "length", "repeats", "label"))
    try:
        def read(rank: int, seed: int) -> list[int]:
            with PetastormBatches(converter, 400, [200, 200], False, seed=seed).loader(rank, 2, 16, num_epochs=1) as dl:
                return [int(v) for b in dl for v in b["length"]]

        for seed in (3, 0):  # 0, the default job's seed, is petastorm's "no seed": never passed on
            shards = [read(0, seed), read(1, seed)]
            assert sorted(shards[0] + shards[1]) == list(range(400))  # every row, once
            assert shards[0] and shards[1] and read(0, seed) == shards[0]  # and the same order again
    finally:
        converter.delete()
