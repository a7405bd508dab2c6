# `make demo` and `make test` set everything up on a fresh machine (Python 3.10+ with network access
# to PyPI and Debian), then run. Both are quick when the set-up is already there.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FMNIST_FILE := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup data demo test test-slow mutation clean

setup: $(STAMP) data

# Re-installs only when the package metadata changes; the install is editable, so code edits need none.
$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[cpu,test]'
	@touch $@

# Fashion-MNIST comes from Debian's dataset-fashion-mnist unless KERASRV_FASHION_MNIST_DIR points elsewhere.
data:
	@if [ -z "$$KERASRV_FASHION_MNIST_DIR" ] && [ ! -f $(FMNIST_FILE) ]; then \
	  echo "installing Debian's dataset-fashion-mnist"; \
	  $(SUDO) apt-get install -y -q dataset-fashion-mnist \
	    || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }; \
	fi

demo: setup
	$(BIN)/python -m kerasrv.demo

# Most tests spend their time on one core (tracing, converting, Python), so pytest-xdist workers
# share out the two cores: with two, the cores were busy 1.7 of 2 (user+sys over wall), and a
# third took the clean-clone run from 508 s of tests to 453 s on an Intel Xeon (2026-12-07).
# Each test file runs on one worker, so a module fixture (every entry exported once) is made
# once; files go out longest first (the order is tests/conftest.py's, which xdist's reordering
# by test count would undo). TEST_WORKERS=0 runs in this process (pdb).
TEST_WORKERS ?= 3
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: setup
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -m slow $(XDIST) $(PYTEST_ARGS)

# Mutants of the code that decides verdicts and metrics ([mutmut] in setup.cfg), each run
# against the unit tests of those rules; `$(BIN)/mutmut results` lists the survivors.
mutation: setup
	$(BIN)/mutmut run --max-children $(or $(TEST_WORKERS),2)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache mutants
