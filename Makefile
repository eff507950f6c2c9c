# The two commands: `make demo` runs the whole mesh; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# PostgreSQL and Redis of the machine, used by the second pass of `make test` in CI.
REAL_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
REAL_REDIS_URL ?= redis://127.0.0.1:6379/0
# The second pass leaves out what touches neither server differently: the sidecar's tests
# (no database, no Redis) and the browser tests (4.5 min of Chromium; their pages read the
# API, which the second pass tests on PostgreSQL). Both passes in one CI run took 29.5 min
# against the 30 min limit; without these, about 25.
SECOND_PASS_SKIPS := --ignore=tests/proxies --ignore-glob='*_browser.py' \
  --ignore=tests/meshui/test_https.py --ignore=tests/e2e/test_mtls.py

.PHONY: demo test install browser lint bench fuzz wrk

# The pinned dependencies, then the project itself (editable, no dependencies): that puts
# the meshctl console script (docs/cli.md) in $(BIN), running this checkout's code.
$(STAMP): pyproject.toml requirements.lock
	@echo "==> Installing pinned dependencies into $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: install
	@$(BIN)/python -m meshui.demo

# The browser tests drive Debian's Chromium (Playwright cannot download a browser here).
browser:
	@test -x /usr/bin/chromium || { \
	  echo "==> Installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

lint: install
	@$(BIN)/python -m ruff check meshui proxies collector tests bench
	@$(BIN)/python -m mypy proxies collector meshui
	@$(BIN)/lint-imports --no-cache

test: install browser lint
	@echo "==> Test suite on the embedded defaults (SQLite, embedded Valkey)"
	@env -u REDIS_URL -u DATABASE_URL $(BIN)/python -m pytest
ifeq ($(CI),true)
	@echo "==> Test suite against the machine's PostgreSQL and Redis (but the sidecar's and the browser tests)"
	@DATABASE_URL=$(REAL_DATABASE_URL) REDIS_URL=$(REAL_REDIS_URL) $(BIN)/python -m pytest \
	  $(SECOND_PASS_SKIPS)
endif

# The load generator of the benchmarks, from Debian, as `browser` installs chromium.
wrk:
	@command -v wrk >/dev/null || { \
	  echo "==> Installing Debian's wrk for the benchmarks"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk >/dev/null; }

bench: install wrk
	@$(BIN)/python bench/sidecar_hop.py

# A million property-based cases across every fuzz target (not in CI: it takes a while).
fuzz: install
	@env -u REDIS_URL -u DATABASE_URL $(BIN)/python -m tests.fuzzing
