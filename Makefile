# Stage Bridge: `make run` to play, `make test` to check everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config/default.toml
RUNS ?= 5
DEB_PACKAGES := jackd2 liblo-tools chromium iproute2 redis-server nginx
# Commands each Debian package provides, to tell whether it is missing.
DEB_COMMANDS := jackd oscsend oscdump chromium ip unshare redis-server nginx
# nginx lives in /usr/sbin, which a plain user's PATH may lack.
export PATH := $(PATH):/usr/sbin:/sbin

.PHONY: run test lint unit deps system-deps bench bench-monitor cluster screenshots icons clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m bridge --config $(CONFIG)

system-deps:
	@missing=""; \
	for c in $(DEB_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	  else \
	    echo "missing system commands:$$missing (apt-get install $(DEB_PACKAGES))"; \
	    if [ "$${CI:-}" = true ]; then exit 1; fi; \
	  fi; \
	fi

deps: system-deps $(VENV)/.test-installed

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check bridge tests bench cluster docs
	$(VENV)/bin/ruff format --check bridge tests bench cluster docs
	$(VENV)/bin/mypy

test: deps lint
	$(PY) -m pytest -q

# The fast lane: in-process tests only (hub, takeover, crossing, codecs, config, the Socket.IO protocol), seconds.
unit: $(VENV)/.test-installed
	$(PY) -m pytest -q -m unit

bench: deps
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench
	$(PY) -m bench.monitor_bench 3

# What the message monitor costs: fan-out p99 at 100 clients before (hooks off) and after, and with a drawer open.
bench-monitor: deps
	$(PY) -m bench.monitor_bench $(RUNS)

# Redis, nginx on 127.0.0.1:8080 and three bridge processes, until Ctrl-C (see the README).
cluster: $(VENV)/.installed
	@$(MAKE) --no-print-directory system-deps DEB_PACKAGES="redis-server nginx" DEB_COMMANDS="redis-server nginx"
	$(PY) -m pip install --quiet -e '.[cluster]'
	$(PY) -m cluster.run $(CLUSTER_ARGS)

# The example surfaces at phone and tablet size, into docs/images/ (Chromium, stand-in desks on loopback).
screenshots: deps
	$(PY) -m docs.shots

# The page's PNG icons (static/icons/), drawn from the shapes of icon.svg; committed.
icons: $(VENV)/.installed
	$(PY) -m docs.icons

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
