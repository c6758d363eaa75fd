# Two entry points, both self-contained on a fresh machine:
#   make bench   set up .venv and run the main job on the embedded sample images
#   make test    set up .venv, lint the tree (ruff, settings in pyproject.toml), run the test suite
#   make perf    the performance suite (benchmark/perf): writes benchmark/perf/RESULTS.md; exits 1 when a
#                figure misses its target
# TORCH_SPEC lets a user pick their own torch build, e.g. TORCH_SPEC="torch torchvision --index-url ...".

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zoo-installed
TORCH_SPEC ?=
PYTEST_ARGS ?= -n 2

.PHONY: bench test perf setup clean

$(STAMP): pyproject.toml plugins/example_plugin/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_SPEC),$(PY) -m pip install $(TORCH_SPEC))
	$(PY) -m pip install --quiet -e '.[test,ray,fast]'
	touch $(STAMP)

setup: $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/zoo bench

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

perf: $(STAMP)
	$(PY) benchmark/perf/run.py --write benchmark/perf/RESULTS.md

clean:
	rm -rf $(VENV) build *.egg-info
