# The one command surface of upsell. Every target creates and uses .venv itself, so a fresh machine
# with only python3 works: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-workspace

.PHONY: demo serve test lint format bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo company is simulated and imported on first use; `make clean` removes it.
demo: $(STAMP)
	$(BIN)/upsell demo -w $(DEMO)

# The service on the demo company (docs/service.md), on http://127.0.0.1:8000 until Ctrl-C, with
# the demo page of the in-app widget (docs/in-app.md). Built with 8 weeks of offers, as `make demo`.
serve: $(STAMP)
	[ -e $(DEMO)/upsell.db ] || $(BIN)/upsell init $(DEMO) --demo --weeks 8
	@echo "The demo page: http://127.0.0.1:8000/demo"
	$(BIN)/upsell serve -w $(DEMO)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/run.py

docs: $(STAMP)
	$(BIN)/python -m upsell.cli.docs > docs/cli.md

clean:
	rm -rf $(VENV) $(DEMO) .mypy_cache .ruff_cache .pytest_cache
