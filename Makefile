# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
SPEC ?= search_spaces/demo.yaml
NAME ?= $(basename $(notdir $(SPEC)))

# The exact package set CI tested (pip freeze of a fresh venv; `make lock` refreshes it). It is
# used when this Python's minor version is the one it was resolved for; otherwise the install
# takes the newest versions pyproject.toml's bounds allow, and says so.
LOCK ?= constraints.txt
LOCK_PY := $(shell sed -n 's/^\# python: //p' $(LOCK) 2>/dev/null)
PY_NOW := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PIP_LOCK := $(if $(and $(LOCK_PY),$(filter $(LOCK_PY),$(PY_NOW))),-c $(LOCK))
# One stamp per interpreter: an install into the system Python says nothing about a venv's.
STAMP := .installed-$(shell $(PYTHON) -c 'import hashlib, sys; print(hashlib.sha1(sys.prefix.encode()).hexdigest()[:10])' 2>/dev/null)

.PHONY: install system-deps demo test lint bench lock clean

# Python packages (torch comes from the machine's pip cache when capped; see docs/install.md).
$(STAMP): pyproject.toml $(wildcard $(LOCK))
	@$(if $(PIP_LOCK),,echo "note: $(LOCK) is for Python $(LOCK_PY), this is $(PY_NOW): installing the newest versions pyproject.toml allows" >&2)
	$(PIP) install -q $(PIP_LOCK) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian packages the integration tests use (SLURM + munge, Chromium); skipped when present.
system-deps:
	bash scripts/setup_system.sh

# The main job: the sweep, then its analysis. A second run resumes (finished trials are kept).
demo: $(STAMP)
	$(PYTHON) -m sparsity_tune.launch $(SPEC) $(if $(wildcard results/$(NAME)/spec.yaml),--resume)
	$(PYTHON) -m analysis results/$(NAME)

# Unit tests are CPU-bound and independent: two pytest-xdist workers (one torch thread each, see
# tests/conftest.py). The integration tests run one at a time: their signals must land while trials
# run, and each sweep already uses both cores.
test: $(STAMP) system-deps
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest -q -n 2 --durations=15 tests/unit
	$(PYTHON) -m pytest -q --durations=25 tests/integration

lint: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

bench: $(STAMP)
	$(PYTHON) benchmarks/bench_trainer.py
	$(PYTHON) benchmarks/bench_sweep_efficiency.py
	$(PYTHON) benchmarks/bench_analysis.py
	$(PYTHON) benchmarks/bench_deploy.py

# Move to new releases: resolve the newest versions pyproject.toml allows in a fresh venv, write
# them to $(LOCK), then run the tests on exactly that set. Review and commit the diff of $(LOCK).
LOCK_VENV ?= .lock-venv
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q -U pip
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[dev]"
	{ echo "# The package set CI tested. Written by \`make lock\` (pip freeze of a fresh venv); do not edit."; \
	  echo "# \`make demo\` and \`make test\` install with it (pip -c) on this Python minor version."; \
	  echo "# python: $$($(LOCK_VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
	  echo "# platform: $$(uname -s -m)"; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | LC_ALL=C sort -f; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	$(MAKE) test PYTHON=$(LOCK_VENV)/bin/python

clean:
	rm -rf .installed-* results .pytest_cache
