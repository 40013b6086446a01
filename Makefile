# sslbench: `make demo` and `make test` work on a fresh clone; `make help` lists every target.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export WANDB_SILENT := true

.PHONY: help venv test test-slow test-all lint smoke demo bench bench-eval bench-data bench-methods bench-ioi bench-duets bench-train lock clean
SEEDS ?= 0

help:  ## list the targets
	@grep -E '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)  ## create or refresh .venv with the pinned versions

test: $(STAMP)  ## the quick suite (CI runs this)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)  ## end-to-end checks: short synthetic trainings, W&B offline
	$(BIN)/python -m pytest -m slow -q

test-all: $(STAMP)  ## everything
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff (pyflakes, pycodestyle, isort, bugbear, pyupgrade rules; settings in pyproject.toml)
	$(BIN)/ruff check sslbench datamodules tests

smoke: $(STAMP)  ## every config in experiments/ runs one train/val/test step on small synthetic data (about 3 min)
	$(BIN)/python -m sslbench.smoke

reproduce-%: $(STAMP)  ## train + test one experiment as its config says: make reproduce-ezvsl_margin SEEDS=0,1,2; then a report
	@test -f experiments/$*.yaml || { echo "no experiments/$*.yaml; choose one of:" $$(cd experiments && ls *.yaml synthetic/*.yaml | sed 's/\.yaml$$//'); exit 2; }
	$(BIN)/sslbench fit $(if $(findstring synthetic/,$*),--config experiments/synthetic/base.yaml) --config experiments/$*.yaml --seeds $(SEEDS)
	$(BIN)/sslbench report runs --out runs/report.md

demo: $(STAMP)  ## train EZ-VSL (margin -0.2) on synthetic scenes on the CPU, test it, print one line
	$(BIN)/python -m sslbench.demo

bench: bench-eval bench-ioi bench-data bench-train bench-methods bench-duets  ## every benchmark (prints numbers; nothing is timed inside the tests)

bench-eval: $(STAMP)  ## 5,158 maps under every protocol: batched torch vs a per-sample numpy loop (CPU, and GPU if any)
	$(BIN)/python -m sslbench.bench.eval

bench-ioi: $(STAMP)  ## one IOI step on a batch of 128: batched vs one sample at a time (CPU, and GPU if any)
	$(BIN)/python -m sslbench.bench.ioi

bench-duets: $(STAMP)  ## IOI on synthetic duets vs its single-map baselines, floors and chance; one table (about 1 h on 2 cores)
	$(BIN)/python -m sslbench.bench.duets

bench-data: $(STAMP)  ## training loader samples/s: raw frames/audio files vs litdata chunks, by worker count, median of 3 interleaved rounds (about 4 min)
	$(BIN)/python -m sslbench.bench.data

bench-train: $(STAMP)  ## training samples/s from packed data: Lightning vs a bare loop, EZ-VSL/LVS/SLAVC/SSL-Align (GPU: paper size, bf16)
	$(BIN)/python -m sslbench.bench.train

bench-methods: $(STAMP)  ## train every method on synthetic scenes with one CPU budget; one table (about 40 min on 2 cores)
	$(BIN)/python -m sslbench.bench.methods

lock: $(STAMP)  ## rewrite requirements/lock.txt from the current .venv
	(echo "# Exact versions make test / make demo install. Regenerate with make lock."; \
	 $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ') > requirements/lock.txt

clean:  ## remove the virtualenv and run outputs
	rm -rf $(VENV) runs
