"""Tier 1: logad's JVM masking scanner (``jvm/``, ``logad.jvm.Mask``) gives exactly the text of the
rules it replaces, on every line of the LogHub 2k ground truth, every bundled sample and a
seeded fuzz of the characters the rules care about: against the Java regexes as Spark's
``regexp_replace`` ran them, and against Python's ``mask`` (what the miners and
``logad templates evaluate`` use). Real JVM, real jar built by Maven from the repository."""

from __future__ import annotations

import random
import subprocess

import pytest

from conftest import mask_corpus as corpus
from logad import jvm
from logad.templates.masking import DEFAULT_RULES, mask, rules_text


@pytest.fixture(scope="module")
def jar() -> str:
    return str(jvm.build())


def run(jar: str, mode: str, records: list[str]) -> list[str]:
    data = "\0".join(records).encode()
    out = subprocess.run(["java", "-cp", jar, "logad.jvm.MaskLines", mode], input=data,
                         capture_output=True, check=True, timeout=300).stdout
    got = out.decode().split("\0")
    assert got[-1] == "" and len(got) == len(records) + 1
    return got[:-1]


def fuzz(n: int, seed: int = 7) -> list[str]:
    """Short strings of the characters and fragments the rules look for, around and inside ids."""
    atoms = list("0123456789abcdefxABCDEFKMGTBz_-+./:<>* \t,;)]'\"@$~é\n") + [
        "blk_", "blk_-", "0x", "://", "1.2.3.4", "/a/b", "KB", " MB", "_1", "x-y", "\u0661", "\xa0",
        "\U0001F600", "12345678-1234-abcd-ABCD-0123456789ab"]
    rng = random.Random(seed)
    return ["".join(rng.choice(atoms) for _ in range(rng.randint(1, 14))) for _ in range(n)]


def differences(records: list[str], a: list[str], b: list[str]) -> list[str]:
    return [f"{r!r}\n  {x!r}\n  {y!r}" for r, x, y in zip(records, a, b, strict=True) if x != y][:10]


def test_the_scanner_implements_exactly_the_default_rules(jar):
    listed = subprocess.run(["java", "-cp", jar, "logad.jvm.MaskLines", "patterns"], capture_output=True,
                            text=True, check=True).stdout
    assert listed == rules_text(DEFAULT_RULES)


@pytest.mark.parametrize("records", [pytest.param(corpus(), id="loghub2k+samples"),
                                     pytest.param(fuzz(100_000), id="fuzz")])
def test_the_scanner_masks_every_line_as_the_regexes_do(jar, records):
    scanned = run(jar, "scan", records)
    java_regex = run(jar, "regex", records)
    python = [mask(r, DEFAULT_RULES) for r in records]
    assert not differences(records, scanned, java_regex), "\n".join(differences(records, scanned, java_regex))
    assert not differences(records, scanned, python), "\n".join(differences(records, scanned, python))
    assert sum(s != r for s, r in zip(scanned, records, strict=True)) > len(records) / 3  # it masks


def test_the_loghub_corpus_is_complete():
    """The committed contents cover all 16 systems' 2k lines (a truncated file would pass above)."""
    assert len(corpus()) > 55_000
