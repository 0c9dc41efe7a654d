# Stage Bridge: `make run` to play, `make test` to check everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config/default.toml
RUNS ?= 5
DEB_PACKAGES := jackd2 liblo-tools chromium iproute2 redis-server nginx socat
# Commands each Debian package provides, to tell whether it is missing.
DEB_COMMANDS := jackd oscsend oscdump chromium ip unshare redis-server nginx socat
# nginx lives in /usr/sbin, which a plain user's PATH may lack.
export PATH := $(PATH):/usr/sbin:/sbin

.PHONY: run test lint unit deps system-deps bench bench-monitor soak fuzz cluster screenshots icons clean

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

# Two pytest-xdist workers, a test file each at a time (a file's JACK server and browser stay its own).
TEST_WORKERS ?= 2
test: deps lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The fast lane: in-process tests only (hub, takeover, crossing, codecs, config, the Socket.IO protocol), seconds.
unit: $(VENV)/.test-installed
	$(PY) -m pytest -q -m unit

# The load generator is node with the ws package (bench/package.json): Debian's nodejs and npm when missing.
bench/node_modules/.installed: bench/package.json bench/package-lock.json
	@$(MAKE) --no-print-directory system-deps DEB_PACKAGES="nodejs npm" DEB_COMMANDS="node npm"
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	touch $@

bench: deps bench/node_modules/.installed
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench $(BENCH_ARGS)
	$(PY) -m bench.monitor_bench 3
	$(PY) -m bench.jack_gil

# What the message monitor costs: fan-out p99 at 100 clients before (hooks off) and after, and with a drawer open.
bench-monitor: deps
	$(PY) -m bench.monitor_bench $(RUNS)

# A show's worth of traffic on one bridge, then what it left behind (bench/soak.py); not part of `make test`.
MINUTES ?= 10
soak: deps
	$(PY) -m bench.soak --minutes $(MINUTES)

# Every fuzzer at scale against the real server, N examples each (bench/fuzz.py); the suite keeps quick ones.
N ?= 10000
fuzz: deps
	$(PY) -m bench.fuzz -n $(N)

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
