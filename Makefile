# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MANIFEST ?= examples/quickstart.yaml

SERVER_TARGETS := run servers bench
$(SERVER_TARGETS): export PREFECT_API_URL ?= http://127.0.0.1:4200/api
$(SERVER_TARGETS): export MLFLOW_TRACKING_URI ?= http://127.0.0.1:5000

.PHONY: run test stop servers lint format bench clean browser

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,privacy,tabular-bench,ray,servers,medical]'
	touch $(STAMP)

run: $(STAMP) servers
	$(BIN)/synthset run $(MANIFEST)

servers: $(STAMP)
	$(BIN)/synthset servers start

stop:
	@test -x $(BIN)/synthset && $(BIN)/synthset servers stop || echo "nothing to stop"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The privacy report is checked in a real headless browser: Debian's chromium, installed
# here when apt-get can (root or passwordless sudo); otherwise that one test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { APT="apt-get"; [ "$$(id -u)" = 0 ] || APT="sudo -n apt-get"; \
	    ($$APT update -qq && DEBIAN_FRONTEND=noninteractive $$APT install -y -qq chromium) \
	      >/dev/null 2>&1 || echo "chromium not installed: the report's browser test will be skipped"; }

lint: $(STAMP)
	$(BIN)/ruff check synthset tests bench
	$(BIN)/ruff format --check synthset tests bench

format: $(STAMP)
	$(BIN)/ruff check --fix synthset tests bench
	$(BIN)/ruff format synthset tests bench

bench: $(STAMP) servers
	$(BIN)/python bench/overhead.py

clean: stop
	rm -rf .synthset datasets
