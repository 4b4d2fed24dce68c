# NeuroKube -- two entry points: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
NK := $(VENV)/bin/neurokube
STAMP := $(VENV)/.installed
OUT ?= out/demo

.PHONY: demo test unit e2e integration binaries stack-install install forecast-bench load clean help

help:
	@echo "make demo   - the main job end to end on embedded defaults (writes $(OUT)/)"
	@echo "make test   - every test tier (unit, integration, e2e); installs what it needs"

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

DEMO_POLICIES := default most-allocated tlp lvrb koordinator random oracle neurokube

# The learned policy is trained on its own trace (another seed, smaller), never on the one it is shown on.
demo: $(STAMP)
	$(NK) trace synth --out $(OUT)/trace
	$(NK) trace synth --out $(OUT)/train-trace --seed 1 --nodes 20 --hours 12 --warmup-hours 6
	$(NK) train --trace $(OUT)/train-trace --out $(OUT)/model --iterations 0 --rounds 100
	$(NK) replay --trace $(OUT)/trace $(foreach p,$(DEMO_POLICIES),--policy $(p)) --model $(OUT)/model \
	  --json $(OUT)/replay.json --placements-out $(OUT)/placements --plot $(OUT)/replay.png
	$(NK) audit --trace $(OUT)/trace --placements $(OUT)/placements --report $(OUT)/replay.json
	$(NK) bench frontier --trace $(OUT)/trace --model $(OUT)/model --json $(OUT)/frontier.json --plot $(OUT)/frontier.png
	$(NK) nightly --days 3 --out $(OUT)/nightly
	@echo "demo done: replay table with NeuroKube's row, $(OUT)/replay.png, $(OUT)/frontier.png, and the 3-day learning loop in $(OUT)/nightly/"

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

# Pinned Go builds (etcd, Kubernetes, KWOK, Knative adapter) into ~/.cache/neurokube/bin/<pins>/;
# a no-op when cached, about 15 minutes cold on 2 cores.
binaries: $(STAMP)
	$(NK) cluster build

e2e: binaries
	$(VENV)/bin/pytest -q -m e2e tests/e2e

# MinIO (pinned Go build, about 9 minutes cold) and Debian's Prometheus (apt, needs root once).
stack-install: $(STAMP)
	$(NK) stack install

integration: stack-install
	$(VENV)/bin/pytest -q -m integration tests/integration

test: binaries stack-install
	$(VENV)/bin/pytest -q --durations=40 tests

# Load-test without reading docs/OPERATIONS.md: a local cluster with the functions, the three Locust
# scenarios headless at a modest size, HTML reports + CSVs + summary.md under out/load/, cluster down.
load: binaries
	$(VENV)/bin/python benchmarks/load_runs.py --quick --out out/load

forecast-bench: $(STAMP)
	$(VENV)/bin/python benchmarks/forecast_quality.py

clean:
	rm -rf out .pytest_cache
