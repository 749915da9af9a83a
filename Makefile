# The README's commands. Every target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION := 2.13.0

.PHONY: venv system-deps test test-float-paths test-tflite lint demo demo-gpu bench clean

# Debian packages: espeak-ng synthesises the embedded corpus; flite and Festival (with its
# kal, ked and slt voices) add two more engines' voices, and fortunes-min offline sentences,
# where available (all optional).
FESTIVAL_VOICES := /usr/share/festival/voices
system-deps:
	@command -v espeak-ng >/dev/null || { \
		SUDO=$$(command -v sudo || true); $$SUDO apt-get update -q && \
		$$SUDO apt-get install -y -q --no-install-recommends espeak-ng; }
	@command -v flite >/dev/null || { SUDO=$$(command -v sudo || true); \
		$$SUDO apt-get install -y -q --no-install-recommends flite || true; }
	@test -d $(FESTIVAL_VOICES)/english/kal_diphone -a -d $(FESTIVAL_VOICES)/english/ked_diphone \
		-a -d $(FESTIVAL_VOICES)/us/cmu_us_slt_arctic_hts || { SUDO=$$(command -v sudo || true); \
		$$SUDO apt-get install -y -q --no-install-recommends \
		festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts || true; }
	@test -e /usr/share/games/fortunes/fortunes || { SUDO=$$(command -v sudo || true); \
		$$SUDO apt-get install -y -q --no-install-recommends fortunes-min || true; }

# torch is pinned and installed first so that no later requirement pulls a CUDA build.
# The `lm` extra (kenlm, built from source in about a minute) lets the KenLM tests run too.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e ".[all,dev,lm]"
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check src tests tools
	$(VENV)/bin/ruff format --check src tests tools

test: lint system-deps
	$(PY) -m pytest -q

# The float-sensitive tests again under other kernels: CPUs of one kind differ (AVX2 or
# AVX-512, Intel or AMD), and MKL and torch pick their code paths by CPU. COMPATIBLE is MKL's
# generic path, AVX2 the one an AVX-512 machine would not take by default; torch's scalar
# kernels (ATEN_CPU_CAPABILITY=default) are a second path even where MKL ignores MKL_CBWR.
FLOAT_TESTS := tests/nemo tests/nn tests/test_features.py tests/test_bf16.py \
	tests/test_transcribe.py tests/analysis/test_redundancy.py tests/sequences/test_model.py
test-float-paths: venv
	MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q $(FLOAT_TESTS)
	MKL_CBWR=AVX2 $(PY) -m pytest -q $(FLOAT_TESTS)

# TFLite export of sequence models, in its own venv: litert-torch needs numpy 2, which the
# speech extra still caps (so `.[all]` and `.[tflite]` cannot share one environment yet).
# Only the TFLite cases: the ONNX ones run in `make test` already.
TFLITE_VENV := .venv-tflite
$(TFLITE_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/python -m pip install -q --upgrade pip
	$(TFLITE_VENV)/bin/python -m pip install -q torch==$(TORCH_VERSION)
	$(TFLITE_VENV)/bin/python -m pip install -q -e ".[sequences,export,tflite]" pytest
	touch $@

test-tflite: $(TFLITE_VENV)/.installed
	$(TFLITE_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/sequences/test_export.py -k tflite

# Conformer versus Squeezeformer on the embedded corpus (about 25 minutes on 2 CPU cores);
# results in results/demo. Extra arguments: make demo DEMO_ARGS="--steps 300 --out results/quick"
DEMO_ARGS ?=
demo: venv system-deps
	$(PY) -m squeezer demo $(DEMO_ARGS)

# The same comparison at the paper's XS / S size on the `large` corpus, bf16 on one CUDA device.
demo-gpu: venv system-deps
	$(PY) -m squeezer demo --gpu --size large --corpus data/synth-large --out results/demo-gpu \
		--recipes demo/gpu-conformer demo/gpu-squeezeformer $(DEMO_ARGS)

# Encoder throughput against the PyPI peer (speech presets; then the Ribonanza sequence
# shape with and without an attention bias, docs/sequences.md); then deployment (PyTorch
# against ONNX Runtime fp32 and int8): Squeezeformer-XS, and the demo's trained model on its
# test split when `make demo` has written it (end-to-end real-time factor and CER, sherpa-onnx
# included).
DEMO_MODEL := results/demo/runs/squeezeformer/model
DEMO_TEST := data/synth-demo/test.jsonl.gz
bench: venv
	$(PY) -m squeezer bench --rounds 5 --out docs/benchmarks.md
	$(PY) -m squeezer.analysis.bench_sequence --rounds 5 --out docs/sequences.md
	$(PY) -m squeezer bench-deploy squeezeformer-xs \
		$$(test -f $(DEMO_MODEL)/config.yaml && test -f $(DEMO_TEST) && echo $(DEMO_MODEL)) \
		--manifest $(DEMO_TEST) --rounds 5 --out docs/benchmarks.md
	if test -f $(DEMO_MODEL)/config.yaml && test -f $(DEMO_TEST); then \
		$(PY) -m squeezer bench-transcribe $(DEMO_MODEL) --manifest $(DEMO_TEST) --rounds 3 \
			--out docs/benchmarks.md; \
	else echo "bench-transcribe: no demo model ($(DEMO_MODEL)); run make demo first"; fi

clean:
	rm -rf $(VENV) $(TFLITE_VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

# NeMo import (issue #8). NeMo 2.7.3 lives in a throwaway venv outside the repository and is
# never a dependency of squeezer: it only makes the committed test fixtures and times NeMo's
# own encoder for docs/benchmarks.md.
NEMO_VENV ?= /tmp/nemo-venv
.PHONY: nemo-venv nemo-fixtures

nemo-venv:
	tools/nemo_venv.sh $(NEMO_VENV)

nemo-fixtures: nemo-venv
	$(NEMO_VENV)/bin/python tools/make_nemo_fixtures.py --out tests/fixtures/nemo

# squeezer versus NeMo's own encoder on one imported Squeezeformer-XS (docs/benchmarks.md).
.PHONY: bench-nemo
bench-nemo: venv nemo-venv
	$(PY) tools/bench_nemo.py --nemo-python $(NEMO_VENV)/bin/python --rounds 5 \
		--out docs/benchmarks.md
