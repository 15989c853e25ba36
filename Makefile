# coldtrail — two commands: `make demo` and `make test`. `make bench` prints the figures.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DURATION ?= 0

.PHONY: test demo bench lint typecheck unit integration system-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,test,bench]'
	@touch $(STAMP)

# System packages the tests run for real: mosquitto (MQTT broker), chromium (browser
# tests), openssl (the bench's physical limit), postgresql (initdb + pg_ctl: the tests'
# own throwaway clusters, ADR 0312). Installed with apt-get when we are root; otherwise a
# sentence that says what to install. Debian keeps initdb off PATH, in
# /usr/lib/postgresql/<version>/bin, so that is looked at too. The package may create and
# start a cluster of its own on port 5432: the tests never use it, and nothing here stops it.
SYSTEM_BINS := mosquitto:mosquitto chromium:chromium openssl:openssl initdb:postgresql
system-deps:
	@missing=""; \
	for pair in $(SYSTEM_BINS); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ] \
	    || compgen -G "/usr/lib/postgresql/*/bin/$$bin" >/dev/null || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing — install them with: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check proofs gateway anchor firmware-sim tests bench

# proofs is checked --strict; firmware-sim's folder name is not importable, so mypy
# sees it through a symlink named like the package.
typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict proofs
	$(VENV)/bin/mypy gateway anchor
	@mkdir -p build/typecheck && ln -sfn ../../firmware-sim build/typecheck/firmware_sim
	MYPYPATH=build/typecheck $(VENV)/bin/mypy -p firmware_sim

test: $(STAMP) system-deps lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP) system-deps
	$(PY) -m bench

demo: $(STAMP) system-deps
	$(VENV)/bin/coldtrail-sim demo --duration $(DURATION) --workdir var/demo

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
