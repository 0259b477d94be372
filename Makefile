# Two commands do all the set-up on a fresh machine:
#   make demo   installs streamer and runs the demo on the offline default models
#   make test   installs streamer with its test tools and runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench clean

$(BIN)/streamer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/streamer

demo: install
	$(BIN)/streamer demo --out out/demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check streamer engines tests benchmarks

bench: install
	$(BIN)/python benchmarks/demo_fps.py

clean:
	rm -rf out .pytest_cache
