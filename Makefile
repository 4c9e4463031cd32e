# Set-up and the two everyday commands. Everything lands in .venv; nothing global.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SYSDEPS := $(VENV)/.system-deps
# a second venv with the core install only (no torch, no extras): the scoring tests run there
# too, so a dependency the core install lacks is caught
CORE       := .venv-core
CORE_STAMP := $(CORE)/.installed
CORE_TESTS := tests/test_core_install.py tests/test_scoring.py tests/test_cli_score.py tests/test_audio.py

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: a bare `torch` requirement would pull a CUDA build
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[train,baselines,plots,dev,cluster]"
	# HAAQI: pyclarity's own requirements pull 100+ packages and a CUDA torch; its HAAQI
	# code needs only numpy, scipy and numba, so it is installed without them.
	$(PY) -m pip install -q --no-deps "pyclarity>=0.9,<1"
	touch $(STAMP)

$(CORE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(CORE)
	$(CORE)/bin/python -m pip install -q --upgrade pip
	$(CORE)/bin/python -m pip install -q -e ".[dev]"
	touch $(CORE_STAMP)

# fluidsynth and espeak-ng render the training corpus (deepaq build-corpus), chromium opens the
# HTML reports in the browser tests; as root they are installed from Debian, otherwise the tests
# that need them skip and say so.
$(SYSDEPS): | $(STAMP)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends fluidsynth espeak-ng chromium >/dev/null) \
	    || echo "warning: could not install fluidsynth/espeak-ng/chromium; corpus and browser tests will skip"; \
	else echo "note: install fluidsynth, espeak-ng and chromium for the corpus and browser tests (they skip without them)"; fi
	touch $(SYSDEPS)

demo: $(STAMP)
	$(VENV)/bin/deepaq demo

test: $(STAMP) $(SYSDEPS) $(CORE_STAMP)
	$(PY) -m pytest -q
	$(CORE)/bin/python -m pytest -q $(CORE_TESTS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(CORE) build src/*.egg-info .pytest_cache
