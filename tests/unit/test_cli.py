"""Tier 1: the CLI reference page is the parser's, and the CLI's defaults are the library's."""

from __future__ import annotations

from pathlib import Path

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
                 "embed_dim", "max_len", "num_processes", "seed", "train_fraction", "valid_fraction"):
        assert getattr(args, name) == getattr(job, name), name
    # a changed library default is the CLI's default, with no second declaration to forget
    fields = {f.name: f for f in dataclasses.fields(TrainJob)}
    monkeypatch.setattr(fields["epochs"], "default", 7)
    assert parse(["train"]).epochs == 7
    monkeypatch.setattr(start_ingest, "__defaults__", (None, "9 seconds", "ingest", "drain"))
    assert parse(["ingest"]).trigger == "9 seconds"
