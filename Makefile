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

.PHONY: setup run test lint corpus-formats clean

setup: $(STAMP)

# constraints.txt pins the CPU build of torch (see README: install notes).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/cx-assistant ingest corpus
	$(BIN)/cx-assistant serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/ruff check assistant tests scripts
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check assistant tests scripts

corpus-formats: setup
	$(BIN)/python scripts/build_corpus_formats.py

clean:
	rm -rf .cx-data .pytest_cache
