# The entry points for people and CI. The two that matter:
#   make demo   set up and watch tailhook turn sample log lines into alerts
#   make test   set up everything (system packages too, as root) and run every test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install install-dev system-deps demo test lint format bench dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# tailhook itself; with the journald extra when libsystemd's headers are there.
install: $(BIN)/python
	@if pkg-config --exists libsystemd 2>/dev/null; then \
		$(BIN)/pip install --quiet -e '.[journald,fast]'; \
	else \
		echo "note: libsystemd-dev is not installed, so the journald extra is left out (apt-get install libsystemd-dev pkg-config)"; \
		$(BIN)/pip install --quiet -e '.[fast]'; \
	fi

install-dev: system-deps $(BIN)/python
	$(BIN)/pip install --quiet -e '.[journald,fast,fleet,dev]'

# Debian packages the tests use for real: logrotate, systemd-journal-remote, libsystemd headers, redis-server.
system-deps:
	scripts/system-deps.sh

demo: install
	$(BIN)/python scripts/demo.py

test: install-dev
	$(BIN)/python -m pytest

# The wheel and the sdist, in dist/.
dist: install-dev
	$(BIN)/python -m build --outdir dist

lint: install-dev
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

format: $(BIN)/python
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

bench: install-dev
	scripts/system-deps.sh bench
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) demo build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
