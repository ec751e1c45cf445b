# PortWatch: `make run` starts it, `make test` tests it. Both set up what they
# need (a virtualenv with pinned requirements, nmap) on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV)/bin)
export PATH := $(BIN):$(PATH)

.PHONY: run demo test test-sqlite lint format ensure-nmap ensure-chromium ensure-slapd ensure-ndiff ensure-wrk clean bench-pipeline bench-ingest bench-pages bench-alerts bench-segmentation bench-matrix bench-listeners bench-load bench-discovery

# --- set-up ---------------------------------------------------------------------

$(VENV)/.runtime: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "Could not create a virtualenv. On Debian/Ubuntu install it with: sudo apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

# The test set-up includes single sign-on (requirements-sso.txt): python-ldap
# builds against the system's OpenLDAP headers.
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt requirements-sso.txt
	@if [ ! -e /usr/include/ldap.h ] || [ ! -e /usr/include/sasl/sasl.h ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "OpenLDAP's headers (to build python-ldap) are missing; installing them with apt-get..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libldap2-dev libsasl2-dev >/dev/null; \
	  else \
	    echo "OpenLDAP's headers are not installed. Install them with: sudo apt-get install libldap2-dev libsasl2-dev" >&2; exit 1; \
	  fi; \
	fi
	$(BIN)/pip install --quiet -r requirements-dev.txt -r requirements-sso.txt
	@touch $@

# $(call ensure,COMMAND,PACKAGE,WHAT IT IS FOR): install a missing Debian package as
# root, otherwise say which command installs it and stop.
define ensure
	@if ! command -v $(1) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "$(1) ($(3)) is missing; installing it with apt-get..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2) >/dev/null; \
	  else \
	    echo "$(1) ($(3)) is not installed. Install it with: sudo apt-get install $(2)" >&2; exit 1; \
	  fi; \
	fi
endef

ensure-nmap:
	$(call ensure,nmap,nmap,the scanner)

# --- run: web + worker + beat on SQLite and the filesystem broker under var/ ----

# DEBUG is off unless asked for (`make run DEBUG=1`): the product's own error pages,
# not Django's technical ones. portwatch/supervisor.py says how Ctrl-C stops it all.
run demo: export DEBUG := $(or $(DEBUG),0)
# gunicorn serves plain HTTP here: cookies marked secure would never come back.
run demo: export SESSION_COOKIE_SECURE := $(or $(SESSION_COOKIE_SECURE),0)
run demo: export CSRF_COOKIE_SECURE := $(or $(CSRF_COOKIE_SECURE),0)

run: $(VENV)/.runtime ensure-nmap
	python manage.py migrate --noinput -v0
	python manage.py collectstatic --noinput -v0
	python manage.py ensure_admin
	@echo "PortWatch is starting on $$(python -c 'from portwatch.env import bind_url; print(bind_url())') (Ctrl-C stops it)."
	python -m portwatch.supervisor Procfile

# --- demo: the same, plus pretend servers on loopback that change every few minutes --
# DEMO_ARGS passes options to manage.py demo, e.g. DEMO_ARGS="--change-every 60".

demo: $(VENV)/.runtime ensure-nmap
	python manage.py migrate --noinput -v0
	python manage.py collectstatic --noinput -v0
	python manage.py ensure_admin
	python manage.py demo --setup-only $(DEMO_ARGS)
	@echo "PortWatch and the demo fleet are starting on $$(python -c 'from portwatch.env import bind_url; print(bind_url())') (Ctrl-C stops them)."
	python -m portwatch.supervisor Procfile.demo

# --- test: lint, then the whole suite on PostgreSQL and Redis ----------------------

lint: $(VENV)/.dev
	ruff check .
	ruff format --check .

format: $(VENV)/.dev
	ruff format .
	ruff check --fix .

# The browser tests (tests/test_browser.py) drive Debian's Chromium with Playwright.
ensure-chromium:
	$(call ensure,chromium,chromium,for the browser tests)

# The single sign-on tests run a real OpenLDAP server (tests/ldap_server.py).
ensure-slapd:
	$(call ensure,slapadd,slapd,the LDAP server of the single sign-on tests)
	$(call ensure,ldapmodify,ldap-utils,the LDAP tools of the single sign-on tests)

# The suite on PostgreSQL and Redis, then the tests marked `sqlite` again on the
# embedded default (a fresh SQLite file in WAL mode and the filesystem broker,
# in a temporary directory): what `make run` gives every new user.
test: $(VENV)/.dev ensure-nmap ensure-chromium ensure-slapd ensure-ndiff lint
	python -m tests.stack python -m pytest $(PYTEST_ARGS)
	PORTWATCH_TEST_DB=sqlite python -m pytest $(PYTEST_ARGS)

test-sqlite: $(VENV)/.dev
	PORTWATCH_TEST_DB=sqlite python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var

# --- benchmarks: figures and ratios against an anchor measured in the same run ----

bench-pipeline: $(VENV)/.dev ensure-nmap
	python -m tests.stack python -m bench.pipeline

bench-discovery: $(VENV)/.dev ensure-nmap
	@command -v masscan > /dev/null || { echo "bench-discovery needs masscan: apt-get install masscan"; exit 1; }
	python -m tests.stack python -m bench.discovery $(BENCH_ARGS)

ensure-ndiff:
	$(call ensure,ndiff,ndiff,the anchor of bench-ingest)

bench-ingest: $(VENV)/.dev ensure-ndiff
	python -m tests.stack python -m bench.ingest $(BENCH_ARGS)

bench-pages: $(VENV)/.dev
	python -m tests.stack python -m bench.pages $(BENCH_ARGS)

bench-alerts: $(VENV)/.dev
	python -m tests.stack python -m bench.alerts $(BENCH_ARGS)

bench-segmentation: $(VENV)/.dev
	python -m tests.stack python -m bench.segmentation $(BENCH_ARGS)

bench-listeners: $(VENV)/.dev
	python -m tests.stack python -m bench.listeners $(BENCH_ARGS)

bench-matrix: $(VENV)/.dev
	python -m tests.stack python -m bench.matrix $(BENCH_ARGS)

ensure-wrk:
	$(call ensure,wrk,wrk,the load generator of bench-load)

bench-load: $(VENV)/.dev ensure-wrk
	python -m tests.stack python -m bench.load $(BENCH_ARGS)
