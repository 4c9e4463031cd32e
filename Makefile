# Set-up and the two everyday commands. Everything lands in .venv; nothing global.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: a bare `torch` requirement would pull a CUDA build
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[train,baselines,dev]"
	# HAAQI: pyclarity's own requirements pull 100+ packages and a CUDA torch; its HAAQI
	# code needs only numpy, scipy and numba, so it is installed without them.
	$(PY) -m pip install -q --no-deps "pyclarity>=0.9,<1"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deepaq demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
