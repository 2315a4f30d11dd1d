# hpo_cli — `make help` lists the targets. Every target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.DEFAULT_GOAL := help
.PHONY: help install run test test-slow test-gpu wheel-check bench bench-blackbox bench-cmaes-gp bench-bbob bench-bbob-quick bench-tpe bench-peers bench-nn bench-cleaning bench-bakhteev bench-parallel bench-scale bench-asha bench-loggers bench-quick lint format clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,ray,slurm,launchers,tracking,optuna]'
	@touch $@

install: $(STAMP) ## Create .venv and install hpo_cli with its dev tools, the ray/slurm executors, Hydra's launchers, the loggers and Optuna's export/plots (torch pinned by constraints.txt)

run: $(STAMP) ## Run `hpo run` on the embedded defaults (sobol on the polynomial task)
	$(BIN)/hpo run

# Tests run in parallel, one pytest worker per core (pytest-xdist), each worker and every process
# it starts on one thread: two cores are not oversubscribed by torch's and BLAS's own threads.
PYTEST := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n auto -q -rs

test: $(STAMP) ## Run the test suite (slow tests excluded; gpu tests skip without CUDA)
	$(PYTEST) -m "not slow"

test-slow: $(STAMP) ## Run only the slow tests
	$(PYTEST) -m slow

test-gpu: $(STAMP) ## Run the CUDA tests (where a GPU is present)
	$(BIN)/python -m pytest -m gpu -q -rs

WHEEL_DIR := build/wheel-check

wheel-check: $(STAMP) ## Build the wheel, install it into a fresh venv, run a gradient strategy, gradcheck and the Hydra sweeper plugin from it
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w $(WHEEL_DIR) .
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/python -m pip install --quiet -c constraints.txt $(WHEEL_DIR)/hpo_cli-*.whl
	cd $(WHEEL_DIR) && HPO_RUNS_DIR=runs CI=true venv/bin/hpo run strategy=hoag task=polynomial space=polynomial_per_coef n_trials=5
	cd $(WHEEL_DIR) && venv/bin/hpo gradcheck task=polynomial space=polynomial_per_coef method=reverse
	cd $(WHEEL_DIR) && venv/bin/python $(CURDIR)/tests/hydra_app/app.py --info plugins | grep -q HpoSweeper
	cd $(WHEEL_DIR) && venv/bin/python $(CURDIR)/tests/hydra_app/app.py -m hydra/sweeper=hpo hydra.sweeper.n_trials=4 \
	  'x1=interval(-5, 10)' 'x2=interval(0, 15)' hydra.sweep.dir=sweep && test $$(wc -l < sweep/trials.jsonl) -eq 4

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,ray,slurm,launchers,tracking,optuna,bench]'
	@touch $@

bench: $(STAMP) bench-blackbox bench-peers bench-nn bench-cleaning bench-bakhteev bench-parallel bench-asha ## Benchmarks: HOAG vs random, trade-offs, Hyperband vs random, black-box vs Optuna, hypergradients vs higher/torchopt, MLP (benchmarks/results/)
	$(BIN)/python benchmarks/hoag_vs_random.py
	$(BIN)/python benchmarks/tradeoffs.py
	$(BIN)/python benchmarks/hyperband_vs_random.py
	$(BIN)/python benchmarks/gp_bo_scaling.py

bench-nn: $(STAMP) ## Gradient HPO on the MNIST MLP: hypergradient cost, gradient methods vs random search, per-weight precisions over 5 seeds (hours: its parts with --quality-only, --strategies hoag --baselines random took 52 min on 2 shared cores, --strategies rmad,drmad,greedy --jobs 2 25 min; seeds run two at a time)
	$(BIN)/python benchmarks/nn_gradient_hpo.py --jobs 2

bench-cleaning: $(STAMP) ## Data hyper-cleaning (Franceschi 2017) on the bundled MNIST subset: Oracle, Baseline, learned weights over 5 seeds (3,460 CPU-s, about an hour on 2 shared cores)
	$(BIN)/python benchmarks/hypercleaning_franceschi2017.py --seeds 5

