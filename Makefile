# Cheyou: `make run` serves the app with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
FLASK := $(VENV)/bin/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test setup system-deps venv assets translations migrate seed worker messages bench lighthouse clean

run: setup migrate seed
	@bin/print-demo-logins
	@echo "Cheyou on http://$(HOST):$(PORT)  (worker for periodic jobs runs alongside)"
	@trap 'kill 0' EXIT; $(FLASK) worker & $(FLASK) run --host $(HOST) --port $(PORT)

# One pytest-xdist worker per core, each with databases of its own (tests/conftest.py);
# TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

setup: system-deps venv assets translations

system-deps:
	@bin/system-deps

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# Front-end libraries from npm, pinned by package-lock.json: htmx, and jsQR (the check-in
# page's QR decoder: plain JavaScript, no WASM, so it runs under our CSP).
VENDOR := static/vendor/htmx.min.js static/vendor/jsQR.js

assets: $(VENDOR)

$(VENDOR) &: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
	cp node_modules/jsqr/dist/jsQR.js static/vendor/jsQR.js

translations: venv
	@$(VENV)/bin/pybabel compile -d translations -f 2>&1 | grep -v "^compiling" || true

messages: venv
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k N_ -k DomainError --no-location --sort-output \
	  --ignore-dirs=".venv node_modules migrations tests" -o translations/messages.pot .
	$(VENV)/bin/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete

migrate: venv
	$(FLASK) db upgrade

seed: venv
	$(FLASK) seed-demo

worker: setup
	$(FLASK) worker

bench: setup
	$(PY) bench/run.py
	$(PY) bench/campaign_fanout.py
	$(PY) bench/audience_count.py
	@bin/system-deps --bench
	$(PY) bench/http_bench.py $(BENCH_ARGS)

# Lighthouse 12 (mobile) on the main pages, logged out and in: needs Chromium (bin/system-deps --test).
lighthouse: setup
	$(PY) bench/lighthouse.py

clean:
	rm -rf $(VENV) node_modules static/vendor
