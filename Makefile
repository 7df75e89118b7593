# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
SPEC ?= search_spaces/demo.yaml
NAME ?= $(basename $(notdir $(SPEC)))

.PHONY: install system-deps demo test lint bench clean

# Python packages (torch comes from the machine's pip cache when capped; see README).
.installed: pyproject.toml
	$(PIP) install -q -e ".[dev]"
	touch .installed

install: .installed

# Debian packages the integration tests use (SLURM + munge, Chromium); skipped when present.
system-deps:
	bash scripts/setup_system.sh

# The main job: the sweep, then its analysis. A second run resumes (finished trials are kept).
demo: .installed
	$(PYTHON) -m sparsity_tune.launch $(SPEC) $(if $(wildcard results/$(NAME)/spec.yaml),--resume)
	$(PYTHON) -m analysis results/$(NAME)

test: .installed system-deps
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest -q --durations=25 tests

lint: .installed
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

bench: .installed
	$(PYTHON) benchmarks/bench_trainer.py
	$(PYTHON) benchmarks/bench_sweep_efficiency.py
	$(PYTHON) benchmarks/bench_analysis.py
	$(PYTHON) benchmarks/bench_deploy.py

clean:
	rm -rf .installed results .pytest_cache
