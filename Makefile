# `make train model=fcn8s trainer.max_epochs=3`: every NAME=VALUE after the target is a Hydra
# override (make collects command-line assignments in MAKEOVERRIDES).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
OVERRIDES = $(filter-out VENV=%,$(MAKEOVERRIDES))
PYTEST_ARGS ?=
# `make bench BENCH_ARGS="--only overhead pipeline"`; parts: patch_classifier overhead pipeline peer memory growth onnx architectures
BENCH_ARGS ?=

.PHONY: help install train eval predict export sweep bench test test-slow test-all clean-logs

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml requirements/constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -c requirements/constraints.txt -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED) ## create the virtualenv and install semseg with pinned dependencies

train: $(INSTALLED) ## train the default experiment (append Hydra overrides)
	$(PYTHON) -m semseg.train $(OVERRIDES)

eval: $(INSTALLED) ## evaluate a checkpoint: make eval ckpt_path=...
	$(PYTHON) -m semseg.eval $(OVERRIDES)

sweep: $(INSTALLED) ## a small grid multirun on the default data, with a leaderboard
	$(PYTHON) -m semseg.train -m model=fcn8s,unet model.optimizer.lr=0.003,0.001 trainer.max_epochs=3 $(OVERRIDES)

predict: $(INSTALLED) ## segment images: make predict ckpt_path=<.ckpt|.onnx> input=<image|folder|glob> output=<folder>
	$(PYTHON) -m semseg.predict $(OVERRIDES)

export: $(INSTALLED) ## export a checkpoint to ONNX: make export ckpt_path=... output=model.onnx
	$(PYTHON) -m semseg.export $(OVERRIDES)

bench: $(INSTALLED) ## the benchmark suite, report in bench/results/ (about 15 minutes on 2 CPU cores)
	$(PYTHON) -m semseg.bench $(BENCH_ARGS)

test: $(INSTALLED) ## the fast test suite (pytest exit 5, no tests collected, counts as success)
	$(PYTHON) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-slow: $(INSTALLED) ## the slow tests only (full default training run)
	$(PYTHON) -m pytest -m slow $(PYTEST_ARGS)

test-all: $(INSTALLED) ## every test
	$(PYTHON) -m pytest -m "" $(PYTEST_ARGS)

clean-logs: ## delete run outputs under logs/
	find logs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
