"""Tier 1: the CLI reference page is the parser's, and the CLI's defaults are the library's."""

from __future__ import annotations

from pathlib import Path

import pytest

from logad.cli import build_parser
from logad.cli.reference import render

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_reference_is_generated_from_the_parser():
    page = (ROOT / "docs" / "cli.md").read_text()
    assert page == render(), ("docs/cli.md is out of date: run "
                              "'.venv/bin/python -m logad.cli.reference > docs/cli.md'")


def test_defaults_come_from_the_config_dataclasses_and_signatures(monkeypatch):
    import dataclasses

    from logad.ingest import start_ingest
    from logad.models.train_job import TrainJob

    def parse(argv):
        return build_parser().parse_args(argv)

    job = TrainJob()
    args = parse(["train"])
    for name in ("system", "model", "unit", "window", "split", "epochs", "batch_size", "lr", "patience",
                 "embed_dim", "max_len", "num_processes", "seed", "train_fraction", "valid_fraction", "counts"):
        assert getattr(args, name) == getattr(job, name), name
    from logad.cli.models import train_job

    assert train_job(parse(["train", "--counts"])).counts and not train_job(parse(["train"])).counts
    assert train_job(parse(["retrain", "--counts", "--model", "att_gru,tree"])).counts
    # a changed library default is the CLI's default, with no second declaration to forget
    fields = {f.name: f for f in dataclasses.fields(TrainJob)}
    monkeypatch.setattr(fields["epochs"], "default", 7)
    assert parse(["train"]).epochs == 7
    monkeypatch.setattr(start_ingest, "__defaults__", (None, "9 seconds", "ingest", "drain"))
    assert parse(["ingest"]).trigger == "9 seconds"


def test_a_detector_kind_is_checked_before_anything_trains(tmp_path, capsys):
    """``retrain --model`` takes several kinds; an unknown one is a usage error (exit 2) naming the
    kinds, and a TrainJob refuses one too."""
    from logad.cli import main
    from logad.errors import ConfigError
    from logad.models.train_job import TrainJob

    with pytest.raises(SystemExit) as e:
        main(["retrain", "--warehouse", str(tmp_path), "--model", "att_gru,forest"])
    assert e.value.code == 2 and "use one or more of att_gru" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="tree, logreg"):
        TrainJob(model="forest")
    assert TrainJob(model="tree").registered == "tree" and TrainJob(model="tree", name="hdfs").registered == "hdfs"


def test_the_registry_lists_both_artifact_kinds_and_names_a_missing_one(tmp_path):
    from logad.errors import LogadError
    from logad.models import registry

    slot = tmp_path / "hdfs"
    for v, artifact in ((1, "model.pt"), (2, "model"), (3, None)):
        (slot / f"v{v}").mkdir(parents=True)
        (slot / f"v{v}" / "model.json").write_text("{}")
        if artifact == "model.pt":
            (slot / f"v{v}" / artifact).write_bytes(b"x")
        elif artifact:
            (slot / f"v{v}" / artifact).mkdir()
    (slot / "v4").mkdir()  # a staging leftover without model.json is not a version
    (slot / "v4" / "model.pt").write_bytes(b"x")
    assert registry.versions(tmp_path, "hdfs") == [1, 2]
    assert registry.resolve(tmp_path, "hdfs", 2) == (2, str(slot / "v2" / "model"))
    assert registry.resolve(tmp_path, "hdfs", "latest") == (2, str(slot / "v2" / "model"))
    with pytest.raises(LogadError, match="no model artifact in"):
        registry.resolve(tmp_path, "hdfs", 3)
