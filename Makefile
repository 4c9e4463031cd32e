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
CORE_TESTS := tests/test_core_install.py tests/test_scoring.py tests/test_cli_score.py tests/test_audio.py tests/test_nmr.py

.PHONY: demo test bench clean compact-model

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

# The shipped model's whole recipe (src/deepaq/weights/deepaq-compact/MODEL_CARD.md): the corpus,
# three dataset folders, the 2f teacher's labels, then training, mapping and NMR head. Every step resumes where it
# stopped; `make -j4 compact-model` runs independent steps side by side (about 1.5 h here,
# most of it the three builds and the labels).
CORPUS     := work/corpus-v3
BUILD_DATA := $(VENV)/bin/deepaq build-data $(CORPUS) --no-visqol --clip-seconds 3 --max-clips 1

# corpus.csv and teacher-peaq.csv grow as they go, so stamps say when a step is complete
$(CORPUS)/.built: | $(STAMP) $(SYSDEPS)
	$(VENV)/bin/deepaq build-corpus $(CORPUS) --sonic-pi 160 --drums 120 --music 220 --speech 220 --mixture 120 --seconds 8
	touch $@

work/dataset-v3/manifest.parquet: $(CORPUS)/.built
	$(BUILD_DATA) -o work/dataset-v3 --codecs opus,mp3,aac --bitrates 8,16,32,64 --per-clip 10 --workers 2 \
	  --degradations opus,mp3,aac,vorbis,eac3,wmav2,sbc,aptx,g722,g726,amrnb,adpcm,opus_voip,tandem,opus_loss,clipping,echo,dropouts,bandlimit,tilt,eq,noise_white,noise_pink,noise_babble

work/dataset-v3b/manifest.parquet: $(CORPUS)/.built
	$(BUILD_DATA) -o work/dataset-v3b --codecs '' --degradations reverb,separation,world,griffinlim --per-clip 4 --workers 1

work/dataset-v3c/manifest.parquet: $(CORPUS)/.built
	$(BUILD_DATA) -o work/dataset-v3c --codecs '' --ladders lowpass,noise_white,noise_pink,clipping,mp3,aac,eac3,vorbis --ladder-steps 5 --workers 2

work/%/.labelled-peaq: work/%/manifest.parquet
	$(VENV)/bin/deepaq label work/$* --teacher peaq --workers 2
	touch $@

# then the quality mapping by quantile matching onto the teacher (a few validation items that
# cannot be aligned, e.g. Griffin-Lim speech, are left out and make calibrate exit 1), and the
# NMR head and bank
BEST := work/runs/deepaq-compact-0.6/checkpoints/best
TWOF_WEIGHT := 0.8
FUSION_TEMPERATURE := 10
FUSION_CEILING := 25
compact-model: work/dataset-v3/.labelled-peaq work/dataset-v3b/.labelled-peaq work/dataset-v3c/manifest.parquet
	OMP_NUM_THREADS=1 $(VENV)/bin/deepaq train --config configs/deepaq-compact.toml
	$(VENV)/bin/deepaq calibrate --dataset work/dataset-v3,work/dataset-v3b --kind quantile --model $(BEST) \
	  -o $(BEST)/mapping-quantile.json || test -s $(BEST)/mapping-quantile.json
	mv $(BEST)/mapping-quantile.json $(BEST)/mapping.json
	$(VENV)/bin/deepaq fit-nmr $(BEST) --data work/dataset-v3,work/dataset-v3b
	# the full-reference quality mixes in the 2f-model; form, weight, temperature and ceiling were chosen by leave one test out (model card)
	printf '{\n  "twof_weight": $(TWOF_WEIGHT),\n  "temperature": $(FUSION_TEMPERATURE),\n  "ceiling": $(FUSION_CEILING)\n}\n' > $(BEST)/fusion.json

clean:
	rm -rf $(VENV) $(CORE) build src/*.egg-info .pytest_cache
