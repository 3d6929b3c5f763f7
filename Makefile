# featurestore: `make demo` runs the example end to end, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# setuptools notes every editable install with a UserWarning ("Editable installation ... be
# careful with folders named like the package"); it says nothing about this project.
EDITABLE := PYTHONWARNINGS="ignore:Editable installation:UserWarning" $(BIN)/pip install -q -e

.PHONY: demo test lint bench bench-quick dist docs install install-test feast-client redis-server clean

$(VENV)/.base: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(EDITABLE) '.[example]'
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(EDITABLE) '.[example,test,spark]'
	$(BIN)/pip download -q --no-deps -d $(VENV)/compose-spec docker-compose==1.29.2  # ships the Compose JSON schema
	touch $@

install: $(VENV)/.base
install-test: $(VENV)/.test

# Feast's own SDK, in a virtualenv of its own (never in the project's), drives the server as a Feast
# client in tests/server/test_feast_sdk.py; the version the benchmarks compare against.
FEAST_VENV := .venv-feast
FEAST_VERSION := 0.67.0
$(FEAST_VENV)/.installed-$(FEAST_VERSION):
	rm -rf $(FEAST_VENV)
	$(PYTHON) -m venv $(FEAST_VENV)
	$(FEAST_VENV)/bin/pip install -q 'feast==$(FEAST_VERSION)'
	touch $@
feast-client: $(FEAST_VENV)/.installed-$(FEAST_VERSION)

# The tests start their own redis-server processes (one with TLS, whose certificate openssl
# makes, and a 6-node cluster that redis-cli joins), drive Debian's chromium for the UI and run the
# Spark engine on a Java runtime (Spark 4 needs Java 17+); install what is missing.
redis-server:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null 2>&1 || missing="$$missing redis-tools"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install
	$(BIN)/python -m definitions._demo

lint: install-test
	$(BIN)/ruff check featurestore tests benchmarks definitions
	$(BIN)/ruff format --check featurestore tests benchmarks definitions
	$(BIN)/mypy featurestore

test: install-test feast-client redis-server lint
	FEAST_PYTHON=$(CURDIR)/$(FEAST_VENV)/bin/python $(BIN)/pytest -p no:cacheprovider

# An sdist and a wheel in dist/, built by the standard builder in an isolated environment.
dist: install-test
	rm -rf dist build
	$(BIN)/python -m build --outdir dist .
# The documentation site (MkDocs Material) from docs/, into site/; --strict fails on a broken link.
docs: install
	$(BIN)/pip install -q -e '.[docs]'
	$(BIN)/mkdocs build --strict

bench: install-test redis-server
	$(BIN)/python -m benchmarks

# A tenth of W1 against the floors only (no Feast), in about 2 minutes: run it before changing a hot path.
bench-quick: install-test redis-server
	$(BIN)/python -m benchmarks --quick --no-feast --reps 1

clean:
	rm -rf dist build featurestore.egg-info
	rm -rf data/offline data/registry.json* data/online.db* data/training data/tmp benchmarks/.work