bench-bakhteev: $(STAMP) ## Bakhteev & Strijov (2020) polynomial table: cv/elbo × random/greedy/drmad/hoag over 5 seeds vs the paper (~8 min)
	$(BIN)/python benchmarks/bakhteev2020_polynomial.py --seeds 5

bench-parallel: $(BENCH_STAMP) ## Trials in parallel: process and Ray executors vs serial, throughput and per-trial overhead, Ray Tune beside them (~3 min)
	$(BIN)/python benchmarks/parallel_executors.py

bench-scale: $(STAMP) ## A hundred workers and more: real process workers at 8/32/64/128 (as memory allows: RSS, start, stop, utilization) and 100–10,000 simulated ones per strategy (~20 min)
	nice -n 10 $(BIN)/python benchmarks/scale.py --real 8,32,64,128 --mnist

bench-asha: $(STAMP) ## ASHA vs Hyperband vs random search on MNIST at equal wall-clock, 2 workers, 3 seeds (~9 min)
	$(BIN)/python benchmarks/asha_mnist.py

bench-loggers: $(STAMP) ## What each logger (csv, tensorboard, mlflow) costs per trial, as a ratio to logger=none (~3 min)
	$(BIN)/python benchmarks/logger_overhead.py

bench-peers: $(BENCH_STAMP) ## hpo's reverse and implicit hypergradients vs higher's and torchopt's, one process (~1 min)
	$(BIN)/python benchmarks/hypergrad_vs_peers.py
	$(BIN)/python benchmarks/hoag_overhead.py

bench-cmaes-gp: $(BENCH_STAMP) ## Our cmaes and gp_bo vs Optuna's CmaEsSampler and GPSampler: 14 functions, 7 seeds, p-values (~40 min on 2 busy cores)
	-$(BIN)/python -m pip install --quiet -c constraints.txt coco-experiment
	$(BIN)/python benchmarks/cmaes_gp_vs_optuna.py --seeds 7 --bbob

BBOB_STAMP := $(VENV)/.installed-bbob

$(BBOB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,ray,slurm,launchers,tracking,optuna,bench,bbob]'
	@touch $@

BBOB_QUICK_STAMP := $(VENV)/.installed-bbob-quick

$(BBOB_QUICK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bbob-quick]'
	@touch $@

bench-bbob-quick: $(BBOB_QUICK_STAMP) ## BBOB --quick against its baseline (what CI runs, ~15 s): fails naming the cell where one of our strategies' mean rank worsened by more than 1
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bbob.py --quick --check benchmarks/baseline/bbob_quick.json

bench-bbob: $(BBOB_STAMP) ## COCO's BBOB suite (2, 5, 10-D; 10·d and 50·d evaluations): our strategies vs Optuna, BoTorch, SMAC3, hyperopt, skopt (at least 40 h on one core in full; BBOB_ARGS='--quick' ~15 s, or --dims/--functions/--methods/--resume)
	$(BIN)/python benchmarks/bbob.py $(BBOB_ARGS)

bench-tpe: $(BENCH_STAMP) ## Our TPE vs Optuna's TPESampler on conditional, mixed and 12-D spaces, 15 seeds, p-values (~10 min)
	$(BIN)/python benchmarks/tpe_conditional.py --timing

bench-blackbox: $(BENCH_STAMP) ## Our random/sobol/gp_bo/evolution/cmaes vs Optuna's samplers on branin, hartmann6 (~2 min)
	$(BIN)/python benchmarks/blackbox_vs_optuna.py


bench-quick: $(STAMP) ## The quick benchmark suite against its baseline (what CI runs)
	$(BIN)/hpo bench quick --check

lint: $(STAMP) ## ruff (lint + format check) and mypy


	$(BIN)/ruff check hpo_cli hydra_plugins tests benchmarks examples
	$(BIN)/ruff format --check hpo_cli hydra_plugins tests benchmarks examples
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff's fixes and formatting
	-$(BIN)/ruff check --fix hpo_cli hydra_plugins tests benchmarks examples
	$(BIN)/ruff format hpo_cli hydra_plugins tests benchmarks examples

clean: ## Remove the virtual environment, caches and run outputs
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache *.egg-info runs/20* runs/multirun outputs multirun
