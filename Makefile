# logad — the two commands the README opens with, and their bootstrap.
#   make demo   run the pipeline end to end on the embedded default (local broker, Spark, Delta)
#   make test   run the test suite (ruff, mypy, the docs build, pytest: every tier)
#   make test-fast  ruff, mypy and the first two tiers (tests/unit, tests/spark): a few minutes
#   make docs   build the docs site into site/ (mkdocs, warnings are errors)
# Both create .venv on first use. torch goes in first, from the CPU wheel on local disk when there
# is one (an unpinned torch resolves to a multi-GB CUDA build); petastorm goes in last with
# --no-deps, and so does drain3 (see pyproject.toml for why).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.logad-installed
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-cp311-*.whl))
TORCH  ?= $(if $(TORCH_WHEEL),$(TORCH_WHEEL),torch==2.13.0)
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON := $(abspath $(BIN)/python)
export PYSPARK_DRIVER_PYTHON := $(abspath $(BIN)/python)

.PHONY: demo test test-fast docs lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "Java 17 is needed (Spark runs on the JVM): apt-get install openjdk-17-jre-headless"; exit 1; }
	@echo "==> creating $(VENV) with $(PYTHON) (first use only; a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps petastorm==0.13.1 drain3==0.9.11
	$(BIN)/python -m logad.jvm build  # logad's JVM module (jvm/), with Maven; fetched once when mvn is absent
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/logad demo

test: $(STAMP)
	$(BIN)/ruff check lib jobs tests bench notebooks deploy
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict  # not --quiet: it hides the warnings --strict counts
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/ruff check lib jobs tests bench notebooks deploy
	$(BIN)/mypy
	$(BIN)/python -m pytest tests/unit tests/spark

docs: $(STAMP)
	$(BIN)/python -m logad.cli.reference > docs/cli.md
	$(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check lib jobs tests bench notebooks deploy
	$(BIN)/mypy

bench: $(STAMP)
	cd bench && ../$(BIN)/python kafka_to_delta.py && ../$(BIN)/python ingest.py

clean:
	rm -rf .logad spark-warehouse site .pytest_cache .mypy_cache .ruff_cache
