"""Tier 2: ``logad evaluate`` on the committed HDFS excerpt (real lines, LogHub's block labels)
through the product's own path (ingest parser, template stage, batch sessionizer, labels table),
every baseline and a sequence model, the table and the JSON line; missing data is a clear error."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

from logad.cli import main
from logad.models.evaluate import hdfs_block_sessions

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def shared_layout(tmp_path: Path) -> Path:
    raw = tmp_path / "HDFS" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(SAMPLES / "HDFS_first20000.log.gz", raw / "HDFS_dev_sample.log.gz")
    (raw / "HDFS_dev_sample.anomaly_label.csv").write_bytes(
        gzip.decompress((SAMPLES / "HDFS_first20000.anomaly_label.csv.gz").read_bytes()))
    return tmp_path


def test_block_sessions_follow_the_lines_and_match_the_labels(tmp_path):
    root = shared_layout(tmp_path)
    seqs, texts, labels = hdfs_block_sessions(root / "HDFS/raw/HDFS_dev_sample.log.gz",
                                              root / "HDFS/raw/HDFS_dev_sample.anomaly_label.csv")
    assert set(seqs) == set(labels)  # every block of the excerpt, one session each, and only those
    assert len(seqs) == 1782
    lines = gzip.decompress((SAMPLES / "HDFS_first20000.log.gz").read_bytes()).decode().splitlines()
    named = sum(len(set(re.findall(r"blk_-?\d+", ln))) for ln in lines)  # a line may name two blocks
    assert sum(len(s) for s in seqs.values()) == named
    assert all(t in texts for s in seqs.values() for t in s)  # every id resolves to its template
    assert any(t.startswith("Receiving block <*> src:") for t in texts.values())
    assert sum(labels.values()) == 43


def test_evaluate_prints_the_table_and_json(tmp_path, capsys):
    root = shared_layout(tmp_path)
    assert main(["evaluate", "--data", str(root), "--models", "pca,logreg,tree,att_gru", "--seeds", "0",
                 "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "ATT-GRU" in out and "TREE" in out and "F1-measure" in out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["protocol"] == "hdfs-blocks" and set(result["models"]) == {"pca", "logreg", "tree", "att_gru"}
    # through the product: the training job and the scoring UDF, with the line accounting of the run
    acc = result["accounting"]
    assert result["path"] == "product" and acc["max_sessions_per_block"] == 1
    assert acc["lines_in"] == acc["raw_logs"] == acc["events"] + acc["rejects"] == 20000
    assert acc["blocks_with_a_session"] == acc["blocks_labelled"] == 1782
    for m in result["models"].values():
        assert 0.0 <= m["f1"][0] <= 1.0


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path), "--seeds", "0"]) == 2
    assert "HDFS_dev_sample.log.gz is missing" in capsys.readouterr().err


def test_bgl_chrono_trains_on_the_past_and_tests_on_the_future(tmp_path, capsys):
    from logad.models.evaluate import bgl_chrono

    (tmp_path / "BGL").mkdir()
    text = gzip.decompress((SAMPLES / "BGL_2k.log.gz").read_bytes()).decode()
    # shuffled on disk: the protocol must order by the epoch column, not trust the file
    lines = text.splitlines()
    (tmp_path / "BGL" / "BGL_2k.log").write_text("\n".join(lines[1::2] + lines[::2]) + "\n")
    split = bgl_chrono(tmp_path, seed=0)
    assert (len(split.train), len(split.valid), len(split.test)) == (120, 40, 40)
    # a window is abnormal iff one of its 10 lines in event-time order (the epoch seconds plus the
    # local time's microseconds, ties in file order) is an alert
    on_disk = lines[1::2] + lines[::2]
    ordered = sorted((int(x.split()[1]) * 10**6 + int(x.split()[4][-6:]), n, x.split()[0] != "-")
                     for n, x in enumerate(on_disk))
    truth = [int(any(a for _, _, a in ordered[i:i + 10])) for i in range(0, 2000, 10)]
    assert [y for _, y in split.train + split.valid + split.test] == truth
    assert sum(truth) == 40 and sum(truth[160:]) >= 1  # the test part has alerts to find
    assert main(["evaluate", "--protocol", "bgl-chrono", "--data", str(tmp_path), "--models", "tree",
                 "--seeds", "0"]) == 0
    assert "chronological 60/20/20" in capsys.readouterr().out
